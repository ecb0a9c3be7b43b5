"""Accounts. Services flush, never commit."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from tracker.extensions import db
from tracker.pathway.definition import ROLES
from tracker.users.models import User

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
PASSWORD_MIN, PASSWORD_MAX = 12, 128


class UserError(Exception):
    """A refused account change; the message says what to put right."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def check_password_rules(password: str) -> None:
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise UserError(
            f"The password must be {PASSWORD_MIN} to {PASSWORD_MAX} characters long.", "password"
        )


def create_user(*, username: str, role: str, password: str, full_name: str = "") -> User:
    username = (username or "").strip().lower()
    if not USERNAME_RE.match(username):
        raise UserError(
            "A username is 2 to 64 characters: lower-case letters, digits, '.', '_' or '-'.",
            "username",
        )
    if role not in ROLES:
        raise UserError(f"The role must be one of: {', '.join(ROLES)}.", "role")
    check_password_rules(password)
    if db.session.scalar(select(func.count(User.id)).where(User.username == username)):
        raise UserError(f"The username '{username}' is already taken.", "username")
    user = User(username=username, role=role, full_name=(full_name or "").strip()[:120])
    user.set_password(password)
    db.session.add(user)
    db.session.flush()
    return user


def _active_admins_besides(user: User) -> int:
    return db.session.scalar(
        select(func.count(User.id)).where(
            User.role == "admin", User.active.is_(True), User.id != user.id
        )
    )


def change_role(user: User, role: str, actor: User) -> None:
    if role not in ROLES:
        raise UserError(f"The role must be one of: {', '.join(ROLES)}.", "role")
    if user.role == "admin" and role != "admin" and not _active_admins_besides(user):
        raise UserError("This is the last active administrator; make another one first.", "role")
    user.role = role
    db.session.flush()


def set_active(user: User, active: bool, actor: User) -> None:
    if not active and user.id == actor.id:
        raise UserError("You cannot deactivate your own account.")
    if not active and user.role == "admin" and not _active_admins_besides(user):
        raise UserError("This is the last active administrator; make another one first.")
    user.active = active
    db.session.flush()
