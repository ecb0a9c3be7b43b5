"""The surgical care-pathway tracker."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from flask import Flask


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


def create_app(config: str | type | None = None) -> Flask:
    from config import configs
    from tracker import extensions as ext
    from tracker.core.db import use_explicit_sqlite_transactions

    app = Flask(__name__, template_folder=template_folder(), instance_relative_config=True)
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
    from tracker.audit.chain import load_key

    app.extensions["audit_key"] = load_key(app)

    ext.db.init_app(app)
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

    import tracker.models  # noqa: F401 - every mapper registered before first use
    from tracker import cli, web

    web.init_app(app)
    cli.init_app(app)
    return app
