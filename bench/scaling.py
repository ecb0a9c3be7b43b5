"""`make bench-scaling`: does a second app server add audited throughput?

Every view of patient data writes an audit entry, and every entry ends up in one hash
chain. This measures, on PostgreSQL (DATABASE_URL) with 1,000 pathways, one gunicorn
server of one worker pinned to one core against two such servers pinned to one core
each, 16 clients split evenly across the servers, for:

- ``healthz``: no database, no audit; what two servers can add at all on this machine
  (the 16 clients and PostgreSQL share its cores with the servers);
- ``worklist`` and ``api_pathway``: audited views, a page and an API read;
- ``api_add_note``: a write (an event in the event chain, its audit entry).

Then the audit chain's queue alone: 1, 2, 4 and 8 processes each appending audit
entries (one per transaction) as fast as they can, with commits that return at once and
with commits that take 5 ms (a database across the network, a synchronous standby).
While every entry took the chain's head row until its commit, the writers together
could not pass 1 / (commit time).

Writes the figures to bench/results.json ("scaling") and the table of bench/REPORT.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.load import Scenario, run  # noqa: E402
from bench.report import queue_table, scaling_table  # noqa: E402
from bench.run import POSTGRES_URL, Server, flask, free_port, fresh_database, prepare  # noqa: E402

SCENARIOS = [
    Scenario("healthz", "GET", "/healthz"),
    Scenario("worklist", "GET", "/"),
    Scenario("api_pathway", "GET", "/api/v1/pathways/{id}", api=True),
    Scenario("api_add_note", "POST", "", expect=201, api=True, note=True),
]


def _measure(
    ports: list[int], setup: dict, duration: float, clients: int, fresh: list[int]
) -> dict:
    """Each scenario once; add_note writes to ``fresh`` pathways, so every run of it
    starts from histories of the same length (and the reads never see its notes)."""
    out = {}
    for scenario in SCENARIOS:
        ids = fresh if scenario.note else setup["ids"]
        result = run("127.0.0.1", ports, scenario, duration, clients, setup["token"], ids)
        result.pop("stored")
        out[scenario.name] = result
        print(
            f"  {len(ports)} server(s) {scenario.name:<14} {result['rps']:>7} rps "
            f"p99 {result['p99_ms']} ms errors {result['errors']}",
            flush=True,
        )
    return out


def _open_pathways(url: str, exclude: list[int]) -> list[int]:
    from sqlalchemy import select

    from bench.run import bench_app
    from tracker.engine.models import Pathway
    from tracker.extensions import db

    with bench_app(url).app_context():
        ids = db.session.scalars(
            select(Pathway.id)
            .where(Pathway.closed_at.is_(None), Pathway.id.not_in(exclude))
            .order_by(Pathway.id)
        ).all()
        db.engine.dispose()
    return list(ids)


def measure(duration: float, clients: int, size: int, repeat: int) -> dict:
    url = fresh_database("postgresql", size)
    flask(url, "db", "upgrade")
    flask(url, "tracker", "seed-demo", "--pathways", str(size))
    setup = prepare(url)
    # This machine's neighbours come and go: one and two servers take turns, ``repeat``
    # times, and each figure is the median of its runs.
    runs = {"one": [], "two": []}
    spare = _open_pathways(url, exclude=setup["ids"])
    turns = [("one", ["0"]), ("two", ["0", "1"])]
    for n in range(repeat):
        for label, cores in turns if n % 2 == 0 else turns[::-1]:
            fresh, spare = spare[:clients], spare[clients:]
            servers = [Server(url, free_port(), workers=1, cpus=core) for core in cores]
            try:
                measured = _measure([s.port for s in servers], setup, duration, clients, fresh)
                runs[label].append(measured)
            finally:
                for server in servers:
                    server.stop()
    results = {
        label: {
            name: {
                "rps": statistics.median(r[name]["rps"] for r in measured),
                "p99_ms": statistics.median(r[name]["p99_ms"] for r in measured),
                "errors": sum(r[name]["errors"] for r in measured),
                "runs": [r[name]["rps"] for r in measured],
            }
            for name in measured[0]
        }
        for label, measured in runs.items()
    }
    queue = audit_queue(url, duration / 2)
    flask(url, "tracker", "seal-audit")
    flask(url, "tracker", "verify")  # every entry in its chain, every chain intact
    rows = []
    for scenario in SCENARIOS:
        one, two = results["one"][scenario.name], results["two"][scenario.name]
        rows.append(
            {
                "scenario": scenario.name,
                "one_rps": one["rps"],
                "two_rps": two["rps"],
                "ratio": round(two["rps"] / (one["rps"] or 1), 2),
                "one_runs": one["runs"],
                "two_runs": two["runs"],
                "one_p99_ms": one["p99_ms"],
                "two_p99_ms": two["p99_ms"],
                "errors": one["errors"] + two["errors"],
            }
        )
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} cores",
        "pathways": size,
        "duration_s": duration,
        "clients": clients,
        "repeat": repeat,
        "rows": rows,
        "queue": queue,
    }


# -- the audit chain's queue, alone -------------------------------------------------------

WRITERS = (1, 2, 4, 8)
HOLDS_MS = (0, 5)


def _append_audit(args) -> int:
    """One writer process: audit entries, one per transaction, for ``duration`` seconds;
    each transaction holds ``hold_ms`` between its INSERT and its COMMIT (a commit that
    travels to a database across the network, or waits for a synchronous standby). It
    links the entries written meanwhile once a second, as a server process does."""
    url, duration, hold_ms, start_at = args
    from sqlalchemy import text

    from bench.run import bench_app
    from tracker.audit.services import record
    from tracker.extensions import db

    try:
        from tracker.audit.chain import seal_pending
    except ImportError:  # a tree from before the audit entries were linked in batches
        seal_pending = None
    app = bench_app(url)
    count = 0
    with app.app_context():
        db.session.execute(text("SELECT 1"))  # connected before the clock starts
        db.session.rollback()
        while time.time() < start_at:
            time.sleep(0.005)
        last_seal, end = time.time(), start_at + duration
        while time.time() < end:
            record("view", detail="queue benchmark")
            db.session.flush()
            if hold_ms:
                time.sleep(hold_ms / 1000)
            db.session.commit()
            count += 1
            if seal_pending and time.time() - last_seal >= 1:
                seal_pending(wait=False)
                db.session.commit()
                last_seal = time.time()
        db.engine.dispose()
    return count


def audit_queue(url: str, duration: float) -> list[dict]:
    rows = []
    for hold in HOLDS_MS:
        for writers in WRITERS:
            start_at = time.time() + 3.0
            with mp.get_context("fork").Pool(writers) as pool:
                counts = pool.map(_append_audit, [(url, duration, hold, start_at)] * writers)
            rows.append(
                {"hold_ms": hold, "writers": writers, "per_s": round(sum(counts) / duration, 1)}
            )
            print(f"  audit appends, hold {hold} ms, {writers} writers: {rows[-1]['per_s']}/s")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--pathways", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not POSTGRES_URL.startswith("postgresql"):
        sys.exit("bench/scaling.py measures PostgreSQL: set DATABASE_URL to a PostgreSQL server")
    scaling = measure(args.duration, args.clients, args.pathways, args.repeat)
    out = ROOT / "bench" / "results.json"
    results = json.loads(out.read_text()) if out.exists() else {}
    results["scaling"] = scaling
    out.write_text(json.dumps(results, indent=2))
    from bench.report import write_tables

    write_tables(results)
    print(scaling_table(scaling))
    print(queue_table(scaling["queue"]))


if __name__ == "__main__":
    main()
