"""Integrity outside the chains: patient and user rows are sealed under the audit key,
so `flask tracker verify` names a row changed in the database directly; each chain's
head goes to the application log; the command line is audited as its operating-system
user and host.
"""

from __future__ import annotations

import getpass
import json
import logging
import socket
from datetime import date

import pytest
from flask_migrate import upgrade
from sqlalchemy import inspect, select, text

from tests import helpers
from tests.conftest import PASSWORD, make_app
from tests.helpers import driver, make_users, new_patient
from tracker.audit.models import AuditEntry, ChainHead
from tracker.audit.seals import broken_seals
from tracker.extensions import db
from tracker.patients.models import Patient
from tracker.users.models import User

CLEAN = "Every patient and user row matches its seal."


def verify(runner):
    db.session.commit()
    return runner.invoke(args=["tracker", "verify"])


def log_in(client, username: str, password: str = PASSWORD):
    """The whole login, the administrator's code included."""
    return helpers.log_in(client, username, password)


def operator() -> str:
    return f"cli:{getpass.getuser()}@{socket.gethostname()}"


@pytest.fixture
def patient(users, session):
    patient = new_patient(users["coordinator"], mrn="RX0000001")
    new_patient(users["coordinator"], mrn="RX0000002")  # untouched: not named
    session.commit()
    return patient


# -- a change made in the database directly is named ---------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        "UPDATE patient SET birth_date = '1970-05-01' WHERE id = :id",
        "UPDATE patient SET mrn = 'RX9999999' WHERE id = :id",
    ],
    ids=["birth_date", "mrn"],
)
def test_verify_names_a_patient_changed_in_the_database(runner, session, patient, change):
    assert verify(runner).exit_code == 0
    session.execute(text(change), {"id": patient.id})
    result = verify(runner)
    assert result.exit_code == 1, result.output
    assert "1 rows do not match their seal" in result.output
    assert f"  patient {patient.id}\n" in result.output
    assert "  user " not in result.output
    assert CLEAN not in result.output
    # The chains themselves are intact: the seal is what caught it.
    assert "The event chain is intact" in result.output


def test_verify_names_a_viewer_made_admin_in_the_database(runner, session, users, patient):
    viewer = users["viewer"]
    session.execute(text("UPDATE \"user\" SET role = 'admin' WHERE id = :id"), {"id": viewer.id})
    result = verify(runner)
    assert result.exit_code == 1
    assert f"  user {viewer.id}\n" in result.output
    assert "  patient " not in result.output
    assert broken_seals(session) == [("user", viewer.id)]


def test_a_seal_copied_from_another_row_does_not_match(session, users):
    """The seal covers the row's id: a forger cannot move a row's content and seal to
    another row (a patient's identity onto another's pathways)."""
    a, b = users["viewer"], users["surgeon"]
    session.execute(
        text('UPDATE "user" SET seal = (SELECT seal FROM "user" WHERE id = :a) WHERE id = :b'),
        {"a": a.id, "b": b.id},
    )
    assert broken_seals(session) == [("user", b.id)]


def _alarms(session) -> list[AuditEntry]:
    return list(
        session.scalars(
            select(AuditEntry).where(AuditEntry.action == "seal_mismatch").order_by(AuditEntry.id)
        )
    )


def test_a_login_does_not_seal_a_role_changed_in_the_database(
    client, runner, session, users, patient, caplog
):
    """The login writes the user's row (last_login_at): the forged role stays named by
    verify, and the login raises the alarm without failing."""
    viewer = users["viewer"]
    session.execute(text("UPDATE \"user\" SET role = 'surgeon' WHERE id = :id"), {"id": viewer.id})
    session.commit()
    with caplog.at_level(logging.ERROR, logger="tracker.audit.seals"):
        assert log_in(client, "viewer").status_code == 302
    assert f"user {viewer.id} does not match its seal" in caplog.text
    session.expire_all()
    assert session.get(User, viewer.id).last_login_at is not None  # the login went through
    result = verify(runner)
    assert result.exit_code == 1, result.output
    assert f"  user {viewer.id}\n" in result.output
    [alarm] = _alarms(session)
    assert alarm.outcome == "refused"
    assert json.loads(alarm.detail)["table"] == "user"
    assert json.loads(alarm.detail)["id"] == viewer.id
    # Logged in again: still named, one more alarm for the new transaction.
    client.post("/logout")
    assert log_in(client, "viewer").status_code == 302
    assert f"  user {viewer.id}\n" in verify(runner).output
    assert len(_alarms(session)) == 2


def test_an_edit_through_the_app_does_not_seal_a_birth_date_changed_in_the_database(
    client, runner, session, users, patient
):
    session.execute(
        text("UPDATE patient SET birth_date = '1970-05-01' WHERE id = :id"), {"id": patient.id}
    )
    session.commit()
    log_in(client, "coordinator")
    response = client.post(
        f"/patients/{patient.id}/edit",
        data={
            "mrn": patient.mrn,
            "nhs_number": patient.nhs_number or "",
            "family_name": patient.family_name,
            "given_name": patient.given_name,
            "birth_date": "1970-05-01",  # as the form showed it
            "sex": patient.sex,
            "gp_practice": "Elm Surgery",
        },
    )
    assert response.status_code == 302, response.text
    session.expire_all()
    assert session.get(Patient, patient.id).gp_practice == "Elm Surgery"  # saved
    result = verify(runner)
    assert result.exit_code == 1, result.output
    assert f"  patient {patient.id}\n" in result.output
    [alarm] = _alarms(session)
    assert alarm.patient_id == patient.id and alarm.outcome == "refused"
    assert json.loads(alarm.detail)["table"] == "patient"


def test_reseal_seals_a_checked_row_again_and_is_audited(runner, session, users, patient):
    session.execute(
        text("UPDATE patient SET gp_practice = 'Checked' WHERE id = :id"), {"id": patient.id}
    )
    assert verify(runner).exit_code == 1
    result = runner.invoke(args=["tracker", "reseal", "patient", str(patient.id)])
    assert result.exit_code == 0, result.output
    assert CLEAN in verify(runner).output
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "reseal"))
    assert entry.patient_id == patient.id and entry.username == operator()
    missing = runner.invoke(args=["tracker", "reseal", "user", "999999"])
    assert missing.exit_code == 1 and "No user 999999" in missing.output


def test_a_write_from_a_stale_copy_seals_what_the_database_holds(runner, session, patient):
    """Two app servers: one changed the GP practice (and sealed it) after the other loaded
    the patient; the other's change of the name is sealed over the stored row, not over
    its stale copy."""
    from tracker.audit.seals import reseal_row

    assert patient.gp_practice != "Elm Surgery"  # loaded, and about to go stale
    session.execute(
        text("UPDATE patient SET gp_practice = 'Elm Surgery' WHERE id = :id"), {"id": patient.id}
    )
    reseal_row(session, "patient", patient.id)  # as the other server's write sealed it
    patient.family_name = "Stale"
    session.flush()
    assert broken_seals(session) == []
    assert _alarms(session) == []
    assert (
        session.scalar(
            text("SELECT gp_practice || family_name FROM patient WHERE id = :id"),
            {"id": patient.id},
        )
        == "Elm SurgeryStale"
    )


def test_verify_names_a_patient_whose_mrn_key_was_changed(runner, session, patient):
    """Every MRN lookup goes through mrn_key: changed, it sends them to another patient."""
    assert "Every patient's MRN lookup key matches their MRN." in verify(runner).output
    session.execute(
        text("UPDATE patient SET mrn_key = 'rx7777777' WHERE id = :id"), {"id": patient.id}
    )
    result = verify(runner)
    assert result.exit_code == 1, result.output
    assert "1 patients' MRN lookup key is not their MRN's" in result.output
    assert f"  patient {patient.id}\n" in result.output
    assert CLEAN in result.output  # the seal does not cover the key: this check does


# -- changes made through the app keep every seal ------------------------------------------


def test_edits_through_the_app_keep_verify_clean(client, runner, session, users, patient):
    session.commit()
    # A patient's details corrected on the edit page.
    log_in(client, "coordinator")
    response = client.post(
        f"/patients/{patient.id}/edit",
        data={
            "mrn": "RX0000009",
            "nhs_number": "",
            "family_name": "Doe",
            "given_name": "Janet",
            "birth_date": "1961-05-01",
            "sex": "female",
            "gp_practice": "Castle Street Surgery",
        },
    )
    assert response.status_code == 302, response.text
    client.post("/logout")
    # A role changed and an account deactivated by an administrator.
    log_in(client, "admin")
    assert client.post(f"/users/{users['viewer'].id}", data={"role": "surgeon"}).status_code == 302
    client.post("/logout")
    # A password changed by its owner.
    log_in(client, "surgeon")
    new = "a much longer passphrase here"
    changed = client.post(
        "/account/password", data={"current": PASSWORD, "new": new, "confirm": new}
    )
    assert changed.status_code == 302
    client.post("/logout")
    # Failed logins and a successful one (the counters are not sealed).
    assert log_in(client, "coordinator", "wrong password!!").status_code == 401
    assert log_in(client, "coordinator").status_code == 302
    session.expire_all()
    stored = session.get(Patient, patient.id)
    assert (stored.mrn, stored.birth_date) == ("RX0000009", date(1961, 5, 1))
    viewer = session.get(User, users["viewer"].id)
    assert (viewer.role, viewer.active) == ("surgeon", False)
    assert session.get(User, users["coordinator"].id).last_login_at is not None
    result = verify(runner)
    assert result.exit_code == 0, result.output
    assert CLEAN in result.output


def test_the_services_seal_new_rows_and_changes(runner, session, users):
    """Whichever service writes the row: registration, account creation and changes."""
    run = driver(users)
    run.walk_to("imaging")
    created = runner.invoke(
        args=["tracker", "create-user", "newcomer", "--role", "viewer"],
        input="a long unguessable passphrase\n",
    )
    assert created.exit_code == 0, created.output
    users["admin"].full_name = "Ada Admin"
    run.pathway.patient.gp_practice = "Elm Surgery"
    # Columns left to their defaults are sealed as they are stored.
    session.add(User(username="bare", role="viewer", password_hash="x"))
    session.flush()
    sealed = session.scalars(select(User.seal).where(User.username == "newcomer")).one()
    assert len(sealed) == 64
    assert broken_seals(session) == []
    assert CLEAN in verify(runner).output


def test_the_demo_seeder_seals_its_bulk_inserted_patients(runner, session):
    seeded = runner.invoke(args=["tracker", "seed-demo", "--pathways", "5"])
    assert seeded.exit_code == 0, seeded.output
    assert session.scalar(select(Patient.id).where(Patient.seal == "")) is None
    assert broken_seals(session) == []


# -- the chain heads, in the application log ------------------------------------------------


def head_lines(session) -> list[str]:
    return [
        f"chain head: {h.name} length={h.seq} hash={h.last_hash}"
        for h in session.scalars(select(ChainHead).order_by(ChainHead.name))
    ]


def test_verify_and_the_daily_command_log_each_chain_head(runner, session, users, caplog):
    driver(users).walk_to("imaging")
    session.commit()
    expected = head_lines(session)
    assert [line.split()[2] for line in expected] == ["audit", "event"]
    assert all(not line.endswith("length=0") for line in expected)
    with caplog.at_level(logging.INFO):
        verify(runner)
        logged = runner.invoke(args=["tracker", "log-chain-heads"])
    assert logged.exit_code == 0
    # The command prints the heads (its output may also hold what a logging handler
    # left by an earlier test's migration writes to the captured stream).
    assert [line for line in logged.output.splitlines() if line.startswith("chain head")] == (
        expected
    )
    heads = [r.getMessage() for r in caplog.records if r.name.endswith(".chains")]
    assert heads == expected + expected  # verify's, then the daily command's


class Kept(logging.Handler):
    """The records of one logger (the migrations' logging setup replaces the root's
    handlers, pytest's among them)."""

    def __init__(self, name: str):
        super().__init__(logging.DEBUG)
        self.logger, self.records = logging.getLogger(name), []

    def emit(self, record) -> None:
        self.records.append(record.getMessage())

    def __enter__(self):
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        self.logger.removeHandler(self)


def test_the_app_logs_each_chain_head_when_it_starts(scratch_url):
    app = make_app(scratch_url)
    with app.app_context():
        upgrade()
        driver_users = make_users()
        driver(driver_users).walk_to("imaging")
        db.session.commit()
        expected = head_lines(db.session)
        db.session.remove()
    assert all(not line.endswith("length=0") for line in expected)
    with Kept("tracker.app.chains") as kept:
        started = make_app(scratch_url, LOG_CHAIN_HEADS_AT_START=True)
    assert kept.records == expected
    for one in (app, started):
        with one.app_context():
            db.engine.dispose()


# -- the command line is audited as who ran it ---------------------------------------------


def test_command_line_changes_are_audited_as_the_operating_system_user(runner, session):
    created = runner.invoke(
        args=["tracker", "create-user", "newcomer", "--role", "viewer"],
        input="a long unguessable passphrase\n",
    )
    assert created.exit_code == 0, created.output
    (entry,) = session.scalars(select(AuditEntry).where(AuditEntry.action == "create_user"))
    assert entry.user_id is None  # no user of the app ran it
    assert entry.username == operator() and entry.address == operator()
    assert json.loads(entry.detail) == {"role": "viewer", "username": "newcomer"}


# -- the migration seals the rows already there --------------------------------------------


def test_the_migration_seals_existing_rows_and_needs_the_key(scratch_url, capsys):
    app = make_app(scratch_url)
    with app.app_context():
        upgrade(revision="5d0c7e21a9f4")
        db.session.execute(
            text(
                'INSERT INTO "user" (username, full_name, role, password_hash, active, '
                "failed_logins, created_at) VALUES ('old', 'Old Timer', 'admin', 'x', :t, 0, :at)"
            ),
            {"t": True, "at": "2026-01-01 00:00:00+00:00"},
        )
        db.session.execute(
            text(
                "INSERT INTO patient (mrn, family_name, given_name, birth_date, sex, created_at) "
                "VALUES ('RX1', 'Doe', 'Jane', '1960-05-01', 'female', :at)"
            ),
            {"at": "2026-01-01 00:00:00+00:00"},
        )
        db.session.commit()
        key = app.extensions.pop("audit_key")
        capsys.readouterr()
        with pytest.raises(SystemExit):
            upgrade()
        # Flask-Migrate logs the error (to stderr, by the migrations' logging setup).
        assert "needs the audit key, and none is loaded: set AUDIT_KEY" in capsys.readouterr().err
        db.session.rollback()
        columns = {c["name"] for c in inspect(db.engine).get_columns("patient")}
        assert "seal" not in columns  # refused before any change
        app.extensions["audit_key"] = key
        upgrade()
        assert broken_seals(db.session) == []
        db.session.execute(text("UPDATE patient SET birth_date = '1961-05-01'"))
        (patient_id,) = db.session.scalars(select(Patient.id)).all()
        assert broken_seals(db.session) == [("patient", patient_id)]
        db.session.rollback()
        db.session.remove()
        db.engine.dispose()
