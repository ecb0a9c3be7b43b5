"""The application factory: configuration, extensions, the engine's runtime, blueprints."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from flask import Flask, current_app, has_app_context
from sqlalchemy.exc import SQLAlchemyError

import tracker.models  # noqa: F401 - every mapper registered before first use
from config import ConfigError, check_settings, configs
from tracker import cli, mail, web
from tracker import extensions as ext
from tracker.accounts import sso
from tracker.accounts.audit_log import bp as audit_bp
from tracker.accounts.routes import account_bp, auth_bp, users_bp
from tracker.alerts import routes as alerts_routes
from tracker.alerts import schedule as alert_schedule
from tracker.api import meetings as _api_meetings  # noqa: F401 - /api/v1/mdt-meetings
from tracker.api import routes as _api_routes  # noqa: F401 - the rest of /api/v1
from tracker.api.base import bp as api_bp
from tracker.api.services import present
from tracker.audit.chain import AuditKeyError, heads_logger, load_key, log_chain_heads
from tracker.bulk.routes import bp as bulk_bp
from tracker.core import runtime
from tracker.core.db import use_explicit_sqlite_transactions
from tracker.engine import teams
from tracker.mdt import documents as _documents  # noqa: F401 - outcome letters
from tracker.mdt import live as _live  # noqa: F401 - agenda, live mode, roll-over
from tracker.mdt import meetings as _meetings  # noqa: F401 - the meetings' pages
from tracker.mdt.routes import bp as mdt_bp
from tracker.mywork.routes import bp as mywork_bp
from tracker.pathway.routes import bp as pathway_bp
from tracker.patients.routes import bp as patients_bp
from tracker.reports.routes import bp as reports_bp
from tracker.returns.routes import bp as returns_bp
from tracker.review.routes import bp as review_bp
from tracker.saved_views.routes import bp as views_bp
from tracker.teams import routes as teams_routes
from tracker.web import limits
from tracker.web.boundary import TrackerFlask
from tracker.worklist.routes import bp as worklist_bp

# Every feature's pages, in the order their URL rules are matched.
BLUEPRINTS = (
    auth_bp,
    sso.bp,
    users_bp,
    worklist_bp,
    patients_bp,
    pathway_bp,
    mdt_bp,
    review_bp,
    mywork_bp,
    reports_bp,
    returns_bp,
    views_bp,
    bulk_bp,
    teams_routes.bp,
    api_bp,
    account_bp,
    audit_bp,
    alerts_routes.bp,
)


def project_folder(name: str) -> str:
    """A top-level folder (templates, migrations): beside the package in a checkout,
    under <prefix>/share/tracker when the package is installed from a wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / name, Path(sys.prefix) / "share" / "tracker" / name):
        if candidate.is_dir():
            return str(candidate)
    raise RuntimeError(f"{name}/ found neither beside the package nor under share/tracker")


def template_folder() -> str:
    return project_folder("templates")


def install_runtime() -> None:
    """The engine's session and settings are Flask-SQLAlchemy's session and the config of
    the app in context (the defaults outside one)."""
    runtime.install(
        session=lambda: ext.db.session,
        config=lambda: current_app.config if has_app_context() else None,
    )


def _config_class(config: str | type | None) -> type:
    """The configuration named (or TRACKER_ENV's); unset, production: the development
    configuration, with its known key, runs only when asked for."""
    if config is not None and not isinstance(config, str):
        return config
    name = config or os.environ.get("TRACKER_ENV", "").strip() or "production"
    if name not in configs:
        raise ConfigError(
            f"TRACKER_ENV={name!r} is not a configuration: use one of {', '.join(configs)} "
            "(unset: production)"
        )
    return configs[name]


def _check_settings(app: Flask) -> None:
    """Refuse to start, naming every setting to put right at once; the audit key is read
    here too. Secure cookies get the __Host- prefix (this host only, path /, HTTPS)."""
    problems = check_settings(app.config) + alert_schedule.check(app.config)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    try:
        app.extensions["audit_key"] = load_key(app)
    except AuditKeyError as error:
        problems.append(str(error))
    if problems:
        name = "production" if app.config.get("REQUIRE_SAFE_SETTINGS") else "this configuration"
        raise ConfigError(
            f"The tracker will not start with {name}'s settings (see docs/configuration.md; "
            "`make run` runs the development configuration, TRACKER_ENV=development):\n- "
            + "\n- ".join(problems)
        )
    if app.config["SESSION_COOKIE_SECURE"]:
        if not app.config["SESSION_COOKIE_NAME"].startswith("__Host-"):
            app.config["SESSION_COOKIE_NAME"] = "__Host-" + app.config["SESSION_COOKIE_NAME"]
        app.config["SESSION_COOKIE_PATH"] = "/"
        app.config["SESSION_COOKIE_DOMAIN"] = None
    elif app.config.get("REQUIRE_SAFE_SETTINGS"):
        app.logger.warning(
            "ALLOW_PLAIN_HTTP is set: the session cookie is sent over plain HTTP, readable "
            "on the network. For testing only; serve over HTTPS with SESSION_COOKIE_SECURE=1."
        )


def create_app(config: str | type | None = None) -> Flask:
    app = TrackerFlask(__name__, template_folder=template_folder(), instance_relative_config=True)
    app.config.from_object(_config_class(config))
    _check_settings(app)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgres://"):
        app.config["SQLALCHEMY_DATABASE_URI"] = app.config["SQLALCHEMY_DATABASE_URI"].replace(
            "postgres://", "postgresql+psycopg://", 1
        )
    teams.parse(app.config["TEAMS"])  # a mistyped team list stops the start, saying where

    ext.db.init_app(app)
    install_runtime()
    ext.migrate.init_app(
        app,
        ext.db,
        directory=project_folder("migrations"),
        render_as_batch=True,
    )
    ext.csrf.init_app(app)
    ext.login_manager.init_app(app)
    ext.bootstrap.init_app(app)
    with app.app_context():
        if app.config["SQLITE_EXPLICIT_TRANSACTIONS"] and ext.db.engine.dialect.name == "sqlite":
            use_explicit_sqlite_transactions(ext.db.engine)

    mail.init_app(app)
    web.init_app(app)
    alerts_routes.init_app(app)
    teams_routes.init_app(app)
    sso.init_app(app)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    # The API reads no session cookie, only bearer tokens, so CSRF does not apply to it.
    ext.csrf.exempt(api_bp)
    limits.init_app(app, login_view="auth.login", api_blueprint=api_bp, read_token=present)
    cli.init_app(app)
    # When the app starts to serve; a `flask ...` command logs them itself if it needs to
    # (verify, log-chain-heads), so a cron job does not log them twice.
    if (
        app.config.get("LOG_CHAIN_HEADS_AT_START")
        and click.get_current_context(silent=True) is None
    ):
        log_heads_at_start(app)
    return app


def log_heads_at_start(app: Flask) -> None:
    """Each chain's head to the log as the app starts (see `flask tracker log-chain-heads`);
    a database not built yet (before `flask db upgrade`) is said, not an error."""
    with app.app_context():
        try:
            log_chain_heads(app, ext.db.session)
        except SQLAlchemyError as exc:
            heads_logger(app).warning(
                "chain heads not logged at start, the database could not be read: %s",
                str(exc.orig if getattr(exc, "orig", None) else exc).splitlines()[0],
            )
        finally:
            ext.db.session.rollback()
            ext.db.session.remove()
