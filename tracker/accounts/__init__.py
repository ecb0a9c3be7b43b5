"""The people's pages: logging in and out, one's own account (password, sessions, API
tokens), and the administrators' user list and audit log."""
