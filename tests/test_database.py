"""The database keeps the invariants: migrations, append-only log, concurrent writers."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from flask_migrate import upgrade
from sqlalchemy import func, inspect, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from tests.conftest import make_app
from tests.helpers import driver, make_users
from tracker.engine import services
from tracker.engine.errors import StaleVersion
from tracker.engine.models import Event, Pathway
from tracker.extensions import db
from tracker.users.models import User


def test_upgrade_head_builds_the_schema_without_drift(scratch_url):
    app = make_app(scratch_url)
    with app.app_context():
        upgrade()
        tables = set(inspect(db.engine).get_table_names())
        assert {"user", "patient", "pathway", "event", "alembic_version"} <= tables
        result = app.test_cli_runner().invoke(args=["db", "check"])
        assert result.exit_code == 0, result.output
        db.engine.dispose()


@pytest.mark.parametrize(
    "statement",
    ["UPDATE event SET trigger = 'add_note'", "DELETE FROM event"],
)
def test_database_refuses_changing_the_event_log(users, session, statement):
    driver(users).fire("request_imaging")
    session.commit()
    savepoint = session.begin_nested()
    with pytest.raises(DBAPIError, match="append-only"):
        session.execute(text(statement))
    savepoint.rollback()
    assert session.scalar(select(func.count(Event.id))) == 2


def test_sixteen_writers_one_winner(scratch_url):
    # Each thread gets a connection of its own, closed when released (NullPool).
    app = make_app(
        scratch_url,
        SQLITE_EXPLICIT_TRANSACTIONS=False,
        SQLALCHEMY_ENGINE_OPTIONS={"poolclass": NullPool},
    )
    with app.app_context():
        upgrade()
        users = make_users()
        run = driver(users, referral=datetime.now(UTC) - timedelta(days=10))
        run.walk_to("imaging")
        run.do("record_imaging")
        db.session.commit()
        pathway_id, version = run.pathway.id, run.pathway.version
        user_ids = [users["coordinator"].id, users["surgeon"].id]
        before = db.session.scalar(select(func.count(Event.id)))
        db.session.remove()
    # Each thread tries a different transition out of imaging, all at the same version.
    choices = [
        ("refer_to_mdt", {}),
        ("request_biopsy", {}),
        ("withdraw", {"reason": "declined"}),
        ("record_death", {}),
    ]
    at = datetime.now(UTC) - timedelta(minutes=1)
    barrier = threading.Barrier(16)
    outcomes: list[str] = []

    def worker(i: int) -> None:
        with app.app_context():
            try:
                pathway = db.session.get(Pathway, pathway_id)
                user = db.session.get(User, user_ids[i % 2])
                trigger, data = choices[i % len(choices)]
                barrier.wait(timeout=30)
                services.record(pathway, trigger, data, at, user, version, uuid.uuid4().hex)
                db.session.commit()
                outcomes.append("won")
            except StaleVersion:
                db.session.rollback()
                outcomes.append("conflict")
            except Exception as exc:  # pragma: no cover - reported by the assertion below
                db.session.rollback()
                outcomes.append(f"error: {exc!r}")
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(outcomes) == ["conflict"] * 15 + ["won"], outcomes
    with app.app_context():
        assert db.session.scalar(select(func.count(Event.id))) == before + 1
        pathway = db.session.get(Pathway, pathway_id)
        assert pathway.version == version + 1
        db.engine.dispose()


def test_the_database_refuses_an_mrn_that_differs_only_in_case(users, session):
    """Two registrations racing past find_by_mrn: the unique index on lower(mrn) stops
    the second, as the service would have."""
    from datetime import date

    from sqlalchemy.exc import IntegrityError

    from tracker.patients.models import Patient

    def patient(mrn: str) -> Patient:
        return Patient(
            mrn=mrn,
            family_name="Case",
            given_name="Test",
            birth_date=date(1970, 1, 1),
            sex="female",
        )

    session.add(patient("H777001"))
    session.flush()
    with pytest.raises(IntegrityError), session.begin_nested():
        session.add(patient("h777001"))
        session.flush()
