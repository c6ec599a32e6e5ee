"""Diagnosis: execution → hops → evidence → classification → remediation."""
