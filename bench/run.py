"""`make bench`: throughput and latency as ratios to the stack's own floor.

For SQLite, and for PostgreSQL when DATABASE_URL names one: seed 1,000 and 100,000
pathways with seed-demo, serve with gunicorn (2 workers) the product with its floor
(bench/floor.py) under /floor, drive 16 logged-in clients from separate processes for a
fixed time per scenario (each page and its floor), and write bench/results.json and the
tables of bench/REPORT.md. Also times the CSV import of 100,000 events
(`--import-only`: that alone, keeping the server figures).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work"
sys.path.insert(0, str(ROOT))

from bench.load import Scenario, run  # noqa: E402

# Each floor (bench/floor.py, served under /floor by the same gunicorn) runs just before
# the pages compared with it, so that both see the machine in the same state.
SCENARIOS = [
    Scenario("healthz", "GET", "/healthz"),
    Scenario("floor_worklist", "GET", "/floor/worklist"),
    Scenario("worklist", "GET", "/", floor="floor_worklist"),
    Scenario("worklist_breached", "GET", "/?target=breached", floor="floor_worklist"),
    Scenario("floor_pathway", "GET", "/floor/pathways/{long}"),
    Scenario("pathway_200_events", "GET", "/pathways/{long}", floor="floor_pathway"),
    Scenario("reports", "GET", "/reports/", floor="floor_worklist"),
    Scenario("floor_api_pathway", "GET", "/floor/api/pathways/{id}", api=True),
    Scenario("api_pathway", "GET", "/api/v1/pathways/{id}", api=True, floor="floor_api_pathway"),
    Scenario(
        "floor_add_note",
        "POST",
        "/floor/api/pathways/{id}/notes",
        expect=201,
        api=True,
        note=True,
    ),
    Scenario("api_add_note", "POST", "", expect=201, api=True, note=True, floor="floor_add_note"),
]
READS = {"worklist", "worklist_breached", "pathway_200_events", "reports", "api_pathway"}
# What gunicorn serves: the product, with the floor's views under /floor.
BENCH_APP = "bench.floor:create_app()"


# The PostgreSQL server named when the benchmark started; never changed by a run.
POSTGRES_URL = os.environ.get("DATABASE_URL", "")
# The production config wants a long secret and the audit chains' key from outside the
# database; the benchmark serves plain HTTP on 127.0.0.1, so it says so (ALLOW_PLAIN_HTTP).
SECRET_KEY = "bench-secret-0123456789abcdef0123456789"  # noqa: S105 - benchmark only
AUDIT_KEY = "bench-audit-key-0123456789abcdef0123456789"
RATE_LIMITS = (
    "LOGIN_RATE_LIMIT_ADDRESS",
    "LOGIN_RATE_LIMIT_ACCOUNT",
    "API_RATE_LIMIT",
    "API_ANONYMOUS_RATE_LIMIT",
)


def bench_app(url: str):
    """An app on ``url`` with an explicit configuration (config.py reads the environment
    once, at import, so the environment must not be relied on between runs)."""
    from config import ProductionConfig
    from tracker import create_app

    settings = {
        "SQLALCHEMY_DATABASE_URI": url,
        "SECRET_KEY": SECRET_KEY,
        "AUDIT_KEY": AUDIT_KEY,
        "ALLOW_PLAIN_HTTP": True,
    }
    return create_app(type("BenchConfig", (ProductionConfig,), settings))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_for(url: str) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": url,
        "SECRET_KEY": SECRET_KEY,
        "AUDIT_KEY": AUDIT_KEY,
        "ALLOW_PLAIN_HTTP": "1",
        "TRACKER_ENV": "production",
        "FLASK_APP": "tracker:create_app",
        # 16 clients log in as one user from one address, 16 times per scenario, and
        # call the API with one token thousands of times a minute: the production
        # limits would answer 429 (the limiter still counts every request).
        **{name: "100000 per minute" for name in RATE_LIMITS},
    }


def flask(url: str, *args: str, quiet: bool = True) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "flask", *args],
        env=env_for(url),
        check=True,
        cwd=ROOT,
        stdout=subprocess.DEVNULL if quiet else None,
        stderr=subprocess.DEVNULL if quiet else None,
    )
    return time.perf_counter() - t0


def fresh_database(backend: str, size: int) -> str:
    WORK.mkdir(parents=True, exist_ok=True)
    if backend == "sqlite":
        path = WORK / f"bench-{size}.sqlite"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{path}"
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(POSTGRES_URL)
    name = f"{base.database}_bench"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def settle(url: str) -> None:
    """Write the seed's dirty pages out before measuring (CHECKPOINT): otherwise the
    background writer flushes a bulk load's gigabyte during the first scenarios, and the
    run measures the disk, not the pages."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("CHECKPOINT"))
    engine.dispose()


def prepare(url: str) -> dict:
    """A pathway with 200 events, the pathways the posting clients use, an API token."""
    from sqlalchemy import select

    from tracker.api.services import create_token
    from tracker.engine import services
    from tracker.engine.models import Pathway
    from tracker.extensions import db
    from tracker.users.models import User

    app = bench_app(url)
    with app.app_context():
        coordinator = db.session.scalar(select(User).where(User.username == "coordinator"))
        long = db.session.scalar(
            select(Pathway).where(Pathway.closed_at.is_(None)).order_by(Pathway.id)
        )
        at = services.load_history(long).last_occurred_at
        step = (datetime.now(UTC) - timedelta(seconds=5) - at) / 250  # all in the past
        while long.version < 200:
            at += step
            services.record(
                long,
                "add_note",
                {"note": f"Call {long.version}"},
                at,
                coordinator,
                long.version,
                uuid.uuid4().hex,
            )
        ids = list(db.session.scalars(select(Pathway.id).order_by(Pathway.id).limit(40)))[1:17]
        _, token = create_token(coordinator, "bench")
        db.session.commit()
        out = {"long": long.id, "ids": ids, "token": token}
        db.engine.dispose()
    return out


class Server:
    def __init__(
        self,
        url: str,
        port: int,
        workers: int = 2,
        app: str = "tracker:create_app()",
        cpus: str | None = None,
    ):
        """gunicorn serving ``app`` on ``url``'s database; ``cpus`` pins it (and its
        workers) to those cores (taskset's list, e.g. "0")."""
        self.port = port
        self.proc = subprocess.Popen(
            [
                *(["taskset", "-c", cpus] if cpus else []),
                sys.executable,
                "-m",
                "gunicorn",
                "--config",
                str(ROOT / "gunicorn.conf.py"),
                "--workers",
                str(workers),
                "--bind",
                f"127.0.0.1:{port}",
                "--log-level",
                "warning",
                app,
            ],
            env=env_for(url),
            cwd=ROOT,
            start_new_session=True,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("gunicorn did not start")

    def worker_rss_mb(self) -> list[float]:
        children = subprocess.run(
            ["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True
        ).stdout.split()
        out = []
        for pid in children:
            status = Path(f"/proc/{pid}/status").read_text()
            kb = int(
                next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))
            )
            out.append(round(kb / 1024, 1))
        return out

    def stop(self):
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=30)


def measure(backend: str, size: int, duration: float, clients: int) -> dict:
    url = fresh_database(backend, size)
    flask(url, "db", "upgrade")
    seed_seconds = flask(url, "tracker", "seed-demo", "--pathways", str(size))
    if backend == "postgresql":
        settle(url)
    setup = prepare(url)
    server = Server(url, free_port(), app=BENCH_APP)
    try:
        rows = []
        for scenario in SCENARIOS:
            if "{long}" in scenario.path:
                scenario = replace(scenario, path=scenario.path.format(long=setup["long"]))
            result = run(
                "127.0.0.1", server.port, scenario, duration, clients, setup["token"], setup["ids"]
            )
            result.pop("stored")
            if scenario.floor:
                result["floor"] = scenario.floor
            rows.append(result)
            print(
                f"  {backend} {size:>6} {result['scenario']:<20} {result['rps']:>7} rps "
                f"p50 {result['p50_ms']} p99 {result['p99_ms']} ms errors {result['errors']}",
                flush=True,
            )
        rss = server.worker_rss_mb()
    finally:
        server.stop()
    rps = {row["scenario"]: row["rps"] for row in rows}
    for row in rows:
        row["vs_healthz"] = round(row["rps"] / (rps["healthz"] or 1), 3)
        if "floor" in row:
            row["vs_floor"] = round(row["rps"] / (rps[row["floor"]] or 1), 3)
    return {
        "backend": backend,
        "pathways": size,
        "seed_seconds": round(seed_seconds, 1),
        "worker_rss_mb": rss,
        "rows": rows,
    }


def write_import_csv(path: Path, events: int) -> tuple[int, int]:
    """A CSV of about ``events`` events (the diagnostic part of simulated journeys) for
    `flask tracker import`; the number of events and of pathways written."""
    import random

    from tracker.demo import simulate

    header = [
        "mrn",
        "pathway_ref",
        "trigger",
        "occurred_at",
        "family_name",
        "given_name",
        "birth_date",
        "sex",
        "referral_source",
        "urgency",
        "diagnosis_category",
        "tumour_site",
        "primary_cancer_site",
        "modality",
        "region",
        "findings",
        "method",
        "histology",
        "result",
        "meeting_date",
        "disciplines",
        "rationale",
        "reason",
        "note",
    ]
    rng, now, written, n = random.Random(3), datetime.now(UTC), 0, 0
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, extrasaction="ignore")
        writer.writeheader()
        while written < events:
            n += 1
            referral = now - timedelta(days=rng.uniform(30, 400))
            journey = simulate(rng, referral, now, "routine", "T8")
            ref, mrn = f"P{n}", f"IMP{n:07d}"
            writer.writerow(
                {
                    "mrn": mrn,
                    "pathway_ref": ref,
                    "trigger": "open_pathway",
                    "occurred_at": referral.isoformat(),
                    "family_name": "Import",
                    "given_name": "Test",
                    "birth_date": "1960-01-01",
                    "sex": "male",
                    "referral_source": "gp",
                    "urgency": "routine",
                    "diagnosis_category": "metastatic_spinal",
                    "tumour_site": "T8",
                    "primary_cancer_site": "lung",
                }
            )
            written += 1
            for step in journey.steps:
                if step["trigger"] not in (
                    "request_imaging",
                    "record_imaging",
                    "request_biopsy",
                    "record_biopsy",
                    "refer_to_mdt",
                    "schedule_mdt",
                    "add_note",
                ):
                    break  # the import covers the diagnostic part of each journey
                data = {
                    k: ("|".join(v) if isinstance(v, list) else v)
                    for k, v in step["data"].items()
                    if k in header
                }
                writer.writerow(
                    {
                        "mrn": mrn,
                        "pathway_ref": ref,
                        "trigger": step["trigger"],
                        "occurred_at": step["occurred_at"].isoformat(),
                        **data,
                    }
                )
                written += 1
    return written, n


def import_benchmark(events: int) -> dict:
    """Time `flask tracker import` of about ``events`` events on a fresh SQLite database."""
    url = fresh_database("sqlite", 0)
    flask(url, "db", "upgrade")
    flask(url, "tracker", "seed-demo", "--pathways", "1")  # the demo users
    path = WORK / "import.csv"
    written, n = write_import_csv(path, events)
    seconds = flask(url, "tracker", "import", str(path), "--user", "coordinator")
    # What was imported is right: both hash chains and every pathway's replay (exit 1
    # otherwise, which stops the benchmark).
    verify_seconds = flask(url, "tracker", "verify")
    return {
        "events": written,
        "pathways": n,
        "seconds": round(seconds, 1),
        "events_per_second": round(written / seconds),
        "verified": True,
        "verify_seconds": round(verify_seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--sizes", default="1000,100000")
    parser.add_argument("--import-events", type=int, default=100_000)
    parser.add_argument(
        "--backends",
        default="",
        help="comma-separated; default sqlite, and postgresql with DATABASE_URL",
    )
    parser.add_argument(
        "--import-only",
        action="store_true",
        help="time the CSV import alone; the server figures in results.json are kept",
    )
    args = parser.parse_args()
    backends = ["sqlite"] + (["postgresql"] if POSTGRES_URL.startswith("postgresql") else [])
    if args.backends:
        backends = [b for b in args.backends.split(",") if b in backends]
    if args.import_only:
        backends = []
    results = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} cores",
        "duration_s": args.duration,
        "clients": args.clients,
        "runs": [],
    }
    for backend in backends:
        for size in map(int, args.sizes.split(",")):
            print(f"{backend}: {size} pathways", flush=True)
            results["runs"].append(measure(backend, size, args.duration, args.clients))
    if args.import_events:
        results["import"] = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            **import_benchmark(args.import_events),
        }
        print(f"import: {results['import']}", flush=True)
    out = ROOT / "bench" / "results.json"
    if out.exists():  # keep the figures of backends not rerun this time
        earlier = json.loads(out.read_text())
        if not backends:  # no server run this time: the header stays that of the figures kept
            for key in ("when", "machine", "duration_s", "clients"):
                results[key] = earlier.get(key, results[key])
        # Keep each earlier (backend, size) this run did not measure again.
        rerun = {(r["backend"], r["pathways"]) for r in results["runs"]}
        results["runs"] = [
            r for r in earlier.get("runs", []) if (r["backend"], r["pathways"]) not in rerun
        ] + results["runs"]
        if "import" not in results and "import" in earlier:
            results["import"] = earlier["import"]
        if "scaling" in earlier:  # bench/scaling.py's, kept
            results["scaling"] = earlier["scaling"]
    out.write_text(json.dumps(results, indent=2))
    from bench.report import write_tables

    write_tables(results)
    print(f"wrote {out} and the tables of bench/REPORT.md")


if __name__ == "__main__":
    main()
