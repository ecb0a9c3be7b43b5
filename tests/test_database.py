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


def test_the_database_refuses_an_mrn_that_is_another_written_differently(users, session):
    """Two registrations racing past find_by_mrn: the unique index on mrn_key stops the
    second, as the service would have, for letter case beyond ASCII and Unicode forms."""
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
    session.add(patient("ÄX777"))
    session.flush()
    for other in ("h777001", "äx777", "A\u0308X777"):
        with pytest.raises(IntegrityError), session.begin_nested():
            session.add(patient(other))
            session.flush()


BEFORE_MRN_KEY = "a7c3e5f1d2b9"  # the revision before the MRN key


def _old_patient(mrn: str) -> int:
    """A patient row as the schema before mrn_key held it."""
    return db.session.execute(
        text(
            "INSERT INTO patient (mrn, family_name, given_name, birth_date, sex, created_at) "
            "VALUES (:mrn, 'Old', 'Row', '1970-01-01', 'female', CURRENT_TIMESTAMP) "
            "RETURNING id"
        ),
        {"mrn": mrn},
    ).scalar_one()


def test_the_migration_keys_existing_mrns(scratch_url):
    from flask_migrate import downgrade

    from tracker.patients.models import Patient
    from tracker.patients.services import find_by_mrn

    app = make_app(scratch_url)
    with app.app_context():
        upgrade(revision=BEFORE_MRN_KEY)
        ids = {mrn: _old_patient(mrn) for mrn in ("ÄX1", "rx2", "\uff21B3")}
        db.session.commit()
        upgrade()
        keys = dict(db.session.execute(select(Patient.mrn, Patient.mrn_key)).all())
        assert keys == {"ÄX1": "äx1", "rx2": "rx2", "\uff21B3": "ab3"}
        assert find_by_mrn("äx1").id == ids["ÄX1"] and find_by_mrn("AB3").id == ids["\uff21B3"]
        db.session.remove()
        downgrade(revision=BEFORE_MRN_KEY)
        assert "mrn_key" not in {c["name"] for c in inspect(db.engine).get_columns("patient")}
        db.session.remove()
        db.engine.dispose()


def test_the_migration_stops_on_one_mrn_written_two_ways_naming_both(scratch_url, capfd):
    """The old index on lower(mrn) let both in (a combining accent is not the precomposed
    letter to lower()); the migration must not merge them itself."""
    app = make_app(scratch_url)
    with app.app_context():
        upgrade(revision=BEFORE_MRN_KEY)
        first, second = _old_patient("ÄX1"), _old_patient("A\u0308X1")
        _old_patient("RX9")
        db.session.commit()
        db.session.remove()
        with pytest.raises(SystemExit):  # flask db upgrade: the error, and exit status 1
            upgrade()
        message = capfd.readouterr().err
        assert (
            f"patient {first} (MRN 'ÄX1', that is '\\xc4X1') and "
            f"patient {second} (MRN 'A\u0308X1', that is 'A\\u0308X1')"
        ) in message, message
        assert "Merge each into one patient" in message and "Nothing was changed" in message
        version = db.session.scalar(text("SELECT version_num FROM alembic_version"))
        assert version == BEFORE_MRN_KEY
        assert "mrn_key" not in {c["name"] for c in inspect(db.engine).get_columns("patient")}
        db.session.remove()
        db.engine.dispose()
