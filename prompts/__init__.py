"""LLM prompt templates, one versioned file each (the optional LLM features load them from here)."""
