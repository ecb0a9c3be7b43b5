"""The reports page's queries and their plans: `python bench/explain.py DB OUT`.

Builds the default report (the last 90 days, every team) in-process, records each SQL
statement with its parameters, then runs it again under EXPLAIN ANALYZE (PostgreSQL) or
EXPLAIN QUERY PLAN (SQLite), timing each, and writes the plans to OUT."""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(database_url: str, out: str) -> None:
    from bench.run import AUDIT_KEY, SECRET_KEY

    os.environ.update(
        {
            "DATABASE_URL": database_url,
            "SECRET_KEY": SECRET_KEY,
            "AUDIT_KEY": AUDIT_KEY,
            "ALLOW_PLAIN_HTTP": "1",
        }
    )
    from sqlalchemy import event

    from tracker import create_app
    from tracker.core.clock import local_zone
    from tracker.extensions import db
    from tracker.reports import figures

    app = create_app("production")
    lines: list[str] = []
    with app.app_context():
        zone = local_zone()
        now = datetime.now(UTC)
        today = now.astimezone(zone).date()
        f = figures.Filters(today - timedelta(days=89), today)
        statements: list[tuple[str, object]] = []

        def record(conn, cursor, statement, parameters, context, executemany):
            statements.append((statement, parameters))

        event.listen(db.engine, "before_cursor_execute", record)
        t0 = time.perf_counter()
        figures.build(f, now, zone)
        total = 1000 * (time.perf_counter() - t0)
        event.remove(db.engine, "before_cursor_execute", record)
        lines.append(f"report built in {total:.1f} ms, {len(statements)} statements\n")
        postgres = db.engine.dialect.name == "postgresql"
        prefix = "EXPLAIN (ANALYZE, BUFFERS) " if postgres else "EXPLAIN QUERY PLAN "
        with db.engine.connect() as conn:
            for statement, parameters in statements:
                cursor = conn.connection.cursor()
                t0 = time.perf_counter()
                cursor.execute(statement, parameters)
                cursor.fetchall()
                took = 1000 * (time.perf_counter() - t0)
                cursor.execute(prefix + statement, parameters)
                plan = "\n".join(" | ".join(map(str, row)) for row in cursor.fetchall())
                lines.append(f"-- {took:.1f} ms\n{statement}\n{parameters}\n{plan}\n")
    Path(out).write_text("\n".join(lines))
    print(lines[0])


if __name__ == "__main__":
    main(*sys.argv[1:3])
