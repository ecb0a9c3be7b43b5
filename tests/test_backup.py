"""`flask tracker backup`: a consistent copy of the live database while writes go on,
encrypted with age to BACKUP_AGE_RECIPIENTS, and audited.

The SQLite backup copies files, so its tests run on a file database of their own
(with commits, as the app makes them). On PostgreSQL the command runs pg_dump; that
test restores the decrypted dump with pg_restore into a new database and verifies it.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import shutil
import socket
import sqlite3
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyrage
import pytest
from flask_migrate import upgrade
from pyrage import x25519
from sqlalchemy import event, func, select
from sqlalchemy.engine import make_url

from tests.conftest import make_app, postgres_scratch
from tests.helpers import Driver, make_users, new_pathway
from tracker.audit.models import AuditEntry
from tracker.backup import backup_database, postgres_advice
from tracker.engine.models import Event, Pathway
from tracker.extensions import db
from tracker.users.models import User

REFERRAL = datetime.now(UTC) - timedelta(days=30)
# Whoever may restore holds the identity; the app knows only the public key.
IDENTITY = x25519.Identity.generate()
RECIPIENT = str(IDENTITY.to_public())
AGE_HEADER = b"age-encryption.org/v1\n"


def file_app(path: Path, **overrides):
    """The app on a file database, with the running app's transaction handling."""
    settings = {"SQLITE_EXPLICIT_TRANSACTIONS": False, "BACKUP_AGE_RECIPIENTS": RECIPIENT}
    return make_app(f"sqlite:///{path}", **{**settings, **overrides})


def decrypt(backup: Path, out: Path) -> Path:
    """What `age -d -i key.txt backup > out` does, with the restorer's identity."""
    assert backup.read_bytes().startswith(AGE_HEADER)  # an age file, not a database
    pyrage.decrypt_file(str(backup), str(out), [IDENTITY])
    return out


def backup_entries(app) -> list[AuditEntry]:
    with app.app_context():
        found = list(
            db.session.scalars(
                select(AuditEntry).where(AuditEntry.action == "backup").order_by(AuditEntry.id)
            )
        )
        db.session.remove()
    return found


def operator() -> str:
    return f"cli:{getpass.getuser()}@{socket.gethostname()}"


def dispose(app) -> None:
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def event_count(path: Path) -> int:
    uri = f"{path.as_uri()}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
        return conn.execute("SELECT count(*) FROM event").fetchone()[0]


def no_autocheckpoint(dbapi_connection, _record) -> None:
    dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")


def wait_for(condition, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the writer made no progress"
        time.sleep(0.005)


class Writer(threading.Thread):
    """Commits one event at a time, as the app does: a new pathway or a step on one.

    ``log`` holds (pathway id, version) after each commit, in commit order, so the
    database after the first k commits is known exactly. ``hold()`` makes the writer
    stop with its next event written but not committed, until ``release()``.
    """

    def __init__(self, app, username: str):
        super().__init__(daemon=True)
        self.app, self.username = app, username
        self.log: list[tuple[int, int]] = []
        self.error: BaseException | None = None
        self.stopping = threading.Event()
        self._hold, self._holding, self._release = (threading.Event() for _ in range(3))

    def hold(self) -> None:
        self._hold.set()
        assert self._holding.wait(timeout=60), "the writer did not reach its commit"

    def release(self) -> None:
        self._release.set()

    def run(self) -> None:
        with self.app.app_context():
            try:
                self._write()
            except BaseException as exc:  # reported by the test, not lost in the thread
                db.session.rollback()
                self.error = exc
            finally:
                db.session.remove()

    def _write(self) -> None:
        actor = db.session.scalar(select(User).where(User.username == self.username))
        clocks: dict[int, datetime] = {}
        for i in range(5000):
            if self.stopping.is_set():
                return
            if i % 3 == 0:
                pathway = new_pathway(actor, referral=REFERRAL)
                db.session.flush()
                clocks[pathway.id] = REFERRAL
            else:
                ids = sorted(clocks)
                pathway = db.session.get(Pathway, ids[i % len(ids)])
                trigger = "request_imaging" if pathway.state == "referred" else "add_note"
                run = Driver(pathway, actor, clocks[pathway.id], step=timedelta(minutes=1))
                run.do(trigger)
                clocks[pathway.id] = run.t
            done = (pathway.id, pathway.version)
            if self._hold.is_set():  # the INSERTs are made: this transaction holds the write lock
                self._holding.set()
                self._release.wait(timeout=60)
            db.session.commit()
            self.log.append(done)


def restore_and_check(backup: Path, start: dict[int, int], log: list[tuple[int, int]]) -> int:
    """Restore ``backup`` as a new app's database, run verify, and check it holds
    exactly the first k of the writer's commits; return k."""
    restored_path = decrypt(backup, backup.with_name(f"restored-{backup.name}"))
    restored = file_app(restored_path)
    try:
        verify = restored.test_cli_runner().invoke(args=["tracker", "verify"])
        assert verify.exit_code == 0, verify.output
        with restored.app_context():
            versions = dict(db.session.execute(select(Pathway.id, Pathway.version)).all())
            seqs = db.session.execute(
                select(
                    Event.pathway_id, func.count(), func.min(Event.seq), func.max(Event.seq)
                ).group_by(Event.pathway_id)
            ).all()
        assert f"All {len(versions)} pathways are consistent" in verify.output
    finally:
        dispose(restored)
    # Every pathway's events run 1, 2, ... its version, with no gap.
    assert all(low == 1 and high == count for _, count, low, high in seqs), seqs
    assert {pid: count for pid, count, _, _ in seqs} == versions
    # Each commit adds one event, so a copy of the database as it stood at one moment
    # (none of it torn, nothing from after it) is the start plus the first k commits.
    k = sum(versions.values()) - sum(start.values())
    expected = dict(start)
    expected.update(dict(log[:k]))
    assert versions == expected
    return k


def test_backup_under_write_load_is_a_consistent_committed_prefix(tmp_path):
    live_path = tmp_path / "live.sqlite"
    live = file_app(live_path)
    with live.app_context():
        upgrade()
    seeded = live.test_cli_runner().invoke(args=["tracker", "seed-demo", "--pathways", "300"])
    assert seeded.exit_code == 0, seeded.output
    with live.app_context():
        start = dict(db.session.execute(select(Pathway.id, Pathway.version)).all())
        db.session.remove()
        # SQLite checkpoints by itself once the WAL passes 1,000 pages (about 30 of the
        # writer's commits, each writing its derived rows too): the copy of the main file
        # below would then hold commits this test says it misses. No automatic
        # checkpoint on this app's connections, so what is in the WAL stays there.
        event.listen(db.engine, "connect", no_autocheckpoint)
        db.engine.dispose()
    start_events = sum(start.values())
    # Everything so far into the main file; the writer's commits below stay in the WAL.
    with contextlib.closing(sqlite3.connect(live_path)) as conn:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0

    backups = tmp_path / "backups"
    backups.mkdir()
    streaming, in_flight = backups / "streaming.sqlite", backups / "in-flight.sqlite"
    writer = Writer(live, "coordinator")
    writer.start()
    try:
        wait_for(lambda: len(writer.log) >= 30 or writer.error)
        main_file_alone = tmp_path / "main-file-alone.sqlite"
        shutil.copyfile(live_path, main_file_alone)  # what copying the file would keep
        # 1. While the writer commits as fast as it can.
        committed_before = len(writer.log)  # each of these is committed
        result = live.test_cli_runner().invoke(args=["tracker", "backup", str(streaming)])
        wait_for(lambda: len(writer.log) >= committed_before + 20 or writer.error)
        # 2. While the writer holds a write transaction open, its event written.
        writer.hold()
        committed_when_held = len(writer.log)
        with (
            contextlib.closing(sqlite3.connect(live_path, timeout=0)) as other,
            pytest.raises(sqlite3.OperationalError, match="locked"),
        ):
            other.execute("BEGIN IMMEDIATE")  # the writer's transaction holds the lock
        # (The function itself: the command's audit entry would wait for the held lock.)
        held = backup_database(
            make_url(f"sqlite:///{live_path}"), in_flight, recipients=[IDENTITY.to_public()]
        )
        writer.release()
        wait_for(lambda: len(writer.log) >= committed_when_held + 10 or writer.error)
    finally:
        writer.release()
        writer.stopping.set()
        writer.join(timeout=60)
        dispose(live)
    assert writer.error is None, writer.error
    assert result.exit_code == 0, result.output
    for output, target in ((result.output, streaming), (held.summary(), in_flight)):
        assert f"to {target}: " in output and " bytes, " in output
        assert " s, finished " in output
        assert "PRAGMA integrity_check on the copy: ok" in output
        assert "Encrypted with age to 1 recipient" in output
        assert target.stat().st_mode & 0o777 == 0o600  # patient data: the owner's only
    assert sorted(p.name for p in backups.iterdir()) == [in_flight.name, streaming.name]

    # The writer's first commits were in the WAL only: a copy of the database file
    # misses them; the backup has them, and is one moment's database.
    assert event_count(main_file_alone) == start_events
    k = restore_and_check(streaming, start, writer.log)
    assert committed_before <= k <= len(writer.log)
    # The open transaction neither blocked the backup nor leaked into it.
    assert restore_and_check(in_flight, start, writer.log) == committed_when_held


def seeded_app(path: Path):
    app = file_app(path)
    with app.app_context():
        upgrade()
        users = make_users()
        new_pathway(users["coordinator"], referral=REFERRAL)
        db.session.commit()
        db.session.remove()
    return app


def test_backup_refuses_to_overwrite_without_force(tmp_path):
    live_path = tmp_path / "live.sqlite"
    app = seeded_app(live_path)
    target = tmp_path / "backup.sqlite"
    target.write_bytes(b"last night's backup")
    runner = app.test_cli_runner()
    try:
        refused = runner.invoke(args=["tracker", "backup", str(target)])
        assert refused.exit_code == 1
        assert "already exists; use --force to replace it" in refused.output
        assert target.read_bytes() == b"last night's backup"

        itself = runner.invoke(args=["tracker", "backup", str(live_path), "--force"])
        assert itself.exit_code == 1 and "is the live database itself" in itself.output

        forced = runner.invoke(args=["tracker", "backup", str(target), "--force"])
        assert forced.exit_code == 0, forced.output
    finally:
        dispose(app)
    assert event_count(decrypt(target, tmp_path / "plain.sqlite")) == 1
    assert not list(tmp_path.glob("*.partial*"))  # the temporary copies are gone


def test_backup_refuses_an_in_memory_database(tmp_path):
    app = make_app("sqlite://", BACKUP_AGE_RECIPIENTS=RECIPIENT)
    result = app.test_cli_runner().invoke(args=["tracker", "backup", str(tmp_path / "b.sqlite")])
    assert result.exit_code == 1 and "in memory" in result.output
    assert not (tmp_path / "b.sqlite").exists()
    dispose(app)


def test_backup_without_a_recipient_refuses_unless_plaintext_and_is_audited(tmp_path):
    live_path = tmp_path / "live.sqlite"
    app = seeded_app(live_path)
    app.config["BACKUP_AGE_RECIPIENTS"] = ""
    runner = app.test_cli_runner()
    target = tmp_path / "backup.sqlite"
    try:
        refused = runner.invoke(args=["tracker", "backup", str(target)])
        assert refused.exit_code == 1
        assert "set BACKUP_AGE_RECIPIENTS" in refused.output
        assert "or pass --plaintext" in refused.output
        assert not target.exists() and not list(tmp_path.glob("*.partial*"))

        plain = runner.invoke(args=["tracker", "backup", str(target), "--plaintext"])
        assert plain.exit_code == 0, plain.output
        assert "NOT encrypted (--plaintext)" in plain.output

        app.config["BACKUP_AGE_RECIPIENTS"] = "age1notakey"
        wrong = runner.invoke(args=["tracker", "backup", str(tmp_path / "b2.age")])
        assert wrong.exit_code == 1
        assert "BACKUP_AGE_RECIPIENTS holds 'age1notakey', which is not an age public key" in (
            wrong.output
        )
        entries = backup_entries(app)
    finally:
        dispose(app)
    assert event_count(target) == 1  # a SQLite file as it stands
    # Who (the operating system's user and host), where to, encrypted or not, the outcome.
    assert [(e.outcome, e.username, e.address) for e in entries] == [
        ("failed", operator(), operator()),
        ("ok", operator(), operator()),
        ("failed", operator(), operator()),
    ]
    refusal, made, bad_key = (json.loads(e.detail) for e in entries)
    assert refusal["target"] == str(target) and refusal["encrypted"] is True
    assert "No backup recipient is configured" in refusal["error"]
    assert made["target"] == str(target) and made["encrypted"] is False
    assert made["bytes"] == target.stat().st_size
    assert "not an age public key" in bad_key["error"]


def test_an_encrypted_backup_is_audited_and_restores(tmp_path):
    live_path = tmp_path / "live.sqlite"
    app = seeded_app(live_path)
    target = tmp_path / "tracker.sqlite.age"
    try:
        made = app.test_cli_runner().invoke(args=["tracker", "backup", str(target)])
        assert made.exit_code == 0, made.output
        (entry,) = backup_entries(app)
    finally:
        dispose(app)
    assert b"SQLite format 3" not in target.read_bytes()  # encrypted, not a database
    with pytest.raises(pyrage.DecryptError):  # another identity cannot read it
        pyrage.decrypt(target.read_bytes(), [x25519.Identity.generate()])
    assert entry.outcome == "ok" and entry.username == operator()
    detail = json.loads(entry.detail)
    assert detail["encrypted"] is True and detail["recipients"] == 1
    assert detail["target"] == str(target) and detail["backend"] == "sqlite"
    restored = file_app(decrypt(target, tmp_path / "restored.sqlite"))
    try:
        verify = restored.test_cli_runner().invoke(args=["tracker", "verify"])
    finally:
        dispose(restored)
    assert verify.exit_code == 0, verify.output
    assert "All 1 pathways are consistent" in verify.output
    assert "Every patient and user row matches its seal." in verify.output


def test_an_encrypted_postgresql_backup_restores_and_verifies(tmp_path):
    """PostgreSQL only: pg_dump, encrypted; decrypted, pg_restore'd into a new database,
    verified (on SQLite: the tests above)."""
    target = tmp_path / "tracker.dump.age"
    with postgres_scratch() as url:
        app = make_app(url, BACKUP_AGE_RECIPIENTS=RECIPIENT)
        with app.app_context():
            upgrade()
            users = make_users()
            new_pathway(users["coordinator"], referral=REFERRAL)
            db.session.commit()
            db.session.remove()
        try:
            made = app.test_cli_runner().invoke(args=["tracker", "backup", str(target)])
            assert made.exit_code == 0, made.output
            (entry,) = backup_entries(app)
        finally:
            dispose(app)
        assert "pg_restore --list on the dump: ok" in made.output
        assert "Encrypted with age to 1 recipient" in made.output
        assert target.stat().st_mode & 0o777 == 0o600
        assert json.loads(entry.detail)["backend"] == "postgresql"
        dump = decrypt(target, tmp_path / "tracker.dump")
        with postgres_scratch("_restored") as restored_url:
            libpq = make_url(restored_url).set(drivername="postgresql")
            subprocess.run(
                [
                    "pg_restore",
                    "--exit-on-error",
                    "--single-transaction",
                    "--no-owner",
                    f"--dbname={libpq.render_as_string(hide_password=False)}",
                    str(dump),
                ],
                check=True,
                capture_output=True,
            )
            restored = make_app(restored_url)
            try:
                verify = restored.test_cli_runner().invoke(args=["tracker", "verify"])
            finally:
                dispose(restored)
    assert verify.exit_code == 0, verify.output
    assert "All 1 pathways are consistent" in verify.output
    assert "Every patient and user row matches its seal." in verify.output


def test_postgres_advice_gives_libpq_commands_without_the_password():
    url = make_url("postgresql+psycopg://tracker:s3cret@db-host:5432/tracker")
    advice = postgres_advice(url, Path("/backups/tracker.dump"))
    assert (
        "pg_dump --format=custom --file=/backups/tracker.dump "
        "postgresql://tracker@db-host:5432/tracker" in advice
    )
    assert (
        "pg_restore --exit-on-error --single-transaction --no-owner "
        "--dbname=postgresql://tracker@db-host:5432/tracker_restored /backups/tracker.dump"
        in advice
    )
    assert "DATABASE_URL=postgresql+psycopg://tracker@db-host:5432/tracker_restored" in advice
    assert "s3cret" not in advice
