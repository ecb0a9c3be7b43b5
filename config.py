"""Configuration classes, read from the environment (see README, "Configuration")."""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = BASE_DIR / "instance"


def _env_flag(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


class Config:
    SECRET_KEY = os.environ.get("SECRET_KEY")
    SQLALCHEMY_DATABASE_URI = os.environ.get(
        "DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'tracker.sqlite'}"
    )
    SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_pre_ping": True}
    # Bootstrap's CSS and JS come from the Bootstrap-Flask package, never from a CDN.
    BOOTSTRAP_SERVE_LOCAL = True
    WTF_CSRF_TIME_LIMIT = None
    # No form or API call needs more; a larger body is refused (413) before it is read.
    MAX_CONTENT_LENGTH = int(os.environ.get("MAX_CONTENT_LENGTH", str(1024 * 1024)))
    # Sessions live on the server (tracker/users/sessions.py); the cookie holds an id.
    SESSION_COOKIE_NAME = "tracker_session"
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    # Set when the app is served over HTTPS (it should be, outside a laptop).
    SESSION_COOKIE_SECURE = _env_flag("SESSION_COOKIE_SECURE")
    SESSION_IDLE_MINUTES = int(os.environ.get("SESSION_IDLE_MINUTES", "30"))
    SESSION_ABSOLUTE_HOURS = int(os.environ.get("SESSION_ABSOLUTE_HOURS", "12"))
    # How often a session's last activity is written (seconds): the idle limit's grain.
    SESSION_TOUCH_SECONDS = int(os.environ.get("SESSION_TOUCH_SECONDS", "60"))
    LOGIN_LOCK_AFTER = int(os.environ.get("LOGIN_LOCK_AFTER", "5"))
    LOGIN_LOCK_MINUTES = int(os.environ.get("LOGIN_LOCK_MINUTES", "15"))
    # Roles that must log in with a second factor (TOTP), comma-separated; anyone else
    # may set one up on their account page. "admin,surgeon,coordinator,viewer": everyone.
    TOTP_REQUIRED_ROLES = os.environ.get("TOTP_REQUIRED_ROLES", "admin")
    # The name authenticator apps show beside the account.
    TOTP_ISSUER = os.environ.get("TOTP_ISSUER", "Spine tracker")
    # The HMAC key of the event and audit hash chains, kept outside the database: the
    # key itself (AUDIT_KEY), or a file holding it (AUDIT_KEY_FILE).
    AUDIT_KEY = os.environ.get("AUDIT_KEY", "")
    AUDIT_KEY_FILE = os.environ.get("AUDIT_KEY_FILE", "")
    AUDIT_KEY_CREATE = False
    # Reverse proxies in front of the app whose X-Forwarded-* headers are believed.
    TRUSTED_PROXIES = int(os.environ.get("TRUSTED_PROXIES", "0"))
    HSTS_SECONDS = int(os.environ.get("HSTS_SECONDS", str(365 * 24 * 3600)))
    # Times are stored in UTC and shown, and typed, in the hospital's local time.
    TIMEZONE = os.environ.get("TIMEZONE", "Europe/London")
    WORKLIST_PAGE_SIZE = int(os.environ.get("WORKLIST_PAGE_SIZE", "25"))
    # Waiting-time limits per clock, in the clock's unit (hours for the cord compression
    # clocks, calendar days for the others); overrides the defaults of PATHWAY.md.
    # Example: TARGET_LIMITS="mscc_mri=12,spinal_mets_mri=5".
    TARGET_LIMITS = os.environ.get("TARGET_LIMITS", "")
    # Share of a target's limit, at its end, during which it is "due soon".
    TARGET_DUE_SOON_FRACTION = float(os.environ.get("TARGET_DUE_SOON_FRACTION", "0.2"))
    # SQLite only: transactions begin explicitly, so that tests can roll back
    # savepoints; the running app keeps pysqlite's default (see README).
    SQLITE_EXPLICIT_TRANSACTIONS = False


class DevelopmentConfig(Config):
    SECRET_KEY = os.environ.get("SECRET_KEY", "dev-only-not-secret")
    # `make run` on a fresh machine: a key file made on first use, beside the database.
    AUDIT_KEY_FILE = os.environ.get("AUDIT_KEY_FILE", str(INSTANCE_DIR / "audit.key"))
    AUDIT_KEY_CREATE = True


class ProductionConfig(Config):
    pass


class TestingConfig(Config):
    TESTING = True
    SECRET_KEY = "test-secret"  # noqa: S105 - test only
    AUDIT_KEY = "test-audit-key-0123456789abcdef0123456789"
    SQLALCHEMY_DATABASE_URI = os.environ.get("TEST_DATABASE_URL", "sqlite://")
    WTF_CSRF_ENABLED = False
    SQLITE_EXPLICIT_TRANSACTIONS = True


configs = {
    "development": DevelopmentConfig,
    "production": ProductionConfig,
    "testing": TestingConfig,
}
