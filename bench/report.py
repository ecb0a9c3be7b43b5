"""The tables of bench/REPORT.md, from bench/results.json (between the markers)."""

from __future__ import annotations

import json
from pathlib import Path

REPORT = Path(__file__).resolve().parent / "REPORT.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"
GOAL_READ, GOAL_POST, GOAL_P99, GOAL_SCALE = 0.3, 0.25, 50.0, 1.25


def _mark(ok: bool) -> str:
    return "met" if ok else "**not met**"


def tables(results: dict) -> str:
    lines = [
        f"Run {results['when']} on {results['machine']}, {results['clients']} clients, "
        f"{results['duration_s']:g} s per scenario.",
        "",
    ]
    by_key = {(r["backend"], r["pathways"]): r for r in results["runs"]}
    for run in results["runs"]:
        lines += [
            f"### {run['backend']}, {run['pathways']:,} pathways",
            "",
            f"Seeded in {run['seed_seconds']} s. Worker RSS after the run: "
            f"{', '.join(f'{m} MB' for m in run['worker_rss_mb'])}.",
            "",
            "| scenario | req/s | x healthz | p50 ms | p95 ms | p99 ms | errors | goals |",
            "|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        for row in run["rows"]:
            goals = []
            name = row["scenario"]
            if name in (
                "worklist",
                "worklist_breached",
                "pathway_200_events",
                "reports",
                "api_pathway",
            ):
                goals.append(f"0.3x {_mark(row['vs_healthz'] >= GOAL_READ)}")
            if name == "api_add_note":
                goals.append(f"0.25x {_mark(row['vs_healthz'] >= GOAL_POST)}")
            goals.append(f"p99 {_mark((row['p99_ms'] or 1e9) < GOAL_P99)}")
            goals.append(f"errors {_mark(row['errors'] == 0)}")
            lines.append(
                f"| {name} | {row['rps']} | {row['vs_healthz']} | {row['p50_ms']} | "
                f"{row['p95_ms']} | {row['p99_ms']} | {row['errors']} | "
                f"{', '.join(goals)} |"
            )
        lines.append("")
    sizes = sorted({r["pathways"] for r in results["runs"]})
    if len(sizes) == 2:
        small, large = sizes
        lines += [
            f"### Latency at {large:,} pathways as a ratio of {small:,}",
            "",
            "| backend | scenario | p50 ratio | p99 ratio | goal 1.25x |",
            "|---|---|---:|---:|---|",
        ]
        for backend in sorted({r["backend"] for r in results["runs"]}):
            a, b = by_key.get((backend, small)), by_key.get((backend, large))
            if not a or not b:
                continue
            for ra, rb in zip(a["rows"], b["rows"], strict=True):
                p50 = round(rb["p50_ms"] / ra["p50_ms"], 2) if ra["p50_ms"] else None
                p99 = round(rb["p99_ms"] / ra["p99_ms"], 2) if ra["p99_ms"] else None
                lines.append(
                    f"| {backend} | {ra['scenario']} | {p50} | {p99} | "
                    f"{_mark(p50 is not None and p50 <= GOAL_SCALE)} |"
                )
        lines.append("")
    if "import" in results:
        imp = results["import"]
        lines += [
            "### CSV import (SQLite)",
            "",
            f"{imp['events']:,} events in {imp['pathways']:,} pathways: {imp['seconds']} s, "
            f"{imp['events_per_second']:,} events/s (goal: 100,000 in under 60 s: "
            f"{_mark(imp['events'] >= 100_000 and imp['seconds'] < 60)}).",
            "",
        ]
    return "\n".join(lines)


def write_tables(results: dict) -> None:
    text = REPORT.read_text() if REPORT.exists() else f"# Benchmark report\n\n{START}\n{END}\n"
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    REPORT.write_text(f"{head}{START}\n{tables(results)}\n{END}{tail}")


if __name__ == "__main__":
    write_tables(json.loads((REPORT.parent / "results.json").read_text()))
