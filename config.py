"""Configuration classes, read from the environment (see docs/configuration.md)."""

from __future__ import annotations

import ipaddress
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
    # Set when the app is served over HTTPS (production refuses to start without it unless
    # ALLOW_PLAIN_HTTP says it is a test behind plain HTTP); the cookie is then named
    # __Host-tracker_session, so the browser keeps it to this host, path / and HTTPS.
    SESSION_COOKIE_SECURE = _env_flag("SESSION_COOKIE_SECURE")
    ALLOW_PLAIN_HTTP = _env_flag("ALLOW_PLAIN_HTTP")
    SESSION_IDLE_MINUTES = int(os.environ.get("SESSION_IDLE_MINUTES", "30"))
    SESSION_ABSOLUTE_HOURS = int(os.environ.get("SESSION_ABSOLUTE_HOURS", "12"))
    # How often a session's last activity is written (seconds): the idle limit's grain.
    SESSION_TOUCH_SECONDS = int(os.environ.get("SESSION_TOUCH_SECONDS", "60"))
    # How long the signed cookie of a visitor who is not logged in (the login form's
    # CSRF token, a message) is believed; such a visitor has no row in web_session.
    ANONYMOUS_SESSION_MINUTES = int(os.environ.get("ANONYMOUS_SESSION_MINUTES", "720"))
    # How long after the password the second step (code or enrolment) may follow: a
    # half login older than this, or one whose account's credentials changed, is refused.
    PENDING_LOGIN_MINUTES = int(os.environ.get("PENDING_LOGIN_MINUTES", "10"))
    LOGIN_LOCK_AFTER = int(os.environ.get("LOGIN_LOCK_AFTER", "5"))
    LOGIN_LOCK_MINUTES = int(os.environ.get("LOGIN_LOCK_MINUTES", "15"))
    # Rate limits (tracker/web/limits.py), in Flask-Limiter's notation, ";" between
    # several. Counters in RATELIMIT_STORAGE_URI: memory:// for one app server, Redis
    # (redis://host:6379/N) shared by several.
    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI", "memory://")
    RATELIMIT_KEY_PREFIX = os.environ.get("RATELIMIT_KEY_PREFIX", "tracker")
    LOGIN_RATE_LIMIT_ADDRESS = os.environ.get(
        "LOGIN_RATE_LIMIT_ADDRESS", "10 per minute;100 per hour"
    )
    LOGIN_RATE_LIMIT_ACCOUNT = os.environ.get("LOGIN_RATE_LIMIT_ACCOUNT", "5 per minute")
    API_RATE_LIMIT = os.environ.get("API_RATE_LIMIT", "300 per minute")
    API_ANONYMOUS_RATE_LIMIT = os.environ.get("API_ANONYMOUS_RATE_LIMIT", "30 per minute")
    # Failures anyone can cause (a bad API token, a rate limit hit) are audited per
    # address per window of this many minutes, with their count, not one row each.
    AUDIT_AGGREGATE_MINUTES = int(os.environ.get("AUDIT_AGGREGATE_MINUTES", "15"))
    # An API token works this many days at most (its creator may choose fewer).
    API_TOKEN_DAYS = int(os.environ.get("API_TOKEN_DAYS", "90"))
    # A password reset link works this many hours, once.
    PASSWORD_RESET_HOURS = int(os.environ.get("PASSWORD_RESET_HOURS", "24"))
    # The tracker's address as users reach it (https://tracker.example.nhs.uk), for links
    # printed by the command line and put in emails.
    BASE_URL = os.environ.get("BASE_URL", "")
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
    # Audit entries are linked into their chain in batches, by whichever server process
    # wrote one, after its answer has gone, at most once per this many seconds (and every
    # minute by the worker): an entry is in the chain within about this delay. 0: at the
    # end of the very request that wrote it, before its answer.
    AUDIT_SEAL_SECONDS = float(os.environ.get("AUDIT_SEAL_SECONDS", "1"))
    # The addresses (IPs or CIDRs, comma-separated) of the reverse proxies in front of the
    # app: X-Forwarded-* are believed only from a direct peer among them.
    TRUSTED_PROXIES = os.environ.get("TRUSTED_PROXIES", "")
    # `flask tracker backup` encrypts to these age public keys (age1..., separated by
    # spaces or commas); without one it refuses unless --plaintext.
    BACKUP_AGE_RECIPIENTS = os.environ.get("BACKUP_AGE_RECIPIENTS", "")
    # Write each hash chain's head to the application log when the app starts to serve
    # (not for `flask ...` commands, which log them where they need to).
    LOG_CHAIN_HEADS_AT_START = True
    HSTS_SECONDS = int(os.environ.get("HSTS_SECONDS", str(365 * 24 * 3600)))
    # Times are stored in UTC and shown, and typed, in the hospital's local time.
    TIMEZONE = os.environ.get("TIMEZONE", "Europe/London")
    # The MDT teams; users see only their teams' patients ("code=Label,...").
    TEAMS = os.environ.get(
        "TEAMS", "spine=Spine,bone_sarcoma=Bone sarcoma,metastatic=Metastatic spine"
    )
    # The MDT list closes for additions this many hours before a meeting starts; a later
    # addition needs a reason, shown on the list.
    MDT_LIST_CLOSES_HOURS = float(os.environ.get("MDT_LIST_CLOSES_HOURS", "24"))
    # The core specialties each team's MDT needs present to be quorate
    # ("team=specialty+specialty;team=..."; codes of the MDT record's disciplines).
    MDT_CORE_SPECIALTIES = os.environ.get(
        "MDT_CORE_SPECIALTIES",
        "spine=spinal_surgery+clinical_oncology+radiology+pathology;"
        "bone_sarcoma=orthopaedic_oncology+medical_oncology+radiology+pathology;"
        "metastatic=spinal_surgery+clinical_oncology+radiology",
    )
    # The hospital's name at the head of the MDT outcome letters.
    LETTER_HOSPITAL = os.environ.get("LETTER_HOSPITAL", "")
    # How long emergency access to another team's patient lasts.
    EMERGENCY_ACCESS_MINUTES = int(os.environ.get("EMERGENCY_ACCESS_MINUTES", "120"))
    WORKLIST_PAGE_SIZE = int(os.environ.get("WORKLIST_PAGE_SIZE", "25"))
    # Waiting-time limits per clock, in the clock's unit (hours for the cord compression
    # clocks, calendar days for the others); overrides the defaults of PATHWAY.md.
    # Example: TARGET_LIMITS="mscc_mri=12,spinal_mets_mri=5".
    TARGET_LIMITS = os.environ.get("TARGET_LIMITS", "")
    # Share of a target's limit, at its end, during which it is "due soon".
    TARGET_DUE_SOON_FRACTION = float(os.environ.get("TARGET_DUE_SOON_FRACTION", "0.2"))
    # Single sign-on (OpenID Connect, the code flow with PKCE) with the hospital's identity
    # provider; off while OIDC_ISSUER is unset. See docs/deployment.md, "Single sign-on".
    OIDC_ISSUER = os.environ.get("OIDC_ISSUER", "")
    OIDC_CLIENT_ID = os.environ.get("OIDC_CLIENT_ID", "")
    OIDC_CLIENT_SECRET = os.environ.get("OIDC_CLIENT_SECRET", "")
    OIDC_PROVIDER_NAME = os.environ.get("OIDC_PROVIDER_NAME", "single sign-on")
    OIDC_SCOPES = os.environ.get("OIDC_SCOPES", "openid profile email")
    # The claim that carries the user's groups, and which group gives which role (the
    # first entry the user has wins: list the most privileged first).
    OIDC_ROLE_CLAIM = os.environ.get("OIDC_ROLE_CLAIM", "groups")
    OIDC_ROLE_MAP = os.environ.get("OIDC_ROLE_MAP", "")
    # The claim matched against a tracker username at a user's first sign-in; with a
    # domain, "alice@DOMAIN" matches the username "alice" (and other domains nothing).
    OIDC_USERNAME_CLAIM = os.environ.get("OIDC_USERNAME_CLAIM", "preferred_username")
    OIDC_USERNAME_DOMAIN = os.environ.get("OIDC_USERNAME_DOMAIN", "")
    # Just-in-time accounts: an unknown user with a mapped role gets one (SSO-only).
    OIDC_CREATE_USERS = _env_flag("OIDC_CREATE_USERS")
    # No password login for any account linked to the identity provider.
    OIDC_ONLY = _env_flag("OIDC_ONLY")
    # The callback address registered with the provider; by default this server's own.
    OIDC_REDIRECT_URI = os.environ.get("OIDC_REDIRECT_URI", "")
    # Email (tracker/mail): SMTP through MAIL_SERVER; without it (development, a test
    # machine) each message is written to MAIL_FILE_PATH as one .eml file instead.
    MAIL_SERVER = os.environ.get("MAIL_SERVER", "")
    MAIL_PORT = int(os.environ.get("MAIL_PORT", "25"))
    MAIL_USE_TLS = _env_flag("MAIL_USE_TLS")  # STARTTLS on MAIL_PORT (587 usually)
    MAIL_USERNAME = os.environ.get("MAIL_USERNAME") or None
    MAIL_PASSWORD = os.environ.get("MAIL_PASSWORD") or None
    MAIL_FROM = os.environ.get("MAIL_FROM", "pathway-tracker@localhost")
    MAIL_TIMEOUT = int(os.environ.get("MAIL_TIMEOUT", "30"))
    MAIL_FILE_PATH = os.environ.get("MAIL_FILE_PATH", str(INSTANCE_DIR / "mail"))
    # The background worker (tracker/jobs): Huey. HUEY_REDIS_URL (redis://host:6379/N)
    # for several servers; unset, a SQLite file in the instance folder (one machine).
    HUEY_REDIS_URL = os.environ.get("HUEY_REDIS_URL", "")
    HUEY_NAME = os.environ.get("HUEY_NAME", "tracker")
    HUEY_SQLITE_PATH = os.environ.get("HUEY_SQLITE_PATH", str(INSTANCE_DIR / "huey.sqlite"))
    # Alerts (tracker/alerts): evaluated by the worker every ALERT_EVERY_MINUTES; the
    # daily digest at ALERT_DIGEST_TIME local time; no email during ALERT_QUIET_HOURS
    # ("HH:MM-HH:MM", local; empty: none), what falls due then is sent when they end.
    ALERT_EVERY_MINUTES = int(os.environ.get("ALERT_EVERY_MINUTES", "5"))
    ALERT_DIGEST_TIME = os.environ.get("ALERT_DIGEST_TIME", "07:30")
    ALERT_QUIET_HOURS = os.environ.get("ALERT_QUIET_HOURS", "21:00-07:00")
    # SQLite only: transactions begin explicitly, so that tests can roll back
    # savepoints; the running app keeps pysqlite's default (see docs/engineering.md).
    SQLITE_EXPLICIT_TRANSACTIONS = False
    # Production's checks (check_settings): long secrets, secure cookies.
    REQUIRE_SAFE_SETTINGS = False
    # `flask tracker reset-demo` drops every table: only the development configuration.
    DEMO_RESET_ALLOWED = False


class DevelopmentConfig(Config):
    SECRET_KEY = os.environ.get("SECRET_KEY", "dev-only-not-secret")
    # `make run` on a fresh machine: a key file made on first use, beside the database.
    AUDIT_KEY_FILE = os.environ.get("AUDIT_KEY_FILE", str(INSTANCE_DIR / "audit.key"))
    AUDIT_KEY_CREATE = True
    # `make demo-reset` (flask tracker reset-demo) empties this database: development only.
    DEMO_RESET_ALLOWED = True


class ProductionConfig(Config):
    REQUIRE_SAFE_SETTINGS = True


class TestingConfig(Config):
    TESTING = True
    SECRET_KEY = "test-secret"  # noqa: S105 - test only
    AUDIT_KEY = "test-audit-key-0123456789abcdef0123456789"
    SQLALCHEMY_DATABASE_URI = os.environ.get("TEST_DATABASE_URL", "sqlite://")
    WTF_CSRF_ENABLED = False
    SQLITE_EXPLICIT_TRANSACTIONS = True
    LOG_CHAIN_HEADS_AT_START = False  # tests/test_integrity.py turns it on
    # Tests log in many times from one address; the tests of the limits set them back
    # to Config's (tests/test_rate_limits.py).
    LOGIN_RATE_LIMIT_ADDRESS = "100000 per minute"
    LOGIN_RATE_LIMIT_ACCOUNT = "100000 per minute"
    API_RATE_LIMIT = "100000 per minute"
    API_ANONYMOUS_RATE_LIMIT = "100000 per minute"
    # Mail stays in memory (flask_mailman's outbox) unless a test points it elsewhere.
    MAIL_BACKEND = "locmem"


# TRACKER_ENV names one; unset, it is production (development runs only when asked for).
configs = {
    "development": DevelopmentConfig,
    "production": ProductionConfig,
    "testing": TestingConfig,
}


SECRET_MIN_LENGTH = 32
KEY_RECIPE = "python3 -c 'import secrets; print(secrets.token_hex(32))'"


class ConfigError(RuntimeError):
    """A setting the app refuses to start with; the message says how to put it right."""


def trusted_proxy_networks(value) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """TRUSTED_PROXIES as networks: a comma-separated string (or a list) of IPs and CIDRs."""
    entries = value.split(",") if isinstance(value, str) else list(value or ())
    networks = []
    for entry in (str(e).strip() for e in entries):
        if not entry:
            continue
        if entry.isdigit():
            raise ConfigError(
                f"TRUSTED_PROXIES={entry} is a count of proxies, the old form: it is now the "
                "list of the reverse proxies' addresses, comma-separated IPs or CIDRs, e.g. "
                "TRUSTED_PROXIES=10.0.0.5 or TRUSTED_PROXIES=10.0.0.0/24,::1 (unset: none)"
            )
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ConfigError(
                f"TRUSTED_PROXIES: {entry!r} is not an IP address or CIDR network; give the "
                "reverse proxies' addresses comma-separated, e.g. 10.0.0.5,10.0.1.0/24"
            ) from None
    return networks


def check_settings(config) -> list[str]:
    """What is wrong with a configuration, each with how to put it right (empty: nothing).

    Always: SECRET_KEY set, TRUSTED_PROXIES well-formed. With REQUIRE_SAFE_SETTINGS
    (production): SECRET_KEY of at least 32 characters, and secure cookies unless
    ALLOW_PLAIN_HTTP. The audit key is checked where it is read (tracker/audit/chain.py).
    """
    problems = []
    secret = config.get("SECRET_KEY") or ""
    strict = config.get("REQUIRE_SAFE_SETTINGS")
    if not secret or (strict and len(secret) < SECRET_MIN_LENGTH):
        problems.append(
            f"SECRET_KEY is {'shorter than 32 characters' if secret else 'not set'}: set it "
            f"to a random value of at least {SECRET_MIN_LENGTH} characters, the same on every "
            f"app server, e.g. the output of: {KEY_RECIPE}"
        )
    if strict and not config.get("SESSION_COOKIE_SECURE") and not config.get("ALLOW_PLAIN_HTTP"):
        problems.append(
            "SESSION_COOKIE_SECURE is not set: serve the tracker over HTTPS and set "
            "SESSION_COOKIE_SECURE=1; only to test it behind plain HTTP, set "
            "ALLOW_PLAIN_HTTP=1 instead"
        )
    try:
        trusted_proxy_networks(config.get("TRUSTED_PROXIES"))
    except ConfigError as error:
        problems.append(str(error))
    return problems
