"""API tokens: created (shown once), looked up by hash, revoked. Flush, never commit.

A token ends when it expires, when it is revoked, and when its user's password changes,
the account is deactivated, its second factor is reset or it is made sign-on only (a
session hook below, so no code path can forget it);
a revoked token stays revoked, so reactivating the account does not revive it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import event, inspect, or_, select, update
from sqlalchemy.orm import Session

from tracker.api.models import READ_WRITE, SCOPES, ApiToken
from tracker.core.db import utcnow
from tracker.extensions import db
from tracker.users.models import User

PREFIX = "trk_"
DEFAULT_DAYS = 90
# The last use of a token is written at most this often (seconds), so that a busy
# interface does not cost a write per call.
TOUCH_SECONDS = 60


class TokenError(Exception):
    """A refused token request; the message says what to put right."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    user,
    name: str = "API token",
    *,
    scope: str = READ_WRITE,
    days: int | None = None,
    max_days: int = DEFAULT_DAYS,
) -> tuple[ApiToken, str]:
    """A new token for ``user``, working ``days`` (at most ``max_days``, the setting
    API_TOKEN_DAYS); the plain token is returned once and never stored."""
    if scope not in SCOPES:
        raise TokenError(f"The scope must be one of: {', '.join(SCOPES)}.", "scope")
    days = max_days if days is None else days
    if not 1 <= days <= max_days:
        raise TokenError(f"A token lasts 1 to {max_days} days.", "days")
    name = (name or "").strip()[:100] or "API token"
    plain = PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    token = ApiToken(
        user_id=user.id,
        name=name,
        token_hash=_hash(plain),
        hint=plain[:10],
        scope=scope,
        created_at=now,
        expires_at=now + timedelta(days=days),
    )
    db.session.add(token)
    db.session.flush()
    return token, plain


@dataclass(frozen=True)
class Presented:
    """What a presented token turned out to be: ``token`` when it may be used, else
    ``expired_at`` (when it expired) or neither (unknown, revoked, or its user
    deactivated: answered alike, so a caller learns nothing of which tokens exist)."""

    token: ApiToken | None = None
    expired_at: datetime | None = None


def present(plain: str | None, now: datetime | None = None) -> Presented:
    if not plain or not plain.startswith(PREFIX) or len(plain) > 200:
        return Presented()
    token = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == _hash(plain)))
    if token is None or token.revoked_at is not None or not token.user.active:
        return Presented()
    # Saying "expired" tells only the holder of the token itself (a 256-bit secret)
    # that it once worked; nobody without it can learn anything from the answer.
    if token.expires_at <= (now or utcnow()):
        return Presented(expired_at=token.expires_at)
    return Presented(token=token)


def authenticate(plain: str | None):
    """The active user a usable token belongs to, or None."""
    token = present(plain).token
    return token.user if token is not None else None


def touch(token: ApiToken, now: datetime | None = None) -> None:
    """Note the token's use, at most once per TOUCH_SECONDS: one UPDATE that writes
    nothing when the last use is recent (and so not audited: it is not a change of the
    account, and every call is in the audit log already)."""
    now = now or utcnow()
    if token.last_used_at is not None and now - token.last_used_at < timedelta(
        seconds=TOUCH_SECONDS
    ):
        return
    db.session.execute(
        update(ApiToken)
        .where(
            ApiToken.id == token.id,
            or_(
                ApiToken.last_used_at.is_(None),
                ApiToken.last_used_at < now - timedelta(seconds=TOUCH_SECONDS),
            ),
        )
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )


def revoke(token: ApiToken) -> None:
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        db.session.flush()


def tokens_of(user) -> list[ApiToken]:
    return list(
        db.session.scalars(
            select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.created_at.desc())
        )
    )


# -- a password change, a deactivation, a two-factor reset or sign-on-only revokes every
# token of the account ---------------------------------------------------------------------


def _credentials_changed(user: User) -> bool:
    """A new password, a deactivation, a second factor taken away (an administrator's
    reset: the account may be in other hands) or password login turned off (sign-on
    only: the provider decides who gets in, so no token outlives that decision)."""
    state = inspect(user)
    password = state.attrs.password_hash.history
    active = state.attrs.active.history
    factor = state.attrs.totp_enabled_at.history
    sso_only = state.attrs.sso_only.history
    return (
        password.has_changes()
        or (active.has_changes() and not user.active)
        or (factor.has_changes() and user.totp_enabled_at is None and any(factor.deleted))
        or (sso_only.has_changes() and user.sso_only)
    )


# Inserted first, so that the audit hook (also before_flush) sees the revoked tokens.
@event.listens_for(Session, "before_flush", insert=True)
def _revoke_tokens_with_credentials(session: Session, flush_context, instances) -> None:
    users = [
        obj
        for obj in session.dirty
        if isinstance(obj, User) and obj.id is not None and _credentials_changed(obj)
    ]
    if not users:
        return
    now = utcnow()
    live = select(ApiToken).where(
        ApiToken.user_id.in_([u.id for u in users]), ApiToken.revoked_at.is_(None)
    )
    with session.no_autoflush:
        for token in session.scalars(live):
            token.revoked_at = now
