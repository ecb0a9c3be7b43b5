"""`flask tracker backup`: a consistent copy of the live SQLite database while writes go on.

The backup copies SQLite files, so its tests run on a file database of their own
(with commits, as the app makes them). On PostgreSQL the command refuses and names
pg_dump; that test runs on the PostgreSQL backend only.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask_migrate import upgrade
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from tests.conftest import make_app, postgres_scratch
from tests.helpers import Driver, make_users, new_pathway
from tracker.backup import postgres_advice
from tracker.engine.models import Event, Pathway
from tracker.extensions import db
from tracker.users.models import User

REFERRAL = datetime.now(UTC) - timedelta(days=30)


def file_app(path: Path):
    """The app on a file database, with the running app's transaction handling."""
    return make_app(f"sqlite:///{path}", SQLITE_EXPLICIT_TRANSACTIONS=False)


def dispose(app) -> None:
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def event_count(path: Path) -> int:
    uri = f"{path.as_uri()}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
        return conn.execute("SELECT count(*) FROM event").fetchone()[0]


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
    restored_path = backup.with_name(f"restored-{backup.name}")
    shutil.copyfile(backup, restored_path)
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
        held = live.test_cli_runner().invoke(args=["tracker", "backup", str(in_flight)])
        writer.release()
        wait_for(lambda: len(writer.log) >= committed_when_held + 10 or writer.error)
    finally:
        writer.release()
        writer.stopping.set()
        writer.join(timeout=60)
        dispose(live)
    assert writer.error is None, writer.error
    for outcome, target in ((result, streaming), (held, in_flight)):
        assert outcome.exit_code == 0, outcome.output
        assert f"to {target}: " in outcome.output and " bytes, " in outcome.output
        assert " s, finished " in outcome.output
        assert "PRAGMA integrity_check on the copy: ok" in outcome.output
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
    assert event_count(target) == 1
    assert not list(tmp_path.glob("*.partial*"))  # the temporary copies are gone


def test_backup_refuses_an_in_memory_database(tmp_path):
    app = make_app("sqlite://")
    result = app.test_cli_runner().invoke(args=["tracker", "backup", str(tmp_path / "b.sqlite")])
    assert result.exit_code == 1 and "in memory" in result.output
    assert not (tmp_path / "b.sqlite").exists()
    dispose(app)


def test_backup_on_postgresql_names_pg_dump_and_pg_restore(tmp_path):
    """PostgreSQL only (on SQLite the command makes the copy: the tests above)."""
    with postgres_scratch() as url:
        app = make_app(url)
        target = tmp_path / "tracker.dump"
        result = app.test_cli_runner().invoke(args=["tracker", "backup", str(target)])
        dispose(app)
    assert result.exit_code == 1
    assert "pg_dump --format=custom" in result.output
    assert "pg_restore" in result.output
    assert not target.exists()


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
