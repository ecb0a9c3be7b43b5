"""Password hashes: scrypt, through Werkzeug's well-tested implementation.

Kept apart from the ``User`` model, so the model (and the engine that reads it) needs
no web library.
"""

from __future__ import annotations

from werkzeug.security import check_password_hash, generate_password_hash

# The hash of an account that signs in with single sign-on only: no password matches it
# (Werkzeug refuses a hash without '$').
NO_PASSWORD = "!single-sign-on-only"  # noqa: S105 - not a password


def set_password(user, password: str) -> None:
    user.password_hash = generate_password_hash(password, method="scrypt")


def check_password(user, password: str) -> bool:
    return check_password_hash(user.password_hash, password)
