"""Pure renderers: domain models to Block Kit (Slack) and to terminal text."""
