"""The background worker: Huey, with its queue in Redis (HUEY_REDIS_URL: several app
servers, one queue) or in a SQLite file in the instance folder (one machine, `make run`).

The jobs run in the Flask app's context, as `flask tracker worker` starts them:

- ``run_alerts`` (the periodic job, every ALERT_EVERY_MINUTES): raise the alerts the
  rules find and email what is due (tracker.alerts.run). It keeps nothing in the queue
  that matters: a run that is skipped (the worker down) is caught up by the next one,
  which computes everything again from the clock rows and the notifications sent.
- ``seal_audit`` (every minute): link the audit entries still awaiting their place into
  the audit chain (tracker.audit.chain). The app's servers do it after their requests;
  this catches what a quiet moment left, so an entry waits a minute at most.
"""

from __future__ import annotations

import logging
import threading
from types import SimpleNamespace

from flask import Flask
from huey import PriorityRedisHuey, SqliteHuey, crontab
from huey.api import Huey

from tracker.alerts.run import run_alerts
from tracker.audit.chain import seal_all
from tracker.core.db import utcnow

log = logging.getLogger("tracker.jobs")
# One run of the alerts at a time in a worker process: two at once would only find the
# same alerts, and on SQLite they would trip over each other's write lock. A run that
# fails anyway (the database away for a moment) is retried.
_alerts_running = threading.Lock()
RETRIES, RETRY_DELAY = 3, 30


def make_huey(config, immediate: bool = False) -> Huey:
    """The queue the settings name: Redis with HUEY_REDIS_URL, else the SQLite file
    HUEY_SQLITE_PATH; HUEY_NAME names the queue (one name per deployment)."""
    name = config.get("HUEY_NAME") or "tracker"
    url = config.get("HUEY_REDIS_URL") or ""
    if url:
        return PriorityRedisHuey(name, url=url, immediate=immediate)
    return SqliteHuey(name, filename=config["HUEY_SQLITE_PATH"], immediate=immediate)


def every(minutes: int) -> crontab:
    """A crontab firing every ``minutes`` minutes (a divisor of 60 fires evenly)."""
    if minutes < 1:
        raise ValueError("ALERT_EVERY_MINUTES must be 1 or more")
    return crontab(minute=f"*/{minutes}" if minutes < 60 else "0")


def register(huey: Huey, app: Flask) -> SimpleNamespace:
    """The tracker's jobs on ``huey``, each run inside ``app``'s context."""

    def alerts(ignore_schedule: bool = False) -> str:
        with _alerts_running, app.app_context():
            summary = run_alerts(utcnow(), ignore_schedule=ignore_schedule).summary()
        log.info("alerts: %s", summary)
        return summary

    once = huey.task(name="run_alerts", retries=RETRIES, retry_delay=RETRY_DELAY)(alerts)
    periodic = huey.periodic_task(
        every(app.config["ALERT_EVERY_MINUTES"]), name="run_alerts_periodically"
    )(alerts)  # not retried: the next one comes in a few minutes

    def seal_audit() -> int:
        with app.app_context():
            linked = seal_all()
        if linked:
            log.info("audit: %s entries linked into the chain", linked)
        return linked

    sealing = huey.periodic_task(crontab(), name="seal_audit")(seal_audit)
    return SimpleNamespace(run_alerts=once, run_alerts_periodically=periodic, seal_audit=sealing)


def consumer(app: Flask, workers: int = 2, periodic: bool = True):
    """A consumer of the app's queue, its jobs registered (``.run()`` to serve)."""
    huey = make_huey(app.config)
    register(huey, app)
    return huey.create_consumer(
        workers=workers, worker_type="thread", periodic=periodic, check_worker_health=True
    )
