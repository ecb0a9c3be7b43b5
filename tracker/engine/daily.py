"""The reports' figures pre-aggregated per local day and team, kept on write.

Each pathway adds a handful of counts to the ``report_day_count`` rows (``contribution``):
its referral (by state) and its three waits (in whole-day bins) on its referral day; each
reported clock on the day it stopped, or on its due day while running (with the hour of
that day it is due, and its start day) or missed unstopped;
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

Each count is kept three times (``spread``): on its day (span ``DAY``), on its part of the
month (``PART``: days 1-8, 9-16, 17-24 and 25 to the end) and on its month (``MONTH``),
each row dated by the first day of its span. A range of days is read as the fewest spans
that tile it (``tiles``): its whole months, then whole parts, then single days, so a
90-day report reads two or three month rows per key and at most a few dozen day and part
rows, however many referrals a day holds. Every span lies within one month, so the
month of each row is the month of its days (the reports' monthly trend).
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import date, datetime, time, timedelta

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
KEY = ("day", "team", "kind", "code", "bucket", "since")  # a contribution's key
DAY, PART, MONTH = SPANS = (0, 1, 2)  # the spans a count is kept on
ROW_KEY = ("span", *KEY)  # a row's key: the span, its first day, and the rest
PART_STARTS = (1, 9, 17, 25)  # the days of the month each part begins on
PATHWAY_COLUMNS = ("id", "team", "in_error", "referral_received_at", "state", *WAITS)
CLOCK_COLUMNS = ("pathway_id", "clock", "status", "started_at", "stopped_at", "due_at")
FACT_COLUMNS = ("pathway_id", "seq", "kind", "code", "occurred_at")
_NOTED = "report_deltas"  # session.info: the deltas of this flush


def _month_end(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)


def span_start(span: int, day: date) -> date:
    """The first day of the span of kind ``span`` that holds ``day``."""
    if span == MONTH:
        return day.replace(day=1)
    if span == PART:
        return day.replace(day=max(s for s in PART_STARTS if s <= day.day))
    return day


def span_end(span: int, first: date) -> date:
    """The last day of the span of kind ``span`` that begins on ``first``."""
    if span == MONTH or (span == PART and first.day == PART_STARTS[-1]):
        return _month_end(first)
    if span == PART:
        return first + timedelta(days=7)
    return first


def tiles(start: date, end: date) -> list[tuple[int, date]]:
    """The fewest spans that tile the days ``start`` to ``end`` (inclusive), in order:
    (span, first day). Whole months, else whole parts, else days."""
    out: list[tuple[int, date]] = []
    day = start
    while day <= end:
        for span in (MONTH, PART, DAY):
            if span_start(span, day) == day and span_end(span, day) <= end:
                out.append((span, day))
                day = span_end(span, day) + timedelta(days=1)
                break
    return out


def spread(counts: Counter) -> Counter:
    """Day-keyed counts (``KEY``) as the rows keep them (``ROW_KEY``): each on its day,
    its part of the month and its month."""
    out: Counter = Counter()
    for (day, *rest), n in counts.items():
        for span in SPANS:
            out[(span, span_start(span, day), *rest)] += n
    return out


def due_hour(at: datetime, zone) -> tuple[date, int]:
    """The local day of ``at`` and its hour in that day, counted from the day's start in
    elapsed hours (0 to 24: a day changing to or from summer time has 23 or 25)."""
    on = at.astimezone(zone).date()
    return on, (at - datetime.combine(on, time(0), tzinfo=zone)) // timedelta(hours=1)


def hour_bounds(on: date, hour: int, zone) -> tuple[datetime, datetime]:
    """The instants the ``hour`` of day ``on`` runs between (``due_hour``'s inverse)."""
    start = datetime.combine(on, time(0), tzinfo=zone) + timedelta(hours=hour)
    return start, start + timedelta(hours=1)


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
        else:  # running: not met once due, pending before; dated by its due day and hour
            since = day(_get(c, "started_at"))
            due_day, hour = due_hour(_get(c, "due_at"), zone)
            out[(due_day, team, "clock", f"{code}:running", hour, since)] += 1
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
    """Add day-keyed ``key -> change`` to the rows of each span, creating those missing:
    one upsert per row that changes, in key order for every writer, each adding to the
    row as it stands."""
    rows = [
        {**dict(zip(ROW_KEY, key, strict=True)), "n": change}
        for key, change in sorted(spread(deltas).items())
        if change
    ]
    if not rows:
        return
    table = ReportCount.__table__
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=list(ROW_KEY), set_={"n": table.c.n + statement.excluded.n}
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
    """The day-keyed counts recomputed from the pathway, clock and fact rows (for verify
    and the backfill): ``KEY`` -> count (``spread`` gives the rows). The tables may be
    given as a migration sees them."""
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
    """The rows as kept: ``ROW_KEY`` -> count (rows at zero left out)."""
    table = table if table is not None else ReportCount.__table__
    rows = connection.execute(select(*(table.c[name] for name in ROW_KEY), table.c.n))
    return Counter({tuple(row[:-1]): row[-1] for row in rows if row[-1]})


def rebuild(connection, table=None, **tables) -> int:
    """Replace every row by a recount from the pathways; the number of rows written. A
    table as an earlier migration made it (no ``span``) gets the day rows alone."""
    table = table if table is not None else ReportCount.__table__
    counts = expected(connection, **tables)
    key = KEY
    if "span" in table.c:
        counts, key = spread(counts), ROW_KEY
    connection.execute(delete(table))
    rows = [{**dict(zip(key, k, strict=True)), "n": n} for k, n in sorted(counts.items())]
    for start in range(0, len(rows), 5000):
        connection.execute(table.insert(), rows[start : start + 5000])
    return len(rows)


SPAN_NAMES = {DAY: "", PART: "part from ", MONTH: "month from "}


def differences(kept: Counter, wanted: Counter, limit: int = 20) -> list[str]:
    """The rows that differ, in words (at most ``limit`` of them, and how many more):
    ``kept`` as ``stored`` gives them, ``wanted`` day-keyed as ``expected`` does."""
    wanted = spread(wanted)
    keys = sorted(set(kept) | set(wanted), key=lambda k: tuple(map(str, k)))
    wrong = [k for k in keys if kept.get(k, 0) != wanted.get(k, 0)]
    out = []
    for key in wrong[:limit]:
        span, day, team, kind, code, bucket, since = key
        where = f"{SPAN_NAMES[span]}{day} {team} {kind} {code}".rstrip()
        if kind == "wait":
            where += f" bin {bucket}"
        elif code.endswith(":running"):
            where += f" due in hour {bucket}"
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
