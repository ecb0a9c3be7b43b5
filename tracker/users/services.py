"""Accounts. Services flush, never commit."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import func, select, update

from tracker.extensions import db
from tracker.users.models import ALERT_EMAIL_CHOICES, User
from tracker.users.passwords import NO_PASSWORD, check_password, set_password
from tracker.users.roles import ROLES
from tracker.users.sessions import end_sessions_of

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
PASSWORD_MIN, PASSWORD_MAX = 12, 128
# zxcvbn's scale: 3 is "safely unguessable" for an online attack with a lockout.
PASSWORD_MIN_SCORE = 3


class UserError(Exception):
    """A refused account change; the message says what to put right."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def check_password_rules(password: str, *hints: str) -> None:
    """12 to 128 characters, and not one of the commonest or easily guessed passwords
    (zxcvbn's list of 30,000 common passwords and its guess estimate, which also knows
    the username and name given as ``hints``). No composition rules (ASVS 2.1.9)."""
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise UserError(
            f"The password must be {PASSWORD_MIN} to {PASSWORD_MAX} characters long.", "password"
        )
    if password.lower() in _common_passwords():
        raise UserError(
            "This is one of the commonest passwords; choose another, e.g. three or four "
            "unrelated words.",
            "password",
        )
    from zxcvbn import zxcvbn

    # zxcvbn's estimate costs grow with length; past 72 characters a password is long
    # enough that its first 72 decide.
    result = zxcvbn(password[:72], user_inputs=[h for h in hints if h])
    if result["score"] < PASSWORD_MIN_SCORE:
        advice = " ".join(
            part
            for part in (result["feedback"]["warning"], *result["feedback"]["suggestions"])
            if part
        )
        raise UserError(
            "This password is too easy to guess. "
            + (advice or "Add another word or two; uncommon words are better."),
            "password",
        )


@cache
def _common_passwords() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def create_user(
    *, username: str, role: str, password: str | None, full_name: str = "", sso_only: bool = False
) -> User:
    """A new account; one that signs in with single sign-on only has no password."""
    username = (username or "").strip().lower()
    if not USERNAME_RE.match(username):
        raise UserError(
            "A username is 2 to 64 characters: lower-case letters, digits, '.', '_' or '-'.",
            "username",
        )
    if role not in ROLES:
        raise UserError(f"The role must be one of: {', '.join(ROLES)}.", "role")
    if not sso_only:
        check_password_rules(password or "", username, full_name)
    if db.session.scalar(select(func.count(User.id)).where(User.username == username)):
        raise UserError(f"The username '{username}' is already taken.", "username")
    user = User(
        username=username,
        role=role,
        full_name=(full_name or "").strip()[:120],
        sso_only=sso_only,
    )
    if sso_only:
        user.password_hash = NO_PASSWORD
    else:
        set_password(user, password)
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
    if not active:
        # Every session of the account ends now, on every server.
        end_sessions_of(user.id)
    db.session.flush()


def set_sso(user: User, *, sso_only: bool, unlink: bool = False) -> None:
    """Whether the account may log in with a password, and forgetting its provider's
    subject (a wrong link; the next single sign-on links it again by username)."""
    user.sso_only = sso_only
    if unlink:
        user.sso_subject = None
    if sso_only or unlink:
        end_sessions_of(user.id)
    db.session.flush()


def change_password(user: User, current: str, new: str, keep_session: str | None) -> None:
    """The user's own change: the current password first; other sessions end."""
    if not check_password(user, current or ""):
        raise UserError("The current password is wrong.", "current")
    if new == current:
        raise UserError("The new password must differ from the current one.", "new")
    check_password_rules(new, user.username, user.full_name)
    set_password(user, new)
    end_sessions_of(user.id, keep=keep_session)
    db.session.flush()


# -- failed logins and the lockout -------------------------------------------------------


def is_locked(user: User, now: datetime) -> bool:
    return user.locked_until is not None and user.locked_until > now


def note_failed_login(user: User, now: datetime, lock_after: int, lock_minutes: int) -> bool:
    """Count a failed login in the database (one UPDATE, so concurrent servers add up);
    True when this failure locks the account."""
    count = db.session.execute(
        update(User)
        .where(User.id == user.id)
        .values(failed_logins=User.failed_logins + 1)
        .returning(User.failed_logins)
        .execution_options(synchronize_session=False)
    ).scalar_one()
    if count < lock_after:
        db.session.refresh(user)
        return False
    db.session.execute(
        update(User)
        .where(User.id == user.id)
        .values(failed_logins=0, locked_until=now + timedelta(minutes=lock_minutes))
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(user)
    return True


def note_login(user: User, now: datetime) -> None:
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    db.session.flush()


def unlock(user: User) -> None:
    user.failed_logins = 0
    user.locked_until = None
    db.session.flush()


EMAIL_SHAPE = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")


def set_alert_email(user: User, email: str, preference: str) -> None:
    """A user's own address for alerts and how often they want them (ALERT_EMAIL_CHOICES);
    an empty address: alerts in the tracker only."""
    email = (email or "").strip()
    if preference not in ALERT_EMAIL_CHOICES:
        raise UserError(
            "Choose how often to get alerts by email: "
            + ", ".join(f"'{p}'" for p in ALERT_EMAIL_CHOICES)
            + ".",
            field="alert_email",
        )
    if len(email) > 254:
        raise UserError("An email address has at most 254 characters.", field="email")
    if email and not EMAIL_SHAPE.match(email):
        raise UserError(
            f"'{email}' is not an email address: write it as name@hospital.nhs.uk, or leave "
            "it empty to get alerts in the tracker only.",
            field="email",
        )
    if not email and preference != "none":
        raise UserError(
            "Enter your email address to get alerts by email, or choose 'No email'.",
            field="email",
        )
    user.email = email or None
    user.alert_email = preference
