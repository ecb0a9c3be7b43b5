"""Profile one page in-process with pyinstrument: `python bench/profile.py URL DB OUT`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(path: str, database_url: str, out: str) -> None:
    from bench.run import AUDIT_KEY, SECRET_KEY

    os.environ.update(
        {
            "DATABASE_URL": database_url,
            "SECRET_KEY": SECRET_KEY,
            "AUDIT_KEY": AUDIT_KEY,
            "ALLOW_PLAIN_HTTP": "1",
        }
    )
    from pyinstrument import Profiler

    from tracker import create_app
    from tracker.demo import DEMO_PASSWORD

    app = create_app("production")
    app.config["WTF_CSRF_ENABLED"] = False
    client = app.test_client()
    client.post("/login", data={"username": "coordinator", "password": DEMO_PASSWORD})
    client.get(path)  # warm caches and the first connection
    profiler = Profiler(interval=0.0005)
    profiler.start()
    for _ in range(5):
        assert client.get(path).status_code == 200
    profiler.stop()
    Path(out).write_text(profiler.output_text(unicode=False, color=False, show_all=False))
    print(profiler.output_text(unicode=False, color=False)[:3000])


if __name__ == "__main__":
    main(*sys.argv[1:4])
