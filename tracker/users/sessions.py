"""Stored browser sessions of a user (the rows of ``web_session``): listed and ended.

The Flask session interface that reads and writes them is ``tracker.web.sessions``.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import delete, select

from tracker.extensions import db
from tracker.users.models import WebSession


def session_hash(sid: str) -> str:
    """A session id as stored: its SHA-256, so the table holds no usable cookie."""
    return hashlib.sha256(sid.encode()).hexdigest()


def end_sessions_of(user_id: int, keep: str | None = None) -> None:
    """Delete every session of a user (deactivation, password change); flush only."""
    statement = delete(WebSession).where(WebSession.user_id == user_id)
    if keep:
        statement = statement.where(WebSession.id_hash != session_hash(keep))
    db.session.execute(statement)


def sessions_of(user_id: int) -> list[WebSession]:
    return list(
        db.session.scalars(
            select(WebSession)
            .where(WebSession.user_id == user_id)
            .order_by(WebSession.last_seen_at.desc())
        )
    )
