"""The patient tracking list and the monthly Cancer Waiting Times return."""
