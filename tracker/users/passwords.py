"""Password hashes: scrypt, through Werkzeug's well-tested implementation.

Kept apart from the ``User`` model, so the model (and the engine that reads it) needs
no web library.
"""

from __future__ import annotations

from werkzeug.security import check_password_hash, generate_password_hash


def set_password(user, password: str) -> None:
    user.password_hash = generate_password_hash(password, method="scrypt")


def check_password(user, password: str) -> bool:
    return check_password_hash(user.password_hash, password)
