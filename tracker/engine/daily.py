"""The reports' figures pre-aggregated per local day and team, kept on write.

Each pathway adds a handful of counts to the ``report_day_count`` rows (``contribution``):
its referral (by state) and its three waits (in whole-day bins) on its referral day; each
reported clock on the day it stopped, or on its due day while running or missed unstopped;
each operation, procedure and recurrence on its day, with the day of the pathway's
previous one (``since``), so that the pathways with one in a range are counted once: by
the one whose previous one lies before the range. The derivation notes the difference
between a pathway's contribution before and after each event (``note``); the deltas are
added after the flush that writes the event, in its transaction, as ``INSERT ... ON
CONFLICT DO UPDATE SET n = n + :delta`` in one order for every writer, so two writers
to one row never lose an update. ``verify`` recomputes the rows from the pathway, clock
and fact rows (``expected``) and names any difference; ``rebuild`` rewrites them (the
migration's backfill, and after a change of the time zone).

Days are local days of the configured time zone (``TIMEZONE``), as the reports' ranges.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import date

from sqlalchemy import delete, event, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tracker.core.clock import local_zone
from tracker.engine import clocks
from tracker.engine.models import Pathway, PathwayClock, PathwayFact, ReportCount

NO_DAY = date(1, 1, 1)  # before any range: "no second day"
# The clocks the reports count, and the waits whose medians they show.
STANDARD_CODES = frozenset(c.code for c in clocks.CLOCKS if c.standard)
WAITS = ("days_to_decision", "days_decision_to_treatment", "days_to_treatment")
COUNTED_FACTS = ("operation", "procedure", "recurrence")
KEY = ("day", "team", "kind", "code", "bucket", "since")
PATHWAY_COLUMNS = ("id", "team", "in_error", "referral_received_at", "state", *WAITS)
CLOCK_COLUMNS = ("pathway_id", "clock", "status", "started_at", "stopped_at", "due_at")
FACT_COLUMNS = ("pathway_id", "seq", "kind", "code", "occurred_at")
_NOTED = "report_deltas"  # session.info: the deltas of this flush


def _get(obj, name: str):
    return obj[name] if isinstance(obj, dict) else getattr(obj, name)


def contribution(row, clock_rows, fact_rows, zone=None, state: str | None = None) -> Counter:
    """What one pathway adds to the report rows: key (``KEY``) -> count. ``row``, the
    clock and fact rows: objects or dicts with the columns the reports read; ``state``:
    the pathway's state, when not the row's."""
    out: Counter = Counter()
    if _get(row, "in_error"):  # opened in error: in no report
        return out
    zone = zone or local_zone()
    team = _get(row, "team")

    def day(at) -> date:
        return at.astimezone(zone).date()

    referred = day(_get(row, "referral_received_at"))
    out[(referred, team, "referral", state or _get(row, "state"), 0, NO_DAY)] += 1
    for i, name in enumerate(WAITS):
        wait = _get(row, name)
        if wait is not None:
            out[(referred, team, "wait", str(i), math.floor(wait), NO_DAY)] += 1
    for c in clock_rows:
        code = _get(c, "clock")
        if code not in STANDARD_CODES:
            continue
        status, stopped = _get(c, "status"), _get(c, "stopped_at")
        if stopped is not None:
            outcome = "met" if status == "met" else "not_met"
            out[(day(stopped), team, "clock", f"{code}:{outcome}", 0, NO_DAY)] += 1
        elif status == "missed":  # ended unstopped after its due time
            out[(day(_get(c, "due_at")), team, "clock", f"{code}:not_met", 0, NO_DAY)] += 1
        else:  # running: not met once due, pending before; dated by its due day
            since = day(_get(c, "started_at"))
            out[(day(_get(c, "due_at")), team, "clock", f"{code}:running", 0, since)] += 1
    facts = sorted(
        fact_rows,
        key=lambda f: (_get(f, "occurred_at"), _get(f, "seq"), _get(f, "kind"), _get(f, "code")),
    )
    grades = Counter(_get(f, "code") for f in facts if _get(f, "kind") == "complication")
    previous: dict[str, date] = {}
    for f in facts:
        kind = _get(f, "kind")
        if kind not in COUNTED_FACTS:
            continue
        on = day(_get(f, "occurred_at"))
        out[(on, team, "fact", f"{kind}:{_get(f, 'code')}", 0, NO_DAY)] += 1
        if kind == "procedure":
            continue
        since = previous.get(kind, NO_DAY)
        previous[kind] = on
        out[(on, team, "first", kind, 0, since)] += 1
        if kind == "operation":
            # An operated pathway's complications (whenever they were recorded) count in
            # the ranges where it was operated on.
            for grade, n in grades.items():
                out[(on, team, "op_grade", grade, 0, since)] += n
            if grades:
                out[(on, team, "op_complicated", "", 0, since)] += 1
    return out


def of_pathway(pathway: Pathway, state: str | None = None) -> Counter:
    """The contribution of ``pathway`` as its row and derived rows stand in the session
    (in ``state``, when given: the machine moves the row before the derivation runs)."""
    return contribution(pathway, pathway.clocks, pathway.facts, state=state)


def note(session, before: Counter | None, after: Counter) -> None:
    """Note that a pathway's contribution went from ``before`` (None: it had none) to
    ``after``; the difference is added after the session's next flush."""
    delta = Counter(after)
    delta.subtract(before or Counter())
    pending = session.info.setdefault(_NOTED, Counter())
    pending.update(delta)


def add(connection, deltas: Counter) -> None:
    """Add ``key -> change`` to the rows, creating those missing: one upsert per row that
    changes, in key order for every writer, each adding to the row as it stands."""
    rows = [
        {**dict(zip(KEY, key, strict=True)), "n": change}
        for key, change in sorted(deltas.items())
        if change
    ]
    if not rows:
        return
    table = ReportCount.__table__
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=list(KEY), set_={"n": table.c.n + statement.excluded.n}
    )
    connection.execute(statement, rows)


@event.listens_for(Session, "after_flush")
def _write_deltas(session, flush_context) -> None:
    deltas = session.info.pop(_NOTED, None)
    if deltas:
        add(session.connection(), deltas)


@event.listens_for(Session, "after_rollback")
def _forget_deltas(session) -> None:
    session.info.pop(_NOTED, None)


def expected(connection, pathway=None, clock=None, fact=None, batch: int = 5000) -> Counter:
    """The rows recomputed from the pathway, clock and fact rows (for verify and the
    backfill): key -> count. The tables may be given as a migration sees them."""
    pathway = pathway if pathway is not None else Pathway.__table__
    clock = clock if clock is not None else PathwayClock.__table__
    fact = fact if fact is not None else PathwayFact.__table__
    zone = local_zone()
    total: Counter = Counter()
    last_id = 0
    while True:
        rows = connection.execute(
            select(*(pathway.c[name] for name in PATHWAY_COLUMNS))
            .where(pathway.c.id > last_id)
            .order_by(pathway.c.id)
            .limit(batch)
        ).all()
        if not rows:
            return +total
        low, high = rows[0].id, rows[-1].id
        clocks_of: dict[int, list] = {}
        for c in connection.execute(
            select(*(clock.c[name] for name in CLOCK_COLUMNS)).where(
                clock.c.pathway_id.between(low, high)
            )
        ):
            clocks_of.setdefault(c.pathway_id, []).append(c)
        facts_of: dict[int, list] = {}
        for f in connection.execute(
            select(*(fact.c[name] for name in FACT_COLUMNS)).where(
                fact.c.pathway_id.between(low, high)
            )
        ):
            facts_of.setdefault(f.pathway_id, []).append(f)
        for row in rows:
            total.update(
                contribution(row, clocks_of.get(row.id, []), facts_of.get(row.id, []), zone)
            )
        last_id = high


def stored(connection, table=None) -> Counter:
    """The rows as kept: key -> count (rows at zero left out)."""
    table = table if table is not None else ReportCount.__table__
    rows = connection.execute(select(*(table.c[name] for name in KEY), table.c.n))
    return Counter({tuple(row[:-1]): row[-1] for row in rows if row[-1]})


def rebuild(connection, table=None, **tables) -> int:
    """Replace every row by a recount from the pathways; the number of rows written."""
    table = table if table is not None else ReportCount.__table__
    counts = expected(connection, **tables)
    connection.execute(delete(table))
    rows = [{**dict(zip(KEY, key, strict=True)), "n": n} for key, n in sorted(counts.items())]
    for start in range(0, len(rows), 5000):
        connection.execute(table.insert(), rows[start : start + 5000])
    return len(rows)


def differences(kept: Counter, wanted: Counter, limit: int = 20) -> list[str]:
    """The rows that differ, in words (at most ``limit`` of them, and how many more)."""
    keys = sorted(set(kept) | set(wanted), key=lambda k: tuple(map(str, k)))
    wrong = [k for k in keys if kept.get(k, 0) != wanted.get(k, 0)]
    out = []
    for day, team, kind, code, bucket, since in wrong[:limit]:
        key = (day, team, kind, code, bucket, since)
        where = f"{day} {team} {kind} {code}".rstrip()
        if kind == "wait":
            where += f" bin {bucket}"
        if since != NO_DAY:
            where += f" since {since}"
        out.append(
            f"report_day_count {where}: kept {kept.get(key, 0)}, the pathways give "
            f"{wanted.get(key, 0)} (run `flask tracker refresh-targets` to rebuild)"
        )
    if len(wrong) > limit:
        out.append(f"... and {len(wrong) - limit} more report_day_count rows differ")
    return out


def check(connection) -> list[str]:
    """The kept rows against a recount from the pathways."""
    return differences(stored(connection), expected(connection))
