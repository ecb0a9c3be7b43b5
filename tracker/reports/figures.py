"""The figures a cancer service is judged by, from a few queries over derived rows.

Each report runs a fixed number of SQL queries whatever the number of pathways, and
reads no event: the first episode's milestones from the pathway rows, the standards
from the pathway_clock rows, operations, complications and recurrences from the
pathway_fact rows, all written by the engine's derivation with every event.

The report over every pathway of the user's teams (no urgency, diagnosis or surgeon
filter) reads the counts kept on write (``report_day_count``, tracker.engine.daily)
instead: the rows of the few months, parts of months and days that tile its range, and
the two or three waits each median needs, whatever the number of pathways. Both ways
give the same figures (tests/test_report_counts.py).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from sqlalchemy import case, false, func, literal, or_, select, union_all

from tracker.engine import clocks, daily
from tracker.engine import steps as d
from tracker.engine.dictionary import (
    APPROACH,
    CLAVIEN_DINDO,
    PROCEDURES,
)
from tracker.engine.models import Pathway, PathwayClock, PathwayFact, ReportCount
from tracker.extensions import db
from tracker.users.models import User

# The clocks the reports count (the clock definitions say which): the national day
# standards first, then the emergency hour clocks.
STANDARDS = tuple(sorted((c for c in clocks.CLOCKS if c.standard), key=lambda c: c.unit != "days"))


@dataclass(frozen=True)
class Filters:
    start: date
    end: date  # inclusive
    urgency: str | None = None
    diagnosis_category: str | None = None
    lead_surgeon: str | None = None  # username
    # The teams whose pathways count (None: every team, for those who see them all).
    teams: tuple[str, ...] | None = None

    @property
    def by_day(self) -> bool:
        """Whether the day rows kept on write answer this report: they are kept per team,
        not per urgency, diagnosis or surgeon, so a report narrowed by those counts rows."""
        return not (self.urgency or self.diagnosis_category or self.lead_surgeon)

    def bounds(self, zone) -> tuple[datetime, datetime]:
        """The range as local days: from the start of ``start`` to the end of ``end``."""
        return (
            datetime.combine(self.start, time(0), tzinfo=zone),
            datetime.combine(self.end + timedelta(days=1), time(0), tzinfo=zone),
        )


@dataclass
class Report:
    filters: Filters
    referrals: int
    intervals: list[tuple[str, int, float | None, float | None]]  # label, n, median, p90
    # label, met, not met, pending, % met, national threshold %, threshold achieved
    standards: list[tuple[str, int, int, int, float | None, int | None, str]]
    # per national standard: (label, threshold, [(YYYY-MM, met, not met, % met)])
    trend: list[tuple[str, int | None, list]]
    states: list[tuple[str, int]]
    procedures: list[tuple[str, int]]
    approaches: list[tuple[str, int]]
    operations: int
    operated_pathways: int
    complicated_pathways: int
    clavien_dindo: list[tuple[str, int]]
    recurrences: int
    recurrence_pathways: int
    tables: dict = field(default_factory=dict)

    @property
    def complication_rate(self) -> float | None:
        if not self.operated_pathways:
            return None
        return 100 * self.complicated_pathways / self.operated_pathways


def _pathway_filters(f: Filters) -> list:
    # A pathway opened in error stays in the log but counts in no report.
    conditions = [Pathway.in_error.is_(False)]
    if f.urgency:
        conditions.append(Pathway.urgency == f.urgency)
    if f.diagnosis_category:
        conditions.append(Pathway.diagnosis_category == f.diagnosis_category)
    if f.lead_surgeon:
        surgeon = select(User.id).where(User.username == f.lead_surgeon).scalar_subquery()
        conditions.append(Pathway.lead_surgeon_id == surgeon)
    if f.teams is not None:
        conditions.append(Pathway.team.in_(f.teams))
    return conditions


def _cohort(f: Filters, zone) -> list:
    start, end = f.bounds(zone)
    return [
        Pathway.referral_received_at >= start,
        Pathway.referral_received_at < end,
        *_pathway_filters(f),
    ]


# The waits the reports show, each a derived column of the pathway row (days).
INTERVALS = (
    ("Referral to diagnosis (MDT decision)", Pathway.days_to_decision),
    ("Diagnosis to treatment", Pathway.days_decision_to_treatment),
    ("Referral to treatment", Pathway.days_to_treatment),
)


def intervals(f: Filters, zone) -> list[tuple[str, int, float | None, float | None]]:
    """Each wait's count, median and 90th percentile (nearest rank) over the cohort, ranked
    in SQL: one query, returning the two or three rows of each wait that matter."""
    ranked = []
    for i, (_, column) in enumerate(INTERVALS):
        inner = (
            select(
                literal(i).label("wait"),
                column.label("v"),
                func.row_number().over(order_by=column).label("rn"),
                func.count().over().label("n"),
            )
            .where(column.is_not(None), *_cohort(f, zone))
            .subquery()
        )
        n = inner.c.n
        # Integer division on both databases: the middle one or two, and ceil(0.9 n).
        ranked.append(
            select(inner.c.wait, inner.c.v, inner.c.rn, n).where(
                or_(
                    inner.c.rn == (n + 1) // 2,
                    inner.c.rn == (n + 2) // 2,
                    inner.c.rn == (9 * n + 9) // 10,
                )
            )
        )
    rows = db.session.execute(union_all(*ranked)).all()
    out = []
    for i, (label, _) in enumerate(INTERVALS):
        at = {row.rn: row.v for row in rows if row.wait == i}
        count = next((row.n for row in rows if row.wait == i), 0)
        if not count:
            out.append((label, 0, None, None))
            continue
        middle = (at[(count + 1) // 2] + at[(count + 2) // 2]) / 2
        out.append((label, count, round(middle, 1), round(at[(9 * count + 9) // 10], 1)))
    return out


def _decided_in(start: datetime, end: datetime, now: datetime):
    """When a clock counts for a range, and as what: a clock that stopped (met or missed)
    counts in the range its stop falls in; one that ended unstopped (the pathway closed
    after it was due) or is still running past its due time counts as not met in the range
    its due time falls in. The moment it is dated by, as SQL."""
    stopped = PathwayClock.stopped_at.is_not(None)
    return case(
        (stopped, PathwayClock.stopped_at),
        ((PathwayClock.status == "missed") | (PathwayClock.due_at < now), PathwayClock.due_at),
        else_=None,
    )


def _outcome(now: datetime):
    """met, not_met or pending, as SQL over a clock row."""
    return case(
        (PathwayClock.status == "met", "met"),
        ((PathwayClock.status == "missed") | (PathwayClock.due_at < now), "not_met"),
        else_="pending",
    )


def standards(f: Filters, zone, now: datetime) -> list:
    """Met and not met per reported clock, dated by the month the clock stopped (every
    episode's clocks), and the clocks still running and not yet due that started by the
    range's end; with the national threshold where there is one. One grouped query over
    the pathway_clock rows."""
    start, end = f.bounds(zone)
    dated = _decided_in(start, end, now)
    outcome = _outcome(now).label("outcome")
    in_range = (dated >= start) & (dated < end)
    pending = (PathwayClock.status == "running") & (PathwayClock.due_at >= now)
    rows = db.session.execute(
        select(PathwayClock.clock, outcome, func.count())
        .join(Pathway, Pathway.id == PathwayClock.pathway_id)
        .where(
            PathwayClock.clock.in_([c.code for c in STANDARDS]),
            in_range | (pending & (PathwayClock.started_at < end)),
            *_pathway_filters(f),
        )
        .group_by(PathwayClock.clock, outcome)
    )
    counts = Counter({(code, kind): n for code, kind, n in rows})
    out = []
    for clock in STANDARDS:
        met, not_met = counts[(clock.code, "met")], counts[(clock.code, "not_met")]
        share = round(100 * met / (met + not_met), 1) if met + not_met else None
        threshold = clock.threshold
        achieved = None if share is None or threshold is None else share >= threshold
        out.append(
            (
                clock.standard,
                met,
                not_met,
                counts[(clock.code, "pending")],
                share,
                threshold,
                {True: "yes", False: "no", None: "—"}[achieved],
            )
        )
    return out


def months(f: Filters, zone) -> list[tuple[str, datetime, datetime]]:
    """The local calendar months the range touches: (YYYY-MM, start, end)."""
    out = []
    first = f.start.replace(day=1)
    while first <= f.end:
        following = (first + timedelta(days=32)).replace(day=1)
        out.append(
            (
                f"{first:%Y-%m}",
                datetime.combine(first, time(0), tzinfo=zone),
                datetime.combine(following, time(0), tzinfo=zone),
            )
        )
        first = following
    return out


def monthly(f: Filters, zone, now: datetime) -> list[tuple[str, int | None, list]]:
    """Per national standard (those with a threshold), the share met in each month of the
    range, by the month the clock stopped: (standard, threshold, [(YYYY-MM, met, not met,
    share)]). One grouped query; months are bucketed in SQL by local month boundaries."""
    spans = months(f, zone)
    start, end = f.bounds(zone)
    dated = _decided_in(start, end, now)
    bucket = case(*((dated < upper, label) for label, _, upper in spans), else_=None).label("month")
    outcome = _outcome(now).label("outcome")
    national = [c for c in STANDARDS if c.threshold is not None]
    rows = db.session.execute(
        select(PathwayClock.clock, bucket, outcome, func.count())
        .join(Pathway, Pathway.id == PathwayClock.pathway_id)
        .where(
            PathwayClock.clock.in_([c.code for c in national]),
            dated >= start,
            dated < end,
            *_pathway_filters(f),
        )
        .group_by(PathwayClock.clock, bucket, outcome)
    )
    counts = Counter({(code, month, kind): n for code, month, kind, n in rows})
    out = []
    for clock in national:
        series = []
        for label, _, _ in spans:
            met, not_met = (
                counts[(clock.code, label, "met")],
                counts[(clock.code, label, "not_met")],
            )
            share = round(100 * met / (met + not_met), 1) if met + not_met else None
            series.append((label, met, not_met, share))
        out.append((clock.standard, clock.threshold, series))
    return out


def _in_range(f: Filters, zone) -> list:
    start, end = f.bounds(zone)
    return [PathwayFact.occurred_at >= start, PathwayFact.occurred_at < end]


def _facts(kind: str, *conditions):
    return (
        select(PathwayFact.code)
        .join(Pathway, Pathway.id == PathwayFact.pathway_id)
        .where(PathwayFact.kind == kind, *conditions)
    )


def _by_code(kind: str, *conditions) -> Counter:
    """code -> pathway_fact rows of ``kind``."""
    query = _facts(kind, *conditions).add_columns(func.count()).group_by(PathwayFact.code)
    return Counter(dict(db.session.execute(query).all()))


def _totals(kind: str, *conditions) -> tuple[int, int]:
    """(rows, pathways) of the pathway_fact rows of ``kind``."""
    query = _facts(kind, *conditions).with_only_columns(
        func.count(), func.count(PathwayFact.pathway_id.distinct())
    )
    return tuple(db.session.execute(query).one())


def _labelled(counter: Counter, codes) -> list[tuple[str, int]]:
    return [(label, counter.get(code, 0)) for code, label in codes]


def build(f: Filters, now: datetime, zone) -> Report:
    """The report: from the day rows kept on write when they can answer it
    (``tracker.engine.daily``), else from the derived rows of the pathways in the cohort.
    Both give the same figures."""
    return build_from_counts(f, now, zone) if f.by_day else build_from_rows(f, now, zone)


def build_from_rows(f: Filters, now: datetime, zone) -> Report:
    """The report from the pathway, clock and fact rows of the cohort: a few grouped
    queries, each reading every row of the range."""
    states = Counter(
        dict(
            db.session.execute(
                select(Pathway.state, func.count()).where(*_cohort(f, zone)).group_by(Pathway.state)
            ).all()
        )
    )
    filters = _pathway_filters(f)
    in_range = _in_range(f, zone)
    approaches = _by_code("operation", *in_range, *filters)
    operations, operated = _totals("operation", *in_range, *filters)
    procedures = _by_code("procedure", *in_range, *filters)
    operated_ids = (
        select(PathwayFact.pathway_id)
        .join(Pathway, Pathway.id == PathwayFact.pathway_id)
        .where(PathwayFact.kind == "operation", *in_range, *filters)
    )
    grades = _by_code("complication", PathwayFact.pathway_id.in_(operated_ids))
    _, complicated = _totals("complication", PathwayFact.pathway_id.in_(operated_ids))
    recurrences, recurrence_pathways = _totals("recurrence", *in_range, *filters)
    return Report(
        filters=f,
        referrals=sum(states.values()),
        intervals=intervals(f, zone),
        standards=standards(f, zone, now),
        trend=monthly(f, zone, now),
        states=[(d.STATE_LABELS[s], states.get(s, 0)) for s in d.STATES],
        procedures=_labelled(procedures, PROCEDURES),
        approaches=_labelled(approaches, APPROACH),
        operations=operations,
        operated_pathways=operated,
        complicated_pathways=complicated,
        clavien_dindo=_labelled(grades, CLAVIEN_DINDO),
        recurrences=recurrences,
        recurrence_pathways=recurrence_pathways,
    )


def tables(report: Report) -> dict[str, tuple[str, list[str], list[tuple]]]:
    """Every report table: name -> (title, header, rows). The page and the CSV share them."""
    r = report
    return {
        "referrals": (
            "Referrals",
            ["Measure", "Count"],
            [
                ("Referrals in the range", r.referrals),
                ("Recurrences suspected in the range", r.recurrences),
                ("Pathways with a recurrence in the range", r.recurrence_pathways),
            ],
        ),
        "intervals": (
            "Waiting times (days)",
            ["Interval", "Pathways", "Median", "90th percentile"],
            r.intervals,
        ),
        "standards": (
            "Waiting-time standards (clocks stopped in the range)",
            ["Standard", "Met", "Not met", "Pending", "Met (%)", "Threshold (%)", "Achieved"],
            r.standards,
        ),
        "trend": (
            "Share met per month, by the month the clock stopped (%)",
            ["Standard", "Threshold (%)", *(month for month, *_ in r.trend[0][2])]
            if r.trend
            else ["Standard", "Threshold (%)"],
            [
                (label, threshold, *(share for _, _, _, share in series))
                for label, threshold, series in r.trend
            ],
        ),
        "states": ("Pathways per state (referred in the range)", ["State", "Pathways"], r.states),
        "procedures": ("Operations by procedure", ["Procedure", "Operations"], r.procedures),
        "approaches": ("Operations by approach", ["Approach", "Operations"], r.approaches),
        "complications": (
            "Complications",
            ["Measure", "Value"],
            [
                ("Operations in the range", r.operations),
                ("Pathways operated on", r.operated_pathways),
                ("Of them with a complication", r.complicated_pathways),
                (
                    "Complication rate (%)",
                    None if r.complication_rate is None else round(r.complication_rate, 1),
                ),
            ],
        ),
        "clavien_dindo": (
            "Complications by Clavien-Dindo grade",
            ["Grade", "Complications"],
            r.clavien_dindo,
        ),
    }


def charts(report: Report) -> dict[str, tuple[str, list[tuple[str, float | None]], str]]:
    """What each table's chart plots: (title, (label, value) rows, unit)."""
    r = report
    return {
        "referrals": (
            "Referrals and recurrences",
            [("Referrals", r.referrals), ("Recurrences", r.recurrences)],
            "",
        ),
        "intervals": ("Median days", [(label, med) for label, _, med, _ in r.intervals], " d"),
        "standards": (
            "Share meeting each standard",
            [(label, share) for label, _, _, _, share, *_ in r.standards],
            "%",
        ),
        "states": ("Pathways per state", r.states, ""),
        "procedures": ("Operations by procedure", r.procedures, ""),
        "approaches": ("Operations by approach", r.approaches, ""),
        "complications": (
            "Operated pathways and complications",
            [
                ("Operated on", r.operated_pathways),
                ("With a complication", r.complicated_pathways),
            ],
            "",
        ),
        "clavien_dindo": ("Complications by grade", r.clavien_dindo, ""),
    }


# -- the same figures from the day rows kept on write (tracker.engine.daily) -----------


def _teams(f: Filters) -> list:
    return [ReportCount.team.in_(f.teams)] if f.teams is not None else []


def _spans(start: date, end: date):
    """The rows of the spans that tile the days ``start`` to ``end`` (none when the range
    is empty), as SQL: each span's first days in one list."""
    firsts: dict[int, list[date]] = {}
    for span, first in daily.tiles(start, end):
        firsts.setdefault(span, []).append(first)
    if not firsts:
        return false()
    return or_(
        *(
            (ReportCount.span == span) & ReportCount.day.in_(days)
            for span, days in sorted(firsts.items())
        )
    )


def _ranks(count: int) -> tuple[int, int, int]:
    """The ranks (from 1) of the median's middle one or two, and the 90th percentile's."""
    return (count + 1) // 2, (count + 2) // 2, (9 * count + 9) // 10


def _intervals_from(histograms: dict[int, Counter], f: Filters, zone) -> list:
    """Each wait's count, median and 90th percentile from its whole-day histogram: the
    histogram says which bin holds each rank and its place there; one query then reads
    those few waits from the pathway rows (an index of each wait), so the figures are
    exactly those of the ranking over every row."""
    wanted: dict[tuple[int, int], tuple[int, int]] = {}  # (wait, rank) -> (bin, offset)
    for i in range(len(INTERVALS)):
        bins = sorted(histograms.get(i, Counter()).items())
        count = sum(n for _, n in bins)
        for rank in set(_ranks(count)) if count else ():
            below = 0
            for bucket, n in bins:
                if rank <= below + n:
                    wanted[(i, rank)] = (bucket, rank - below - 1)
                    break
                below += n
    picks = []
    for (i, rank), (bucket, offset) in sorted(wanted.items()):
        column = INTERVALS[i][1]
        inner = (
            select(literal(i).label("wait"), literal(rank).label("rn"), column.label("v"))
            .where(column >= bucket, column < bucket + 1, *_cohort(f, zone))
            .order_by(column)
            .limit(1)
            .offset(offset)
            .subquery()
        )
        picks.append(select(inner.c.wait, inner.c.rn, inner.c.v))
    # One query whatever the data (an empty cohort asks for nothing).
    query = union_all(*picks) if picks else select(literal(0), literal(0), literal(0.0))
    at = {(w, rn): v for w, rn, v in db.session.execute(query).all()}
    out = []
    for i, (label, _) in enumerate(INTERVALS):
        count = sum(histograms.get(i, Counter()).values())
        if not count:
            out.append((label, 0, None, None))
            continue
        low, high, p90 = _ranks(count)
        middle = (at[(i, low)] + at[(i, high)]) / 2
        out.append((label, count, round(middle, 1), round(at[(i, p90)], 1)))
    return out


def _clock_outcomes(f: Filters, now: datetime, zone):
    """met, not met and pending per reported clock, and met and not met per clock and
    month, from the day rows; the running clocks due in this hour are read from their
    rows, as only they can be due before or after this instant."""
    today, hour = daily.due_hour(now, zone)
    running = ReportCount.code.like("%:running")
    by_day = ReportCount.span == daily.DAY
    due_today = by_day & running & (ReportCount.day == today)
    # Per clock outcome and span (not per start day: O(spans x clocks) rows): the decided
    # and the overdue in the range (the days before today in the spans that tile them:
    # none of their rows changes its meaning with the instant; today and after by day),
    # the running due today in an earlier hour (overdue) or a later one (pending), and the
    # running due on a later day; those pending count when they started by the range's end.
    phase = case(
        (due_today & (ReportCount.bucket < hour), "overdue"),
        (due_today, "pending"),
        else_="",
    ).label("phase")
    rows = db.session.execute(
        select(ReportCount.code, ReportCount.day, phase, func.sum(ReportCount.n))
        .where(
            ReportCount.kind == "clock",
            or_(
                _spans(f.start, min(f.end, today - timedelta(days=1))),
                by_day
                & (ReportCount.day >= max(f.start, today))
                & (ReportCount.day <= f.end)
                & ~running,
                due_today & (ReportCount.bucket < hour),
                due_today & (ReportCount.bucket > hour) & (ReportCount.since <= f.end),
                by_day & running & (ReportCount.day > today) & (ReportCount.since <= f.end),
            ),
            *_teams(f),
        )
        .group_by(ReportCount.span, ReportCount.code, ReportCount.day, phase)
    ).all()
    outcomes: Counter = Counter()  # (clock, met|not_met|pending) -> n
    by_month: Counter = Counter()  # (clock, YYYY-MM, met|not_met) -> n

    def decided(code: str, day: date, outcome: str, n: int) -> None:
        if f.start <= day <= f.end:
            outcomes[(code, outcome)] += n
            by_month[(code, f"{day:%Y-%m}", outcome)] += n

    for code_outcome, day, when, n in rows:
        code, outcome = code_outcome.rsplit(":", 1)
        if outcome != "running":
            decided(code, day, outcome, n)
        elif day < today or when == "overdue":  # due before this hour: not met
            decided(code, day, "not_met", n)
        else:  # not yet due, started by the end of the range: pending
            outcomes[(code, "pending")] += n
    start, end = daily.hour_bounds(today, hour, zone)
    _, range_end = f.bounds(zone)
    overdue = (PathwayClock.due_at < now).label("overdue")
    started = (PathwayClock.started_at < range_end).label("started")
    this_hour = db.session.execute(
        select(PathwayClock.clock, overdue, started, func.count())
        .join(Pathway, Pathway.id == PathwayClock.pathway_id)
        .where(
            PathwayClock.status == "running",
            PathwayClock.due_at >= start,
            PathwayClock.due_at < end,
            PathwayClock.clock.in_([c.code for c in STANDARDS]),
            Pathway.in_error.is_(False),
            *([Pathway.team.in_(f.teams)] if f.teams is not None else []),
        )
        .group_by(PathwayClock.clock, overdue, started)
    ).all()
    for code, is_overdue, has_started, n in this_hour:
        if is_overdue:
            decided(code, today, "not_met", n)
        elif has_started:
            outcomes[(code, "pending")] += n
    return outcomes, by_month


def build_from_counts(f: Filters, now: datetime, zone) -> Report:
    """The report from the kept counts: five queries over the rows of the spans that tile
    the range (``daily.tiles``), and the few waits the medians need, whatever the number
    of pathways."""
    in_range = db.session.execute(
        select(ReportCount.kind, ReportCount.code, ReportCount.bucket, func.sum(ReportCount.n))
        .where(
            ReportCount.kind.in_(("referral", "wait", "fact")),
            _spans(f.start, f.end),
            *_teams(f),
        )
        .group_by(ReportCount.kind, ReportCount.code, ReportCount.bucket)
    ).all()
    states: Counter = Counter()
    histograms: dict[int, Counter] = {}
    facts: dict[str, Counter] = {}
    for kind, code, bucket, n in in_range:
        if kind == "referral":
            states[code] += n
        elif kind == "wait":
            histograms.setdefault(int(code), Counter())[bucket] += n
        else:
            fact_kind, fact_code = code.split(":", 1)
            facts.setdefault(fact_kind, Counter())[fact_code] += n
    # Pathways counted once: by their first operation (or recurrence) in the range.
    firsts: Counter = Counter()
    grades: Counter = Counter()
    for kind, code, n in db.session.execute(
        select(ReportCount.kind, ReportCount.code, func.sum(ReportCount.n))
        .where(
            ReportCount.kind.in_(("first", "op_grade", "op_complicated")),
            ReportCount.since < f.start,
            _spans(f.start, f.end),
            *_teams(f),
        )
        .group_by(ReportCount.kind, ReportCount.code)
    ):
        if kind == "op_grade":
            grades[code] += n
        else:
            firsts[(kind, code)] += n
    outcomes, by_month = _clock_outcomes(f, now, zone)
    standard_rows = []
    for clock in STANDARDS:
        met, not_met = outcomes[(clock.code, "met")], outcomes[(clock.code, "not_met")]
        share = round(100 * met / (met + not_met), 1) if met + not_met else None
        threshold = clock.threshold
        achieved = None if share is None or threshold is None else share >= threshold
        standard_rows.append(
            (
                clock.standard,
                met,
                not_met,
                outcomes[(clock.code, "pending")],
                share,
                threshold,
                {True: "yes", False: "no", None: "—"}[achieved],
            )
        )
    trend = []
    for clock in (c for c in STANDARDS if c.threshold is not None):
        series = []
        for label, _, _ in months(f, zone):
            met = by_month[(clock.code, label, "met")]
            not_met = by_month[(clock.code, label, "not_met")]
            share = round(100 * met / (met + not_met), 1) if met + not_met else None
            series.append((label, met, not_met, share))
        trend.append((clock.standard, clock.threshold, series))
    operations = facts.get("operation", Counter())
    recurrences = facts.get("recurrence", Counter())
    return Report(
        filters=f,
        referrals=sum(states.values()),
        intervals=_intervals_from(histograms, f, zone),
        standards=standard_rows,
        trend=trend,
        states=[(d.STATE_LABELS[s], states.get(s, 0)) for s in d.STATES],
        procedures=_labelled(facts.get("procedure", Counter()), PROCEDURES),
        approaches=_labelled(operations, APPROACH),
        operations=sum(operations.values()),
        operated_pathways=firsts[("first", "operation")],
        complicated_pathways=firsts[("op_complicated", "")],
        clavien_dindo=_labelled(grades, CLAVIEN_DINDO),
        recurrences=sum(recurrences.values()),
        recurrence_pathways=firsts[("first", "recurrence")],
    )
