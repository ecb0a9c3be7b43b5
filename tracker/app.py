"""The application factory: configuration, extensions, the engine's runtime, blueprints."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from flask import Flask, current_app, has_app_context

import tracker.models  # noqa: F401 - every mapper registered before first use
from config import configs
from tracker import cli, web
from tracker import extensions as ext
from tracker.accounts.audit_log import bp as audit_bp
from tracker.accounts.routes import account_bp, auth_bp, users_bp
from tracker.api.routes import bp as api_bp
from tracker.audit.chain import load_key
from tracker.core import runtime
from tracker.core.db import use_explicit_sqlite_transactions
from tracker.mdt.routes import bp as mdt_bp
from tracker.pathway.routes import bp as pathway_bp
from tracker.patients.routes import bp as patients_bp
from tracker.reports.routes import bp as reports_bp
from tracker.returns.routes import bp as returns_bp
from tracker.review.routes import bp as review_bp
from tracker.web.boundary import TrackerFlask
from tracker.worklist.routes import bp as worklist_bp

# Every feature's pages, in the order their URL rules are matched.
BLUEPRINTS = (
    auth_bp,
    users_bp,
    worklist_bp,
    patients_bp,
    pathway_bp,
    mdt_bp,
    review_bp,
    reports_bp,
    returns_bp,
    api_bp,
    account_bp,
    audit_bp,
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


def create_app(config: str | type | None = None) -> Flask:
    app = TrackerFlask(__name__, template_folder=template_folder(), instance_relative_config=True)
    if config is None or isinstance(config, str):
        config = configs[config or os.environ.get("TRACKER_ENV", "development")]
    app.config.from_object(config)
    if not app.config.get("SECRET_KEY"):
        raise RuntimeError("SECRET_KEY is not set: export SECRET_KEY (see README, Configuration)")
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgres://"):
        app.config["SQLALCHEMY_DATABASE_URI"] = app.config["SQLALCHEMY_DATABASE_URI"].replace(
            "postgres://", "postgresql+psycopg://", 1
        )
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.extensions["audit_key"] = load_key(app)

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

    web.init_app(app)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    # The API reads no session cookie, only bearer tokens, so CSRF does not apply to it.
    ext.csrf.exempt(api_bp)
    cli.init_app(app)
    return app
