"""Saved views: a worklist's or the patient tracking list's filters and sort, named."""
