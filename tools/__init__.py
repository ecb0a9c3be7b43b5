"""The project's own maintenance scripts (not part of the installed package)."""
