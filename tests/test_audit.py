"""The audit log and the HMAC hash chains over it and over the events.

HIPAA's audit controls and integrity: every view and change is written (who, what,
which patient, when, from where), logins and refusals too; the database refuses to
change either log; `flask tracker verify` finds a changed, inserted or removed row and
names the first broken link; concurrent writers cannot fork a chain.
"""

from __future__ import annotations

import enum
import getpass
import hashlib
import hmac
import json
import random
import socket
import threading
from datetime import UTC, date, datetime, timedelta, timezone
from itertools import pairwise

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from tests.conftest import PASSWORD, make_app
from tests.helpers import driver, make_users, new_pathway
from tests.helpers import log_in as full_login
from tracker.audit.chain import (
    FIELDS,
    AuditKeyError,
    canonical,
    digest,
    load_key,
    pending_entries,
    seal_all,
    seal_pending,
    verify_chain,
)
from tracker.audit.models import AuditEntry, ChainHead
from tracker.audit.services import acting_as, command_line_actor, record
from tracker.engine.models import Event
from tracker.extensions import db


def entries(**where) -> list[AuditEntry]:
    query = select(AuditEntry)
    for name, value in where.items():
        query = query.where(getattr(AuditEntry, name) == value)
    return list(db.session.scalars(query.order_by(AuditEntry.id)))


def log_in(client, username: str):
    assert full_login(client, username, PASSWORD).status_code
    return client


# -- what is written ------------------------------------------------------------------------


def test_a_view_of_a_patients_data_is_written_with_who_what_whom_when_where(client, users, session):
    pathway = driver(users).pathway
    session.commit()
    log_in(client, "surgeon")
    before = datetime.now(UTC)
    assert client.get(f"/pathways/{pathway.id}").status_code == 200
    (entry,) = entries(action="view", pathway_id=pathway.id)
    assert entry.user_id == users["surgeon"].id and entry.username == "surgeon"
    assert entry.patient_id == pathway.patient_id
    assert entry.address == "127.0.0.1"
    assert entry.method == "GET" and entry.path == f"/pathways/{pathway.id}"
    assert entry.at.tzinfo is not None and entry.at.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= entry.at <= datetime.now(UTC)
    for path in (f"/patients/{pathway.patient_id}", f"/pathways/{pathway.id}/print"):
        client.get(path)
    assert len(entries(action="view", patient_id=pathway.patient_id)) == 3
    client.get("/worklist.csv")
    (export,) = entries(action="export")
    assert export.detail.startswith('{"endpoint": "worklist.export"')


def test_list_views_are_written_with_their_query(client, users, session):
    session.commit()
    log_in(client, "viewer")
    client.get("/?q=smith&state=referred")
    (entry,) = entries(action="view")
    assert "worklist.index" in entry.detail and "q=smith" in entry.detail


def test_a_change_is_written_in_its_own_transaction_with_the_patient(client, users, session):
    run = driver(users)
    session.commit()
    log_in(client, "coordinator")
    pathway = run.pathway
    page = client.get(f"/pathways/{pathway.id}/record/request_imaging")
    assert page.status_code == 200
    count = len(entries(action="record_event"))
    response = client.post(
        f"/pathways/{pathway.id}/record/request_imaging",
        data={
            "occurred_at": (datetime.now().replace(microsecond=0)).strftime("%Y-%m-%dT%H:%M"),
            "expected_version": pathway.version,
            "request_id": "audit-change-1",
            "modality": "mri",
            "region": "whole spine",
        },
    )
    assert response.status_code in (302, 422), response.get_data(as_text=True)[:2000]
    if response.status_code == 302:
        (entry,) = entries(action="record_event")[count:]
        assert entry.pathway_id == pathway.id and entry.patient_id == pathway.patient_id
        assert entry.user_id == users["coordinator"].id and entry.address == "127.0.0.1"
        assert '"trigger": "request_imaging"' in entry.detail


def test_every_change_through_the_services_is_written(users, session):
    """The session hook: registration, opening, each step, accounts and tokens."""
    from tracker.api.services import create_token, revoke

    start = len(entries())
    run = driver(users)
    run.walk_to("imaging")
    actions = [e.action for e in entries()[start:]]
    assert actions.count("register_patient") == 1
    assert actions.count("record_event") == run.pathway.version
    opened = [e for e in entries(action="record_event") if '"seq": 1' in e.detail][-1]
    assert opened.patient_id == run.pathway.patient_id and opened.pathway_id == run.pathway.id
    token, _ = create_token(users["viewer"], "EHR")
    revoke(token)
    session.flush()
    assert [e.action for e in entries()[-2:]] == ["create_token", "revoke_token"]
    users["viewer"].role = "surgeon"
    session.flush()
    assert '"role": "surgeon"' in entries()[-1].detail


def test_the_command_line_writes_who_acted(users, session):
    with acting_as(users["admin"]):
        users["viewer"].full_name = "Someone Else"
        session.flush()
    entry = entries()[-1]
    assert entry.action == "update_user" and entry.user_id == users["admin"].id
    assert entry.address == command_line_actor()  # cli:<os user>@<host>
    assert entry.address == f"cli:{getpass.getuser()}@{socket.gethostname()}"


def test_refusals_are_written(client, users, session):
    session.commit()
    log_in(client, "viewer")
    assert client.get("/users/").status_code == 403
    (refused,) = entries(action="refused")
    assert refused.user_id == users["viewer"].id and refused.outcome == "refused"
    assert "may not use this page" in refused.detail
    # A call without a token: counted per address, the first in its window written.
    assert client.get("/api/v1/definition").status_code == 401
    (counted,) = entries(action="api_token_failed")
    assert counted.outcome == "refused" and '"count_in_window": 1' in counted.detail
    assert len(entries(action="refused")) == 1


def test_a_refused_path_with_a_nul_is_written_escaped(client, users, session):
    """Found by the fuzzer: a refusal of /pathways/1/record/%00 wrote the path as sent,
    which PostgreSQL refuses (NUL), so the refusal answered 500 there."""
    session.commit()
    log_in(client, "viewer")
    assert client.get("/pathways/1/record/%00").status_code == 403
    (refused,) = entries(action="refused")
    assert refused.path == "/pathways/1/record/\\x00"


def test_a_refused_change_leaves_only_its_refusal(client, users, session):
    pathway = driver(users).pathway
    session.commit()
    events = session.scalar(select(func.count(Event.id)))
    log_in(client, "viewer")
    response = client.post(f"/pathways/{pathway.id}/record/request_imaging", data={})
    assert response.status_code == 403
    assert session.scalar(select(func.count(Event.id))) == events
    assert entries()[-1].action == "refused"


# -- the database refuses to change either log ------------------------------------------------


@pytest.mark.parametrize("table", ["audit_entry", "event"])
@pytest.mark.parametrize(
    "statement",
    ["UPDATE {table} SET hash = 'x'", "DELETE FROM {table}"],
)
def test_the_database_refuses_update_and_delete(users, session, table, statement):
    driver(users)
    record("view", detail="something to refuse to change")
    session.flush()
    with pytest.raises(DBAPIError, match="append-only"), session.begin_nested():
        session.execute(text(statement.format(table=table)))


# -- the chains -----------------------------------------------------------------------------


def test_both_chains_verify_and_link_every_row(users, session):
    driver(users).walk_to("imaging")
    record("view", detail="x")
    session.flush()
    assert seal_pending() > 0
    for chain, model in (("event", Event), ("audit", AuditEntry)):
        broken, checked = verify_chain(chain)
        assert broken is None
        rows = session.scalars(select(model).order_by(model.chain_seq)).all()
        assert checked == len(rows) > 0
        assert [r.chain_seq for r in rows] == list(range(1, len(rows) + 1))
        assert all(b.prev_hash == a.hash for a, b in pairwise(rows))
        assert session.get(ChainHead, chain).last_hash == rows[-1].hash


# -- audit entries are linked into the chain in batches ------------------------------------


def test_an_entry_is_written_with_its_own_hash_and_linked_later_in_order(users, session):
    first = record("view", detail="first")
    second = record("view", detail="second")
    session.flush()
    assert first.entry_hash and second.entry_hash and first.entry_hash != second.entry_hash
    assert (first.chain_seq, first.prev_hash, first.hash) == (None, None, None)
    head = session.get(ChainHead, "audit").seq
    pending = pending_entries()
    assert pending.count >= 2 and pending.altered == []
    assert seal_pending() == pending.count
    session.expire_all()
    assert (first.chain_seq, second.chain_seq) == (head + pending.count - 1, head + pending.count)
    assert second.prev_hash == first.hash
    assert session.get(ChainHead, "audit").last_hash == second.hash
    assert pending_entries().count == 0 and seal_pending() == 0
    assert verify_chain("audit")[0] is None


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_entry SET detail = 'x'",  # content
        "UPDATE audit_entry SET chain_seq = 7, prev_hash = 'p', hash = 'h', detail = 'x'",
        "UPDATE audit_entry SET hash = 'h'",  # not all three chain columns
        "UPDATE audit_entry SET entry_hash = 'e', chain_seq = 7, prev_hash = 'p', hash = 'h'",
        "DELETE FROM audit_entry",
    ],
)
def test_the_database_lets_through_only_the_link_of_a_new_entry(users, session, statement):
    record("view", detail="not yet linked")
    session.flush()
    with pytest.raises(DBAPIError, match="append-only"), session.begin_nested():
        session.execute(text(statement))


def test_the_link_itself_is_let_through_once(users, session):
    entry = record("view", detail="to link")
    session.flush()
    with session.begin_nested():  # the sealer's UPDATE, as the database sees it
        session.execute(
            text(
                "UPDATE audit_entry SET chain_seq = 999999, prev_hash = 'p', hash = 'h' "
                "WHERE id = :id"
            ),
            {"id": entry.id},
        )
    with pytest.raises(DBAPIError, match="append-only"), session.begin_nested():
        session.execute(
            text("UPDATE audit_entry SET chain_seq = 1000000 WHERE id = :id"), {"id": entry.id}
        )


def test_an_entry_changed_before_its_link_is_left_out_and_named(users, session, runner, caplog):
    kept = record("view", detail="kept")
    changed = record("view", detail="changed")
    session.flush()
    _without_append_only(session, "audit_entry")
    session.execute(
        text("UPDATE audit_entry SET detail = 'nothing to see' WHERE id = :id"), {"id": changed.id}
    )
    assert pending_entries().altered == [changed.id]
    seal_pending()
    session.expire_all()
    assert kept.chain_seq is not None and changed.chain_seq is None
    assert f"audit entry id {changed.id} does not match its entry hash" in caplog.text
    assert verify_chain("audit")[0] is None  # the chain itself holds
    result = runner.invoke(args=["tracker", "verify"])
    assert result.exit_code == 1
    assert "1 audit entries awaiting their place in the chain do not match" in result.output
    assert f"ids {changed.id}" in result.output


def test_verify_and_seal_audit_tell_of_the_entries_waiting(users, session, runner):
    record("view", detail="waiting")
    session.flush()
    waiting = pending_entries().count
    result = runner.invoke(args=["tracker", "verify"])
    assert f"{waiting} audit entries await their place in the chain" in result.output
    result = runner.invoke(args=["tracker", "seal-audit"])
    assert result.exit_code == 0 and f"Linked {waiting} audit entries" in result.output
    result = runner.invoke(args=["tracker", "verify"])
    assert "await their place" not in result.output
    assert result.exit_code == 0, result.output


def test_a_request_links_its_entry_at_once_when_told_to(app, client, users, session, monkeypatch):
    """AUDIT_SEAL_SECONDS = 0: in the request, before the answer."""
    monkeypatch.setitem(app.config, "AUDIT_SEAL_SECONDS", 0)
    pathway = driver(users).pathway
    session.commit()
    log_in(client, "surgeon")
    assert client.get(f"/pathways/{pathway.id}").status_code == 200
    (entry,) = entries(action="view", pathway_id=pathway.id)
    assert entry.chain_seq is not None and pending_entries().count == 0


def test_a_server_links_the_entries_after_its_answer_at_most_once_a_period(
    app, client, users, session, monkeypatch
):
    from tracker.web import auditing

    monkeypatch.setitem(app.config, "AUDIT_SEAL_SECONDS", 60)
    monkeypatch.setattr(auditing, "_last_sealed", float("-inf"))
    pathway = driver(users).pathway
    session.commit()
    log_in(client, "surgeon")
    # The first request's entries are linked once its answer is closed (sent).
    response = client.get(f"/pathways/{pathway.id}", buffered=False)
    (entry,) = entries(action="view", pathway_id=pathway.id)
    assert entry.chain_seq is None  # answered: not linked yet
    response.close()
    session.expire_all()
    assert entry.chain_seq is not None and pending_entries().count == 0
    # The next within the minute leaves its entry for a later sealer.
    client.get(f"/patients/{pathway.patient_id}", buffered=True)
    assert pending_entries().count == 1
    seal_all()
    assert pending_entries().count == 0 and verify_chain("audit")[0] is None


def test_writing_an_entry_waits_on_no_chain_head(scratch_url):
    """Writing an audit entry touches no chain head: no statement of its transaction
    names one. On PostgreSQL, with another transaction holding both heads (as a sealer
    and a writer of events do), the entry is still written and committed at once, and a
    sealer that finds the head taken steps aside without waiting. (SQLite has one
    writer at a time whatever the rows: the database's own lock.)"""
    from sqlalchemy import event

    app = make_app(scratch_url)
    with app.app_context():
        upgrade()
        make_users()
        db.session.commit()
        statements: list[str] = []

        def seen(conn, cursor, statement, parameters, context, executemany):
            statements.append(statement)

        event.listen(db.engine, "before_cursor_execute", seen)
        try:
            record("view", detail="no head taken")
            db.session.commit()
        finally:
            event.remove(db.engine, "before_cursor_execute", seen)
        assert any("audit_entry" in s for s in statements)
        assert not [s for s in statements if "chain_head" in s]
        if db.engine.dialect.name == "postgresql":
            holder = db.engine.connect()
            holder.execute(text("SELECT * FROM chain_head FOR UPDATE"))
            try:
                db.session.execute(text("SET lock_timeout = '2s'"))
                entry = record("view", detail="while the heads are held")
                db.session.commit()
                assert entry.chain_seq is None
                assert seal_pending(wait=False) == 0
                db.session.rollback()
            finally:
                holder.rollback()
                holder.close()
        assert seal_all() >= 1
        assert verify_chain("audit")[0] is None
        db.session.remove()


def _without_append_only(session, table: str):
    """Drop the append-only triggers of ``table`` inside the test's transaction (rolled
    back with it): what someone with the database's owner rights could do."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
    else:
        session.execute(text(f"DROP TRIGGER {table}_append_only_update"))
        session.execute(text(f"DROP TRIGGER {table}_append_only_delete"))


def _audit_rows(session, count: int) -> list[AuditEntry]:
    for n in range(count):
        record("view", detail=f"entry {n}")
    session.flush()
    seal_pending()
    return session.scalars(select(AuditEntry).order_by(AuditEntry.chain_seq)).all()


def test_a_changed_row_is_named(users, session, runner):
    rows = _audit_rows(session, 6)
    _without_append_only(session, "audit_entry")
    session.execute(text("UPDATE audit_entry SET detail = 'nothing to see' WHERE chain_seq = 4"))
    broken, _ = verify_chain("audit")
    assert broken.position == 4 and broken.row_id == rows[3].id
    assert "does not match its hash" in str(broken)
    result = runner.invoke(args=["tracker", "verify"])
    assert result.exit_code == 1
    assert f"audit chain broken at position 4 (id {rows[3].id})" in result.output


def test_a_changed_event_is_named(users, session, runner):
    run = driver(users)
    run.walk_to("imaging")
    session.flush()
    _without_append_only(session, "event")
    session.execute(
        text("UPDATE event SET occurred_at = occurred_at WHERE chain_seq = 2")
    )  # the same value: the chain holds
    assert verify_chain("event")[0] is None
    session.execute(
        text("UPDATE event SET recorded_by_id = :u WHERE chain_seq = 2"), {"u": users["admin"].id}
    )
    broken, _ = verify_chain("event")
    assert broken.chain == "event" and broken.position == 2


def test_a_removed_row_is_named(users, session):
    _audit_rows(session, 5)
    _without_append_only(session, "audit_entry")
    session.execute(text("DELETE FROM audit_entry WHERE chain_seq = 3"))
    broken, _ = verify_chain("audit")
    assert broken.position == 3 and "missing" in broken.message


def test_a_removed_tail_is_named(users, session):
    _audit_rows(session, 5)
    _without_append_only(session, "audit_entry")
    session.execute(text("DELETE FROM audit_entry WHERE chain_seq >= 4"))
    broken, _ = verify_chain("audit")
    assert broken.position == 4 and "removed" in broken.message


def test_a_row_re_sealed_without_the_key_is_named(users, session):
    """A forger who changes a row and recomputes plain SHA-256 links is caught."""
    import hashlib

    rows = _audit_rows(session, 3)
    _without_append_only(session, "audit_entry")
    forged = hashlib.sha256(b"forged").hexdigest()
    session.execute(
        text("UPDATE audit_entry SET detail = 'x', hash = :h WHERE chain_seq = 2"), {"h": forged}
    )
    broken, _ = verify_chain("audit")
    assert broken.position == 2 and broken.row_id == rows[1].id


def test_another_key_does_not_verify(app, users, session):
    _audit_rows(session, 2)
    original = app.extensions["audit_key"]
    app.extensions["audit_key"] = b"another-key-another-key-another-key!"
    try:
        broken, _ = verify_chain("audit")
    finally:
        app.extensions["audit_key"] = original
    assert broken.position == 1


def test_the_key_must_be_given_and_long_enough(tmp_path):
    from flask import Flask

    app = Flask("x")
    with pytest.raises(AuditKeyError, match="AUDIT_KEY"):
        load_key(app)
    app.config["AUDIT_KEY"] = "short"
    with pytest.raises(AuditKeyError, match="32 characters"):
        load_key(app)
    app.config.update(AUDIT_KEY="", AUDIT_KEY_FILE=str(tmp_path / "k"), AUDIT_KEY_CREATE=True)
    key = load_key(app)
    assert len(key) == 64 and (tmp_path / "k").stat().st_mode & 0o777 == 0o600
    assert load_key(app) == key  # made once, then read


def test_concurrent_writers_do_not_fork_the_chains(scratch_url):
    """16 threads, each its own connection, appending audit entries and recording steps
    at once: every row gets its own position and the chains verify."""
    # As the app runs (pysqlite begins a transaction at its first write).
    app = make_app(scratch_url, SQLITE_EXPLICIT_TRANSACTIONS=False)
    with app.app_context():
        upgrade()
        users = make_users()
        pathways = [new_pathway(users["coordinator"]) for _ in range(8)]
        db.session.commit()
        ids = [p.id for p in pathways]
        coordinator_id = users["coordinator"].id
        db.session.remove()
    errors: list[BaseException] = []
    barrier = threading.Barrier(16)

    def work(n: int) -> None:
        try:
            with app.app_context():
                from tracker.engine import services
                from tracker.engine.models import Pathway
                from tracker.users.models import User

                barrier.wait()
                for i in range(10):
                    if n % 2:
                        record("view", detail=f"thread {n} entry {i}")
                        db.session.commit()
                        seal_pending(wait=False)  # sealers racing each other and the writers
                    else:
                        pathway = db.session.get(Pathway, ids[n // 2])
                        actor = db.session.get(User, coordinator_id)
                        services.record(
                            pathway,
                            "add_note",
                            {"note": f"thread {n} note {i}"},
                            datetime.now(UTC),
                            actor,
                            pathway.version,
                            f"t{n}-{i}",
                        )
                    db.session.commit()
                db.session.remove()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]
    with app.app_context():
        seal_all()  # what a quiet moment left for the worker
        for chain, model in (("event", Event), ("audit", AuditEntry)):
            broken, checked = verify_chain(chain)
            assert broken is None, str(broken)
            assert checked == db.session.scalar(select(func.count(model.id)))
        notes = db.session.scalar(select(func.count(Event.id)).where(Event.trigger == "add_note"))
        assert notes == 80
        db.session.remove()
        db.engine.dispose()


def test_the_migration_seals_events_recorded_before_the_chain(scratch_url):
    """Events of a database from before this release are chained, oldest first, by the
    migration; the append-only triggers survive the table's rebuild on SQLite."""
    app = make_app(scratch_url)
    with app.app_context():
        upgrade()
        users = make_users()
        run = driver(users)
        run.walk_to("imaging")
        recorded = run.pathway.version
        db.session.commit()
        seal_all()  # the downgrade below the batch sealing refuses entries not yet linked
        db.session.close()
        downgrade(revision="5b21babf53e7")
        upgrade()
        broken, checked = verify_chain("event")
        assert broken is None and checked == recorded
        db.session.close()
        triggers = db.session.scalars(
            text("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            if db.engine.dialect.name == "sqlite"
            else text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")
        ).all()
        assert len(triggers) >= 4, triggers
        with pytest.raises(DBAPIError, match="append-only"):
            db.session.execute(text("DELETE FROM event"))
        db.session.rollback()
        record("view", detail="a row to refuse to change")
        db.session.flush()
        with pytest.raises(DBAPIError, match="append-only"):
            db.session.execute(text("UPDATE audit_entry SET detail = ''"))
        db.session.rollback()
        db.session.remove()
        db.engine.dispose()


# -- the administrators' page ---------------------------------------------------------------


def test_the_audit_page_filters_by_user_action_patient_and_date(client, users, session):
    pathway = driver(users).pathway
    session.commit()
    log_in(client, "surgeon")
    client.get(f"/pathways/{pathway.id}")
    admin = client.application.test_client()
    log_in(admin, "admin")
    page = admin.get("/audit/?user=surgeon&action=view").get_data(as_text=True)
    assert f"/pathways/{pathway.id}" in page and "Viewed" in page
    mrn = pathway.patient.mrn
    page = admin.get(f"/audit/?mrn={mrn}").get_data(as_text=True)
    assert "Registered a patient" in page and "Recorded a step" in page
    assert "seq: 1 · trigger: open_pathway" in page  # the detail in words, not JSON
    today = datetime.now().date()
    assert "1 entry" not in admin.get(f"/audit/?from={today}&to={today}").get_data(as_text=True)
    tomorrow = today + timedelta(days=1)
    assert "0 entries" in admin.get(f"/audit/?from={tomorrow}").get_data(as_text=True)
    csv = admin.get(f"/audit/audit.csv?mrn={mrn}").get_data(as_text=True)
    assert csv.splitlines()[0].lstrip("\ufeff").startswith("position,when_utc,username,action")
    assert mrn in csv


def test_the_audit_page_explains_bad_filters(client, users, session):
    session.commit()
    log_in(client, "admin")
    response = client.get("/audit/?from=2026-02-30&mrn=NOPE&action=fly")
    assert response.status_code == 422
    text_ = response.get_data(as_text=True)
    assert "is not a date: use the form YYYY-MM-DD" in text_
    assert "No patient has the MRN" in text_ and "Choose an action from the list" in text_
    assert client.get("/audit/audit.csv?to=31/12/2026").status_code == 422


@pytest.mark.parametrize("role", ["coordinator", "surgeon", "viewer"])
def test_only_administrators_read_the_audit_log(client, users, session, role):
    session.commit()
    log_in(client, role)
    assert client.get("/audit/").status_code == 403
    assert client.get("/audit/audit.csv").status_code == 403


class Grade(enum.IntEnum):
    III = 3


def test_a_link_is_the_hmac_of_its_content_as_json_writes_it():
    """The chains stored so far were sealed as the HMAC of ``json.dumps([chain, position,
    [canonical values]], sort_keys=True, separators=(",", ":"), ensure_ascii=False)``
    after the previous hash; the faster writing of that content must give the same."""
    rng = random.Random(4)
    samples = [
        None,
        0,
        -17,
        True,
        False,
        2.5,
        "",
        'quote " and \\ and \n newline, \t tab, é ü 中, \u2028 \x00',
        datetime(2026, 3, 29, 0, 30, 15, 123456, tzinfo=UTC),
        datetime(2026, 10, 25, 1, 30, tzinfo=timezone(timedelta(hours=1))),
        date(2026, 2, 28),
        {"z": [1, {"b": None, "a": "x"}], "a": 1.5, "ü": True},
        ["L4", "L5"],
        Grade.III,
        2**70,
        1e16,
        1e-7,
        -0.0,
        float("nan"),
        "\U0001f9b4 bone, \U00010348",
        {"nested": datetime(2026, 1, 1, tzinfo=UTC).isoformat()},
    ]
    key = b"k" * 32

    def as_json_writes_it(chain, position, prev, values):
        content = json.dumps(
            [chain, position, [canonical(values[name]) for name in FIELDS[chain]]],
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        return hmac.new(key, f"{prev}\n{content}".encode(), hashlib.sha256).hexdigest()

    for position in range(1, 400):
        chain = rng.choice(["event", "audit"])
        values = {name: rng.choice(samples) for name in FIELDS[chain]}
        prev = f"{rng.getrandbits(256):064x}"
        assert digest(key, chain, position, prev, values) == as_json_writes_it(
            chain, position, prev, values
        )
