"""The tables of bench/REPORT.md, from bench/results.json (between the markers)."""

from __future__ import annotations

import json
from pathlib import Path

REPORT = Path(__file__).resolve().parent / "REPORT.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"
# The floor issue's goals: each read page and API read at 0.6x its floor's throughput or
# better, add_note at 0.6x the floor's write; p99 under 100 ms for every page; latency and
# worker memory at 100,000 pathways within 1.25x of 1,000; no errors.
GOAL_READ, GOAL_POST, GOAL_P99, GOAL_SCALE = 0.6, 0.6, 100.0, 1.25
GOAL_SEED_S, GOAL_IMPORT_S = 60, 15  # seed-demo of 100,000 pathways; import of 100,000 events
GOAL_SERVERS = 1.6  # two app servers together, as a multiple of one
READS = ("worklist", "worklist_breached", "pathway_200_events", "reports", "api_pathway")
WRITES = ("api_add_note",)


def _mark(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _vs_floor(row: dict) -> str:
    """The row's share of its floor's throughput; "n/a" for a page of a run made before
    the floor was measured; blank for /healthz and the floors themselves."""
    if "vs_floor" in row:
        return str(row["vs_floor"])
    return "n/a" if row["scenario"] in READS + WRITES else ""


def _goals(row: dict) -> str:
    goals = []
    name, vs_floor = row["scenario"], row.get("vs_floor")
    if name in READS + WRITES:
        goal = GOAL_READ if name in READS else GOAL_POST
        met = "n/a" if vs_floor is None else _mark(vs_floor >= goal)
        goals.append(f"{goal}x floor {met}")
    goals.append(f"p99 {_mark((row['p99_ms'] or 1e9) < GOAL_P99)}")
    goals.append(f"errors {_mark(row['errors'] == 0)}")
    return ", ".join(goals)


def _ratio(large, small) -> float | None:
    return round(large / small, 2) if small and large is not None else None


def tables(results: dict) -> str:
    lines = [
        f"Run {results['when']} on {results['machine']}, {results['clients']} clients, "
        f"{results['duration_s']:g} s per scenario.",
        "",
    ]
    by_key = {(r["backend"], r["pathways"]): r for r in results["runs"]}
    for run in results["runs"]:
        seeded = f"Seeded in {run['seed_seconds']} s"
        if run["pathways"] >= 100_000:
            met = _mark(run["seed_seconds"] < GOAL_SEED_S)
            seeded += f" (goal: under {GOAL_SEED_S} s: {met})"
        lines += [
            f"### {run['backend']}, {run['pathways']:,} pathways",
            "",
            f"{seeded}. Worker RSS after the run: "
            f"{', '.join(f'{m} MB' for m in run['worker_rss_mb'])}.",
            "",
            "| scenario | req/s | x healthz | x floor | p50 ms | p95 ms | p99 ms | errors "
            "| goals |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for row in run["rows"]:
            lines.append(
                f"| {row['scenario']} | {row['rps']} | {row['vs_healthz']} | {_vs_floor(row)} | "
                f"{row['p50_ms']} | {row['p95_ms']} | {row['p99_ms']} | {row['errors']} | "
                f"{_goals(row)} |"
            )
        lines.append("")
    sizes = sorted({r["pathways"] for r in results["runs"]})
    if len(sizes) == 2:
        small, large = sizes
        backends = sorted({r["backend"] for r in results["runs"]})
        pairs = [
            (backend, by_key[(backend, small)], by_key[(backend, large)])
            for backend in backends
            if (backend, small) in by_key and (backend, large) in by_key
        ]
        lines += [
            f"### Latency and memory at {large:,} pathways as a ratio of {small:,}",
            "",
            "| backend | scenario | p50 ratio | p99 ratio | goal 1.25x |",
            "|---|---|---:|---:|---|",
        ]
        for backend, a, b in pairs:
            at_large = {row["scenario"]: row for row in b["rows"]}
            for ra in a["rows"]:
                rb = at_large.get(ra["scenario"])
                if rb is None:
                    continue
                p50 = _ratio(rb["p50_ms"], ra["p50_ms"])
                p99 = _ratio(rb["p99_ms"], ra["p99_ms"])
                lines.append(
                    f"| {backend} | {ra['scenario']} | {p50} | {p99} | "
                    f"{_mark(p50 is not None and p50 <= GOAL_SCALE)} |"
                )
        lines += [
            "",
            "Worker memory: the largest gunicorn worker's RSS after the run.",
            "",
            f"| backend | RSS MB, {small:,} | RSS MB, {large:,} | ratio | goal 1.25x |",
            "|---|---:|---:|---:|---|",
        ]
        for backend, a, b in pairs:
            rss_small, rss_large = max(a["worker_rss_mb"]), max(b["worker_rss_mb"])
            ratio = _ratio(rss_large, rss_small)
            lines.append(
                f"| {backend} | {rss_small} | {rss_large} | {ratio} | "
                f"{_mark(ratio is not None and ratio <= GOAL_SCALE)} |"
            )
        lines.append("")
    if "import" in results:
        imp = results["import"]
        lines += [
            "### CSV import (SQLite)",
            "",
            f"{imp['events']:,} events in {imp['pathways']:,} pathways: {imp['seconds']} s, "
            f"{imp['events_per_second']:,} events/s (goal: 100,000 in under {GOAL_IMPORT_S} s: "
            f"{_mark(imp['events'] >= 100_000 and imp['seconds'] < GOAL_IMPORT_S)}).",
            "",
        ]
    if "scaling" in results:
        scaling = results["scaling"]
        audited = [r for r in scaling["rows"] if r["scenario"] != "healthz"]
        lines += [
            "### Two app servers against one (PostgreSQL)",
            "",
            f"{scaling['pathways']:,} pathways, {scaling['clients']} clients split across the "
            f"servers, {scaling['duration_s']:g} s per scenario, medians of "
            f"{scaling.get('repeat', 1)} runs taking turns, {scaling['when']}: each server "
            "one gunicorn worker pinned to one core (`bench/scaling.py`). Goal: two servers "
            f"at least {GOAL_SERVERS}x one for the audited views and add_note: "
            + ", ".join(f"{r['scenario']} {_mark(r['ratio'] >= GOAL_SERVERS)}" for r in audited)
            + ". healthz (no database, no audit) is what a second server can add at all here.",
            "",
            scaling_table(scaling),
            "",
        ]
        if "queue" in scaling:
            lines += [
                "Audit entries appended per second by writer processes, one entry per "
                "transaction, with commits that return at once and with commits that take "
                "5 ms (`bench/scaling.py`, the same database):",
                "",
                queue_table(scaling["queue"]),
                "",
            ]
    return "\n".join(lines)


def scaling_table(scaling: dict) -> str:
    lines = [
        "| scenario | one server, rps | two servers, rps | two / one | p99 one, ms | "
        "p99 two, ms | errors | runs, one | runs, two |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in scaling["rows"]:
        lines.append(
            f"| {row['scenario']} | {row['one_rps']} | {row['two_rps']} | {row['ratio']}x | "
            f"{row['one_p99_ms']} | {row['two_p99_ms']} | {row['errors']} | "
            f"{', '.join(map(str, row['one_runs']))} | {', '.join(map(str, row['two_runs']))} |"
        )
    return "\n".join(lines)


def queue_table(rows: list[dict]) -> str:
    writers = sorted({r["writers"] for r in rows})
    lines = [
        "| commit holds | " + " | ".join(f"{w} writers" for w in writers) + " |",
        "|---|" + "---|" * len(writers),
    ]
    for hold in sorted({r["hold_ms"] for r in rows}):
        figures = {r["writers"]: r["per_s"] for r in rows if r["hold_ms"] == hold}
        lines.append(
            f"| {hold} ms | " + " | ".join(f"{figures.get(w, '')}/s" for w in writers) + " |"
        )
    return "\n".join(lines)


def write_tables(results: dict) -> None:
    text = REPORT.read_text() if REPORT.exists() else f"# Benchmark report\n\n{START}\n{END}\n"
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    REPORT.write_text(f"{head}{START}\n{tables(results)}\n{END}{tail}")


if __name__ == "__main__":
    write_tables(json.loads((REPORT.parent / "results.json").read_text()))
