"""Fixtures: one app per backend (schema built by the migrations), a rollback per test.

Every test that takes ``app`` or ``session`` runs on SQLite and on PostgreSQL.
PostgreSQL comes from TEST_DATABASE_URL; without it those runs skip and say why.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from flask_migrate import upgrade
from sqlalchemy import text
from sqlalchemy.orm import scoped_session, sessionmaker

from config import TestingConfig
from tracker import create_app
from tracker.extensions import db

PG_URL = os.environ.get("TEST_DATABASE_URL", "")
if PG_URL and not PG_URL.startswith("postgresql"):
    raise RuntimeError("TEST_DATABASE_URL must be a postgresql+psycopg:// URL")


def _this_workers(url: str) -> str:
    """Under pytest-xdist (`make test` runs a worker per core) each worker has a database
    of its own beside TEST_DATABASE_URL's (``test_gw0``, ``test_gw1``, created when
    missing): one worker's schema reset must not drop the tables the other is using.
    Scratch databases are named by process id, so they are the worker's own too."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not url or not worker:
        return url
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    base = make_url(url)
    name = f"{base.database}_{worker}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        found = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
        if not found:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


PG_URL = _this_workers(PG_URL)
if os.environ.get("REQUIRE_ALL_BACKENDS") and not PG_URL:
    raise RuntimeError("REQUIRE_ALL_BACKENDS is set (CI): TEST_DATABASE_URL must name PostgreSQL")
PG_SKIP_REASON = (
    "PostgreSQL tests need TEST_DATABASE_URL, e.g. "
    "postgresql+psycopg://postgres@127.0.0.1:5432/test (.ci/run sets it)"
)
BACKENDS = ["sqlite", "postgresql"]
PASSWORD = "correct-horse-battery"


def reset_postgres(url: str) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        # Fail fast, naming the blocker, rather than wait on a connection left open.
        conn.execute(text("SET lock_timeout = '10s'"))
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def database_url(backend: str, tmp_path_factory, name: str = "test") -> str:
    if backend == "postgresql":
        if not PG_URL:
            pytest.skip(PG_SKIP_REASON)
        reset_postgres(PG_URL)
        return PG_URL
    return f"sqlite:///{tmp_path_factory.mktemp('db') / f'{name}.sqlite'}"


# The apps a test makes for itself (the session's `app` fixture aside): their engines are
# disposed when the test ends, so no pooled connection is left for the garbage collector
# to close in the middle of a later test (a ResourceWarning, an error here).
_made_by_the_test: list | None = None


def make_app(url: str, **overrides):
    config = type("Config", (TestingConfig,), {"SQLALCHEMY_DATABASE_URI": url, **overrides})
    app = create_app(config)
    if _made_by_the_test is not None:
        _made_by_the_test.append(app)
    return app


@pytest.fixture(autouse=True)
def _dispose_the_apps_a_test_made():
    global _made_by_the_test
    _made_by_the_test = []
    yield
    made, _made_by_the_test = _made_by_the_test, None
    for made_app in made:
        with made_app.app_context():
            db.engine.dispose()


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture(scope="session")
def app(backend, tmp_path_factory):
    app = make_app(database_url(backend, tmp_path_factory))
    with app.app_context():
        upgrade()
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def session(app):
    """A session inside an outer transaction that is rolled back after the test.

    Commits in the code under test release savepoints only, so every test starts
    from the empty, migrated schema.
    """
    with app.app_context():
        connection = db.engine.connect()
        outer = connection.begin()
        original = db.session
        factory = sessionmaker(bind=connection, join_transaction_mode="create_savepoint")
        db.session = scoped_session(factory, scopefunc=original.registry.scopefunc)
        try:
            yield db.session
        finally:
            db.session.remove()
            db.session = original
            outer.rollback()
            connection.close()


@pytest.fixture
def client(app, session):
    # The rate limits' counters (memory) start empty, like the database.
    app.extensions["tracker_limiter"].reset()
    return app.test_client()


@pytest.fixture
def runner(app, session):
    return app.test_cli_runner()


@pytest.fixture
def users(session):
    from tests.helpers import make_users

    return make_users()


@pytest.fixture
def now():
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def login(client):
    def do(username: str, password: str = PASSWORD):
        from tests.helpers import log_in

        response = log_in(client, username, password)
        assert response.status_code == 302, response.text
        return response

    return do


@contextmanager
def postgres_scratch(suffix: str = ""):
    """A new, empty PostgreSQL database beside TEST_DATABASE_URL's, dropped afterwards."""
    if not PG_URL:
        pytest.skip(PG_SKIP_REASON)
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    name = f"tracker_scratch_{os.getpid()}{suffix}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def scratch_url(backend, tmp_path):
    """An empty database of the backend, for tests that must really commit."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'scratch.sqlite'}"
        return
    with postgres_scratch() as url:
        yield url
