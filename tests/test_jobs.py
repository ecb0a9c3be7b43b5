"""The background worker (tracker/jobs): a real Huey consumer, `flask tracker worker` in a
subprocess, with its queue in Redis (127.0.0.1:6379, a queue name of this test's own)
and in its SQLite file, on both databases: a job enqueued here is done there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask_migrate import upgrade
from huey import PriorityRedisHuey, SqliteHuey
from sqlalchemy import select

from tests.conftest import make_app
from tests.helpers import make_users, new_pathway
from tracker import jobs
from tracker.alerts.models import Notification
from tracker.extensions import db

ROOT = Path(__file__).resolve().parents[1]
REDIS_URL = "redis://127.0.0.1:6379/0"


def queue_settings(kind: str, tmp_path: Path) -> dict:
    """A queue of this test's own: a unique name in Redis, or a fresh SQLite file."""
    name = f"tracker-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    if kind == "redis":
        return {"HUEY_NAME": name, "HUEY_REDIS_URL": REDIS_URL, "HUEY_SQLITE_PATH": ""}
    return {"HUEY_NAME": name, "HUEY_REDIS_URL": "", "HUEY_SQLITE_PATH": str(tmp_path / "q.db")}


def test_the_settings_choose_the_queue(tmp_path):
    redis = jobs.make_huey(queue_settings("redis", tmp_path))
    sqlite = jobs.make_huey(queue_settings("sqlite", tmp_path))
    assert isinstance(redis, PriorityRedisHuey) and isinstance(sqlite, SqliteHuey)
    assert Path(tmp_path / "q.db").exists()


def test_the_alerts_run_every_few_minutes(app):
    huey = jobs.make_huey({"HUEY_NAME": "unused", "HUEY_SQLITE_PATH": ":memory:"})
    tasks = jobs.register(huey, app)
    periodic = tasks.run_alerts_periodically.s()  # a task instance, as the scheduler makes
    fires = [m for m in range(60) if periodic.validate_datetime(datetime(2027, 1, 12, 10, m))]
    assert fires == list(range(0, 60, app.config["ALERT_EVERY_MINUTES"]))
    assert app.config["ALERT_EVERY_MINUTES"] == 5


def test_immediate_mode_runs_the_job_in_place(scratch_url, tmp_path):
    app = _world(scratch_url)
    huey = jobs.make_huey(queue_settings("sqlite", tmp_path), immediate=True)
    tasks = jobs.register(huey, app)
    summary = tasks.run_alerts()()  # in immediate mode the result is there at once
    assert summary.startswith("2 new notifications")
    assert _notified(app) == ["breached", "breached"]


def test_the_worker_links_the_audit_entries_left_waiting_every_minute(scratch_url, tmp_path):
    from tracker.audit.chain import pending_entries, verify_chain

    app = _world(scratch_url)  # its users and pathway wrote audit entries, not yet linked
    with app.app_context():
        waiting = pending_entries().count
        db.session.remove()
    assert waiting > 0
    huey = jobs.make_huey(queue_settings("sqlite", tmp_path), immediate=True)
    tasks = jobs.register(huey, app)
    periodic = tasks.seal_audit.s()
    assert all(periodic.validate_datetime(datetime(2027, 1, 12, 10, m)) for m in range(60))
    tasks.seal_audit()  # enqueued as the scheduler does, run at once (immediate mode)
    with app.app_context():
        assert pending_entries().count == 0
        broken, checked = verify_chain("audit")
        assert broken is None and checked == waiting
        db.session.remove()


def _world(url: str):
    """A migrated database with one breached pathway, committed (the worker is another
    process)."""
    app = make_app(url)
    with app.app_context():
        upgrade()
        users = make_users()
        new_pathway(users["coordinator"], datetime.now(UTC) - timedelta(days=40))
        db.session.commit()
    return app


def _notified(app) -> list[str]:
    with app.app_context():
        kinds = db.session.scalars(select(Notification.kind).order_by(Notification.id)).all()
        db.session.rollback()
        return list(kinds)


def _start_worker(url: str, settings: dict) -> subprocess.Popen:
    env = {
        **os.environ,
        "TRACKER_ENV": "testing",
        "TEST_DATABASE_URL": url,
        "PYTHONPATH": str(ROOT),
        **settings,
    }
    env.pop("FLASK_APP", None)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flask",
            "--app",
            "tracker:create_app",
            "tracker",
            "worker",
            "--no-periodic",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.parametrize("queue", ["redis", "sqlite"])
def test_a_real_worker_does_the_job(scratch_url, tmp_path, queue):
    app = _world(scratch_url)
    settings = queue_settings(queue, tmp_path)
    huey = jobs.make_huey(settings)
    tasks = jobs.register(huey, app)
    worker = _start_worker(scratch_url, settings)
    try:
        result = tasks.run_alerts()  # enqueued here; the worker process runs it
        summary = result.get(blocking=True, timeout=60)
        assert summary.startswith("2 new notifications"), summary
        assert _notified(app) == ["breached", "breached"]
        # Enqueued again (a restart, a second server): nothing is raised twice.
        again = tasks.run_alerts().get(blocking=True, timeout=60)
        assert again.startswith("0 new notifications"), again
        assert _notified(app) == ["breached", "breached"]
    finally:
        worker.send_signal(signal.SIGINT)  # Huey's graceful stop
        try:
            output, _ = worker.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            output, _ = worker.communicate()
        huey.storage.flush_all()  # this test's queue only
    assert f"queue '{settings['HUEY_NAME']}'" in output
    assert "alerts: 2 new notifications" in output


def test_a_worker_that_was_down_catches_up(scratch_url, tmp_path):
    """Jobs enqueued while no worker runs wait in the queue; the alerts computed late
    are the same alerts, and none is lost."""
    app = _world(scratch_url)
    settings = queue_settings("redis", tmp_path)
    huey = jobs.make_huey(settings)
    tasks = jobs.register(huey, app)
    first, second = tasks.run_alerts(), tasks.run_alerts()
    time.sleep(0.5)
    assert _notified(app) == []  # no worker yet
    worker = _start_worker(scratch_url, settings)
    try:
        summaries = sorted(
            [first.get(blocking=True, timeout=60), second.get(blocking=True, timeout=60)]
        )
    finally:
        worker.send_signal(signal.SIGINT)
        worker.communicate(timeout=30)
        huey.storage.flush_all()
    assert summaries[0].startswith("0 new") and summaries[1].startswith("2 new")
    assert _notified(app) == ["breached", "breached"]
