"""Minimum necessary access: users see their teams' patients, others only through
audited, time-limited emergency access ("break-glass")."""
