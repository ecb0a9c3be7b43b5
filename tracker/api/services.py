"""API tokens: created (shown once), looked up by hash, revoked. Flush, never commit."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select

from tracker.api.models import ApiToken
from tracker.core.db import utcnow
from tracker.extensions import db

PREFIX = "trk_"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(user, name: str = "API token") -> tuple[ApiToken, str]:
    """A new token for ``user``; the plain token is returned once and never stored."""
    name = (name or "").strip()[:100] or "API token"
    plain = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id, name=name, token_hash=_hash(plain), hint=plain[:10])
    db.session.add(token)
    db.session.flush()
    return token, plain


def authenticate(plain: str | None):
    """The active user a token belongs to, or None."""
    if not plain or not plain.startswith(PREFIX) or len(plain) > 200:
        return None
    token = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == _hash(plain)))
    if token is None or not token.active or not token.user.active:
        return None
    return token.user


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
