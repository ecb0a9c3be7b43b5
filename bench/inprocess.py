"""Time pages in-process (no server, no clients): `python bench/inprocess.py DB N PATH...`.

Prints each page's p50 and minimum over N requests after one warm-up request, and the
p50 of this process's CPU time, as the coordinator of the demo data. The figures of
bench/REPORT.md's engine section."""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(database_url: str, n: str, *paths: str) -> None:
    from bench.run import AUDIT_KEY, SECRET_KEY

    os.environ.update(
        {
            "DATABASE_URL": database_url,
            "SECRET_KEY": SECRET_KEY,
            "AUDIT_KEY": AUDIT_KEY,
            "ALLOW_PLAIN_HTTP": "1",
        }
    )
    from tracker import create_app
    from tracker.demo import DEMO_PASSWORD

    app = create_app("production")
    app.config["WTF_CSRF_ENABLED"] = False
    client = app.test_client()
    client.post("/login", data={"username": "coordinator", "password": DEMO_PASSWORD})
    for path in paths:
        assert client.get(path).status_code == 200  # warm caches and the connection
        times, cpu = [], []
        for _ in range(int(n)):
            t0, c0 = time.perf_counter(), time.process_time()
            assert client.get(path).status_code == 200
            times.append(1000 * (time.perf_counter() - t0))
            cpu.append(1000 * (time.process_time() - c0))
        # The machine is shared: the minimum and this process's CPU time are steadier than
        # the median; the database server's own time (PostgreSQL) is in the wall times only.
        print(
            f"{path:<24} p50 {statistics.median(times):8.1f} ms  min {min(times):8.1f} ms  "
            f"app CPU p50 {statistics.median(cpu):8.1f} ms",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *sys.argv[3:])
