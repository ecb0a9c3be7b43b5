from __future__ import annotations

import math
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tracker.core.db import Base, UTCDateTime, utcnow

READ, READ_WRITE = "read", "read-write"
SCOPES = {READ: "Read only", READ_WRITE: "Read and write"}


class ApiToken(Base):
    """A bearer token for the API; only its SHA-256 is stored, the token is shown once.

    A token works until ``expires_at`` unless it is revoked first (by its user, an
    administrator, or a password change or deactivation of its user); a revoked token
    stays revoked. A ``read`` token may only read (GET).
    """

    __tablename__ = "api_token"
    __table_args__ = (
        CheckConstraint(f"scope IN ({', '.join(repr(s) for s in SCOPES)})", name="scope_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hint: Mapped[str] = mapped_column(String(12))  # the first characters, to tell tokens apart
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    scope: Mapped[str] = mapped_column(String(16), default=READ_WRITE)
    # Written at most once a minute per token (tracker.api.services.TOUCH_SECONDS).
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user = relationship("User", lazy="joined")

    @property
    def active(self) -> bool:
        return self.revoked_at is None and self.expires_at > utcnow()

    @property
    def expired(self) -> bool:
        return self.revoked_at is None and self.expires_at <= utcnow()

    def days_left(self, now: datetime) -> int:
        """Whole days (rounded up) until it expires; 0 once it has."""
        return max(0, math.ceil((self.expires_at - now).total_seconds() / 86400))

    @property
    def writes(self) -> bool:
        return self.scope == READ_WRITE

    @property
    def scope_label(self) -> str:
        return SCOPES[self.scope]
