"""One-time password reset links, issued by an administrator. Flush, never commit.

Only the SHA-256 of a link's token is stored. A link works once and until it expires;
issuing a new one voids the user's earlier links. Using it sets the new password under
the same rules as a change (``check_password_rules``), ends every session of the user,
clears a lockout; the password change revokes every API token of the user (the hook in
``tracker.api.services``). Nothing is mailed: the administrator hands the link over.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update

from tracker.core.db import utcnow
from tracker.extensions import db
from tracker.users.models import PasswordReset, User
from tracker.users.passwords import set_password
from tracker.users.services import UserError, check_password_rules
from tracker.users.sessions import end_sessions_of

DEFAULT_HOURS = 24
ASK_AGAIN = "Ask an administrator for a new link."


class ResetRefused(Exception):
    """A link that cannot be used (unknown, used, voided or expired); the message says
    why and what to do."""

    def __init__(self, message: str, reset: PasswordReset | None = None):
        super().__init__(message)
        self.reset = reset


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue(user: User, actor: User | None, hours: int = DEFAULT_HOURS) -> tuple[PasswordReset, str]:
    """A new link's row and its token (shown once); the user's unused links are voided."""
    if not user.active:
        raise UserError(f"{user.username} is deactivated; activate the account first.")
    now = utcnow()
    db.session.execute(
        update(PasswordReset)
        .where(
            PasswordReset.user_id == user.id,
            PasswordReset.used_at.is_(None),
            PasswordReset.voided_at.is_(None),
        )
        .values(voided_at=now)
        .execution_options(synchronize_session="fetch")
    )
    plain = secrets.token_urlsafe(32)
    reset = PasswordReset(
        user=user,
        token_hash=_hash(plain),
        issued_by_id=actor.id if actor is not None else None,
        created_at=now,
        expires_at=now + timedelta(hours=hours),
    )
    db.session.add(reset)
    db.session.flush()
    return reset, plain


def find(plain: str | None, now: datetime | None = None, lock: bool = False) -> PasswordReset:
    """The usable link of ``plain``, or ResetRefused saying why not. ``lock``: the row is
    locked (PostgreSQL) until the transaction ends, so two submissions cannot both use it."""
    now = now or utcnow()
    reset = None
    if plain and len(plain) <= 100:
        query = select(PasswordReset).where(PasswordReset.token_hash == _hash(plain))
        if lock:
            query = query.with_for_update(of=PasswordReset).execution_options(
                populate_existing=True
            )
        reset = db.session.scalar(query)
    if reset is None:
        raise ResetRefused(f"This password reset link is not valid. {ASK_AGAIN}")
    if reset.used_at is not None:
        raise ResetRefused(f"This password reset link has been used already. {ASK_AGAIN}", reset)
    if reset.voided_at is not None:
        raise ResetRefused(
            f"This password reset link was replaced by a newer one. Use the newest link "
            f"you were given, or: {ASK_AGAIN.lower()}",
            reset,
        )
    if reset.expires_at <= now:
        raise ResetRefused(f"This password reset link has expired. {ASK_AGAIN}", reset)
    if not reset.user.active:
        raise ResetRefused(f"This account is deactivated. {ASK_AGAIN}", reset)
    return reset


def use(plain: str, password: str) -> User:
    """Set the new password through the link, once (UserError: the password is refused;
    the link stays usable). The session hooks audit the use and the password change, and
    revoke the user's API tokens."""
    reset = find(plain, lock=True)
    user = reset.user
    check_password_rules(password, user.username, user.full_name)
    reset.used_at = utcnow()
    set_password(user, password)
    user.failed_logins = 0
    user.locked_until = None
    end_sessions_of(user.id)
    db.session.flush()
    return user
