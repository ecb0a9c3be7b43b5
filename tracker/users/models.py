from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tracker.core.db import Base, UTCDateTime, utcnow
from tracker.core.runtime import db_session
from tracker.users.roles import ROLE_LABELS, ROLES

# How a user's alerts reach them by email, as the account page offers it.
ALERT_EMAIL_CHOICES = {
    "immediately": "Every alert as it comes (one email per run of the alerts, outside quiet hours)",
    "daily": "Breached targets at once, everything else in one email each morning",
    "none": "No email: alerts in the tracker only",
}


class User(Base):
    __tablename__ = "user"
    # The columns the row's ``seal`` covers (tracker/audit/seals.py): who the user is and
    # what they may do. The login counters (failed_logins, locked_until, last_login_at)
    # are left out: every login writes them. Adding a column here needs a migration that
    # seals the rows again.
    SEALED = ("username", "full_name", "role", "active", "password_hash")
    __table_args__ = (
        CheckConstraint(f"role IN ({', '.join(repr(r) for r in ROLES)})", name="role_known"),
        CheckConstraint(
            f"alert_email IN ({', '.join(repr(p) for p in ALERT_EMAIL_CHOICES)})",
            name="alert_email_known",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(120), default="")
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(256))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Failed logins since the last success; at LOCK_AFTER the account locks until
    # locked_until. Kept here, not in a process, so every app server counts the same.
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # HMAC-SHA256 of the SEALED columns under the audit key, written at each flush.
    seal: Mapped[str] = mapped_column(String(64), default="", server_default="")
    # Single sign-on: the identity provider's subject (``sub``) of this account, stored at
    # its first sign-in; later sign-ins match on it alone. ``sso_only``: no password login.
    sso_subject: Mapped[str | None] = mapped_column(String(255), unique=True, index=True)
    sso_only: Mapped[bool] = mapped_column(default=False)
    # Two-factor login (tracker/users/two_factor.py). The TOTP secret is stored encrypted
    # with a key derived from the audit key, which is kept outside the database; it is
    # set when enrolment starts and counts only once totp_enabled_at is set (confirmed).
    totp_secret: Mapped[str | None] = mapped_column(String(256))
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The last time step whose code was accepted: a code is never accepted twice.
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    # Alerts by email (tracker/alerts), set by the user on their account page: where to,
    # and how often (ALERT_EMAIL_CHOICES). Without an address, alerts are in the app only.
    email: Mapped[str | None] = mapped_column(String(254))
    alert_email: Mapped[str] = mapped_column(String(16), default="daily", server_default="daily")

    # What Flask-Login asks of a user, written here so the model needs no web framework.
    is_authenticated = True
    is_anonymous = False

    def get_id(self) -> str:
        return str(self.id)

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive users
        return self.active

    @property
    def two_factor_enrolled(self) -> bool:
        return self.totp_enabled_at is not None

    @property
    def display_name(self) -> str:
        return self.full_name or self.username

    @property
    def role_label(self) -> str:
        return ROLE_LABELS[self.role]

    def __repr__(self) -> str:
        return f"<User {self.username} {self.role}>"


class WebSession(Base):
    """A browser session kept on the server; the cookie holds only a random id.

    The id is stored as its SHA-256, so reading this table gives no usable cookie.
    Deleting a row ends that session wherever the cookie was copied to.
    """

    __tablename__ = "web_session"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    data: Mapped[str] = mapped_column(Text, default="")
    address: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(200), default="")


class PasswordReset(Base):
    """A one-time link an administrator hands to a user to set a new password.

    Only the SHA-256 of the link's token is stored. A link works once, until
    ``expires_at``; issuing a new link for the user voids the ones not yet used.
    """

    __tablename__ = "password_reset"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    issued_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user = relationship(User, foreign_keys=[user_id], lazy="joined")


class RecoveryCode(Base):
    """A single-use code that stands in for a TOTP code (a lost phone). Stored as the
    SHA-256 of the code: each code is random (50 bits), so no key stretching is needed."""

    __tablename__ = "recovery_code"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


def user_named(username: str) -> User | None:
    """The user whose username is exactly ``username``, or None: the one query every
    caller makes for it. Usernames are kept in lower case: a caller with one a person
    typed strips and folds it first."""
    return db_session().scalar(select(User).where(User.username == username))
