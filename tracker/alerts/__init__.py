"""Alerts: rules read from the clock rows and MDT lists, kept as in-app notifications and
emailed as one digest per person (see docs/guide/alerts.md)."""
