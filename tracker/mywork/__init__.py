"""My work: a coordinator's or surgeon's own day, on one page (the landing page)."""
