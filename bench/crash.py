"""Crash test: under posting load, kill -9 gunicorn's workers and master, restart, check.

For SQLite (WAL, synchronous=FULL) and for PostgreSQL when DATABASE_URL names one:
every request answered 201 must be stored, and `flask tracker verify` must pass.
Results go to bench/crash-results.json and a section of bench/REPORT.md.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.load import Scenario, run  # noqa: E402
from bench.run import (  # noqa: E402
    POSTGRES_URL,
    Server,
    bench_app,
    env_for,
    flask,
    free_port,
    fresh_database,
    prepare,
)

NOTE = Scenario("api_add_note", "POST", "", expect=201, api=True, note=True)


def crash_run(backend: str, kills: int, interval: float, clients: int) -> dict:
    url = fresh_database(backend, 200)
    flask(url, "db", "upgrade")
    flask(url, "tracker", "seed-demo", "--pathways", "200")
    setup = prepare(url)
    port = free_port()
    server = Server(url, port)
    duration = kills * interval + 4
    outcome: dict = {}

    def load():
        outcome.update(
            run(
                "127.0.0.1",
                port,
                NOTE,
                duration,
                clients,
                setup["token"],
                setup["ids"],
                record=True,
            )
        )

    thread = threading.Thread(target=load)
    thread.start()
    log = []
    time.sleep(3)  # let the clients log in and post
    for i in range(kills):
        workers = subprocess.run(
            ["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True
        ).stdout.split()
        if i % 2 == 0 and workers:
            os.kill(int(workers[0]), signal.SIGKILL)  # gunicorn starts a new worker
            log.append(f"killed worker {workers[0]}")
        else:
            os.killpg(server.proc.pid, signal.SIGKILL)  # the master and all its workers
            server.proc.wait()
            log.append(f"killed master {server.proc.pid} and its workers; restarted")
            for _ in range(50):
                try:
                    server = Server(url, port)
                    break
                except (RuntimeError, OSError):
                    time.sleep(0.2)
        time.sleep(interval)
    thread.join()
    server.stop()
    verified = subprocess.run(
        [sys.executable, "-m", "flask", "tracker", "verify"],
        env=env_for(url),
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    stored = _stored(url, outcome["stored"])
    return {
        "backend": backend,
        "kills": log,
        "answered_201": len(outcome["stored"]),
        "stored_of_those": stored,
        "lost": len(outcome["stored"]) - stored,
        "client_errors_during_crashes": outcome["errors"],
        "verify_exit": verified.returncode,
        # Its verdict: passed (every check), or the first problem it named.
        "verify": (
            "passed: chains, seals, every pathway against its events"
            if verified.returncode == 0
            else (verified.stderr.strip().splitlines() or ["failed, saying nothing"])[0]
        ),
    }


def split_run(duration: float, clients: int) -> dict:
    """PostgreSQL: two servers on different ports, the posting clients split across them."""
    url = fresh_database("postgresql", 200)
    flask(url, "db", "upgrade")
    flask(url, "tracker", "seed-demo", "--pathways", "200")
    setup = prepare(url)
    servers = [Server(url, free_port()), Server(url, free_port())]
    try:
        outcome = run(
            "127.0.0.1",
            [s.port for s in servers],
            NOTE,
            duration,
            clients,
            setup["token"],
            setup["ids"],
            record=True,
        )
    finally:
        for server in servers:
            server.stop()
    stored = _stored(url, outcome["stored"])
    return {
        "servers": 2,
        "answered_201": len(outcome["stored"]),
        "stored_of_those": stored,
        "lost": len(outcome["stored"]) - stored,
        "errors": outcome["errors"],
        "rps": outcome["rps"],
    }


def _stored(url: str, request_ids: list[str]) -> int:
    from sqlalchemy import func, select

    from tracker.engine.models import Event
    from tracker.extensions import db

    app = bench_app(url)
    found = 0
    with app.app_context():
        for i in range(0, len(request_ids), 500):
            chunk = request_ids[i : i + 500]
            found += db.session.scalar(
                select(func.count(Event.id)).where(Event.request_id.in_(chunk))
            )
        db.engine.dispose()
    return found


def main() -> None:
    backends = ["sqlite"] + (["postgresql"] if POSTGRES_URL.startswith("postgresql") else [])
    results = [crash_run(b, kills=6, interval=2.0, clients=8) for b in backends]
    split = split_run(10.0, 16) if "postgresql" in backends else None
    for r in [*results, split]:
        print(json.dumps(r, indent=2))
    (ROOT / "bench" / "crash-results.json").write_text(
        json.dumps({"crash": results, "split": split}, indent=2)
    )
    _report(results, split)
    if any(r["lost"] or r["verify_exit"] for r in results) or (split and split["lost"]):
        sys.exit(1)


def _report(results: list[dict], split: dict | None) -> None:
    report = ROOT / "bench" / "REPORT.md"
    start, end = "<!-- crash:start -->", "<!-- crash:end -->"
    lines = [
        "## Crash",
        "",
        "`python bench/crash.py` (and `make crash`): 8 clients post "
        "`add_note` through the API while gunicorn's workers and master are killed "
        "with SIGKILL, in turn, 6 times, 2 s apart; the master is restarted each time.",
        "",
        "| backend | kills | answered 201 | of them stored | lost | verify |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['backend']} | {len(r['kills'])} | {r['answered_201']} | "
            f"{r['stored_of_those']} | {r['lost']} | {r['verify']} |"
        )
    if split:
        lines += [
            "",
            "Two servers on one PostgreSQL, 16 posting clients split across them for "
            f"10 s: {split['answered_201']} answered 201, {split['stored_of_those']} of "
            f"them stored, {split['lost']} lost, {split['errors']} errors "
            f"({split['rps']} posts/s).",
        ]
    text = report.read_text()
    block = f"{start}\n" + "\n".join(lines) + f"\n{end}"
    if start in text:
        head, _, rest = text.partition(start)
        text = head + block + rest.partition(end)[2]
    else:
        text += "\n" + block + "\n"
    report.write_text(text)


if __name__ == "__main__":
    main()
