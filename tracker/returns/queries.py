"""The patient tracking list (PTL) and the monthly Cancer Waiting Times return, in SQL.

Both read the ``pathway_clock`` rows that the engine's derivation writes with every event,
never the event log, but for the delay reason typed on the step that stopped a missed
clock. ``docs/returns.md`` maps their columns to the national data items.

**The day count** of the PTL is defined once, in ``day_count``: calendar days from the
local date the 62-day clock started to today's local date, less the days it was paused.
Its band is ``band``. The page, its CSV and the API all call these two.

The counts per band, the band filter and the order are SQL on the clock row's ``due_at``.
The engine sets it to the end of the local day start + limit + pause, so the local day it
falls due is D = start + limit + pause + 1, and the day count is today + limit + 1 - D.
A count of at most k is therefore a due time at or after the start of the local day
today + limit + 1 - k: a comparison of two instants, exact on both databases, with no time
zone arithmetic in SQL. ``tests/test_returns.py`` checks that the two agree on every
demo pathway.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import aliased, defaultload

from tracker.core.clock import local_date
from tracker.engine import clocks
from tracker.engine.history import apply_changes
from tracker.engine.models import Event, Pathway, PathwayClock
from tracker.extensions import db
from tracker.patients.models import Patient
from tracker.users.models import User

RTT = "rtt_62"
# The standards of the return: the clocks with a national operational threshold.
STANDARDS: tuple[clocks.Clock, ...] = tuple(c for c in clocks.CLOCKS if c.threshold is not None)
STANDARD_CODES = tuple(c.code for c in STANDARDS)
NOT_RECORDED = "not recorded"
CSV_LIMIT = 200_000


# -- the day count and its bands --------------------------------------------------------------


@dataclass(frozen=True)
class Band:
    code: str
    label: str
    low: int | None  # the smallest day count in the band (None: any below ``high``)
    high: int | None  # the largest (None: any above ``low``)

    def holds(self, days: int) -> bool:
        return (self.low is None or days >= self.low) and (self.high is None or days <= self.high)


BANDS = (
    Band("0-28", "0-28 days", None, 28),
    Band("29-62", "29-62 days", 29, 62),
    Band("63-104", "63-104 days", 63, 104),
    Band("over_104", "Over 104 days", 105, None),
)
BY_BAND = {b.code: b for b in BANDS}


def day_count(started_at: datetime, adjustment_days: int | None, today: date) -> int:
    """Calendar days from the local date the clock started to ``today`` (a local date),
    less the days it was paused: the referral's day is day 0. Below 0 only while a clock
    restarted on a rebooked appointment, or paused to a date, waits for that date."""
    return (today - local_date(started_at)).days - (adjustment_days or 0)


def band(days: int) -> Band:
    """The band of a day count: 0-28 (and below), 29-62, 63-104, over 104."""
    return next(b for b in BANDS if b.holds(days))


def _at_most(days: int, today: date, limit: int):
    """SQL: the running clock's day count is at most ``days`` (see the module's words)."""
    return PathwayClock.due_at >= clocks.start_of_day(today + timedelta(days=limit + 1 - days))


def _in_band(b: Band, today: date, limit: int):
    conditions = []
    if b.high is not None:
        conditions.append(_at_most(b.high, today, limit))
    if b.low is not None:
        conditions.append(~_at_most(b.low - 1, today, limit))
    return and_(*conditions)


# -- the patient tracking list ----------------------------------------------------------------

PTL_COLUMNS = (
    "pathway_id",
    "mrn",
    "nhs_number",
    "family_name",
    "given_name",
    "priority",
    "state",
    "clock_start",
    "day_count",
    "band",
    "adjustment_days",
    "rtt_62_due_on",
    "next_target",
    "next_target_due_at",
    "next_target_due_on",
    "next_target_status",
    "lead_surgeon",
    "coordinator",
    "tracking_note",
    "tracking_note_at",
)


@dataclass(frozen=True)
class PtlFilters:
    band: str | None = None
    lead_surgeon: str | None = None  # a username
    lead_surgeon_id: int | None = None
    # The pathways the reader may see (tracker.teams.scope), as an SQL condition.
    visible: Any = field(default=None, compare=False)


def ptl_filters(
    band_code: str | None, surgeon: str | None
) -> tuple[PtlFilters | None, dict[str, list[str]]]:
    """The PTL's filters from their query values, or what is wrong with them, by name."""
    errors: dict[str, list[str]] = {}
    band_code = (band_code or "").strip() or None
    if band_code is not None and band_code not in BY_BAND:
        errors["band"] = [f"The band must be one of: {', '.join(BY_BAND)}."]
    surgeon = (surgeon or "").strip() or None
    surgeon_id = None
    if surgeon is not None:
        if len(surgeon) <= 64:
            surgeon_id = db.session.scalar(select(User.id).where(User.username == surgeon))
        if surgeon_id is None:
            errors["lead_surgeon"] = [
                f"No user has the username '{surgeon[:40]}'; choose a lead surgeon from the list."
            ]
    if errors:
        return None, errors
    return PtlFilters(band_code, surgeon, surgeon_id), {}


@dataclass(frozen=True)
class PtlRow:
    pathway: Pathway
    clock: PathwayClock  # its running 62-day clock
    day_count: int
    band: Band
    next_target_status: str | None  # the live status of the pathway's next clock due

    def record(self) -> dict:
        """The row by column (PTL_COLUMNS), as the CSV and the API give it."""
        p, c = self.pathway, self.clock
        return {
            "pathway_id": p.id,
            "mrn": p.patient.mrn,
            "nhs_number": p.patient.nhs_number,
            "family_name": p.patient.family_name,
            "given_name": p.patient.given_name,
            "priority": c.priority,
            "state": p.state,
            "clock_start": local_date(c.started_at),
            "day_count": self.day_count,
            "band": self.band.code,
            "adjustment_days": c.adjustment_days,
            "rtt_62_due_on": clocks.due_day(RTT, c.due_at),
            "next_target": p.next_target,
            "next_target_due_at": p.next_target_due_at,
            "next_target_due_on": clocks.due_day(p.next_target, p.next_target_due_at)
            if p.next_target
            else None,
            "next_target_status": self.next_target_status,
            "lead_surgeon": p.lead_surgeon.username if p.lead_surgeon else None,
            "coordinator": p.coordinator.username if p.coordinator else None,
            "tracking_note": p.tracking_note,
            "tracking_note_at": p.tracking_note_at,
        }


@dataclass(frozen=True)
class Ptl:
    today: date  # the local date the day counts are counted to
    filters: PtlFilters
    counts: dict[str, int]  # band code -> pathways (the surgeon filter applied, not the band)
    total: int  # the pathways matching every filter
    rows: list[PtlRow]


def _ptl_conditions(f: PtlFilters) -> list:
    conditions = [
        PathwayClock.clock == RTT,
        PathwayClock.status == "running",
        Pathway.closed_at.is_(None),
        # A pathway opened in error has no clock rows; said again, for the reader.
        Pathway.in_error.is_(False),
    ]
    if f.lead_surgeon_id is not None:
        conditions.append(Pathway.lead_surgeon_id == f.lead_surgeon_id)
    if f.visible is not None:
        conditions.append(f.visible)
    return conditions


def band_counts(f: PtlFilters, today: date, limit: int) -> dict[str, int]:
    """Open pathways per band, in one query."""
    row = db.session.execute(
        select(*(func.count(case((_in_band(b, today, limit), 1))) for b in BANDS))
        .select_from(PathwayClock)
        .join(Pathway, Pathway.id == PathwayClock.pathway_id)
        .where(*_ptl_conditions(f))
    ).one()
    return {b.code: n for b, n in zip(BANDS, row, strict=True)}


def ptl(f: PtlFilters, now: datetime, page: int = 1, size: int | None = None) -> Ptl:
    """Every open pathway with a running 62-day clock (its current episode's: an earlier
    episode's clock ends when the next begins), longest wait first; a page of ``size``
    rows, or every row (up to CSV_LIMIT) without one. Two queries."""
    today = local_date(now)
    limit = clocks.rules().limit(RTT)
    counts = band_counts(f, today, limit)
    query = (
        select(PathwayClock, Pathway)
        .join(Pathway, Pathway.id == PathwayClock.pathway_id)
        .where(*_ptl_conditions(f))
        # The due time orders the day counts (the longest wait falls due first).
        .order_by(PathwayClock.due_at, Pathway.id)
        .options(defaultload(Pathway.patient).lazyload(Patient.pathways))
    )
    if f.band is not None:
        query = query.where(_in_band(BY_BAND[f.band], today, limit))
    # A page of ``size`` rows; every row (up to the CSV's limit) without one.
    query = query.limit(size).offset((page - 1) * size) if size else query.limit(CSV_LIMIT)
    rows = []
    for clock, pathway in db.session.execute(query):
        days = day_count(clock.started_at, clock.adjustment_days, today)
        status = clocks.status_at(pathway.next_target_due_at, pathway.next_target_warn_at, now)
        rows.append(PtlRow(pathway, clock, days, band(days), status))
    total = counts[f.band] if f.band is not None else sum(counts.values())
    return Ptl(today, f, counts, total, rows)


# -- the monthly return -----------------------------------------------------------------------

RETURN_COLUMNS = (
    "standard",
    "pathway_id",
    "nhs_number",
    "priority",
    "clock_start",
    "adjustment_days",
    "clock_stop",
    "wait_days",
    "met",
    "delay_reason",
)
_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")


def previous_month(today: date) -> date:
    """The first day of the month before ``today``'s."""
    return (today.replace(day=1) - timedelta(days=1)).replace(day=1)


def next_month(first: date) -> date:
    return (first + timedelta(days=32)).replace(day=1)


def parse_month(raw: str | None, today: date) -> tuple[date | None, str | None]:
    """(the first day of the month ``raw`` names, None), or (None, what is wrong with it)."""
    example = previous_month(today).strftime("%Y-%m")
    raw = (raw or "").strip()
    if not raw:
        return None, f"Give the month of the return as YYYY-MM, for example month={example}."
    match = _MONTH.fullmatch(raw)
    if match:
        year, month = int(match.group(1)), int(match.group(2))
        if 1 <= month <= 12 and 1900 <= year <= 2999:
            return date(year, month, 1), None
    return None, f"The month '{raw[:20]}' is not a month: use YYYY-MM, for example {example}."


@dataclass(frozen=True)
class ReturnRow:
    standard: str  # the clock's code
    pathway_id: int
    episode: int
    nhs_number: str | None
    priority: str | None
    started_at: datetime
    stopped_at: datetime
    adjustment_days: int
    wait_days: int
    met: bool
    delay_reason: str | None  # a missed clock's: the stopping step's breach_reason

    @property
    def start_date(self) -> date:
        return local_date(self.started_at)

    @property
    def stop_date(self) -> date:
        return local_date(self.stopped_at)

    def record(self) -> dict:
        """The row by column (RETURN_COLUMNS), as the CSV and the API give it."""
        return {
            "standard": self.standard,
            "pathway_id": self.pathway_id,
            "nhs_number": self.nhs_number,
            "priority": self.priority,
            "clock_start": self.start_date,
            "adjustment_days": self.adjustment_days,
            "clock_stop": self.stop_date,
            "wait_days": self.wait_days,
            "met": self.met,
            "delay_reason": self.delay_reason,
        }


@dataclass(frozen=True)
class StandardResult:
    clock: clocks.Clock
    count: int
    met: int

    @property
    def missed(self) -> int:
        return self.count - self.met

    @property
    def performance(self) -> float | None:
        """Met as a share of the clocks stopped, in per cent (one decimal)."""
        return round(100 * self.met / self.count, 1) if self.count else None

    @property
    def achieved(self) -> bool | None:
        """Whether the national threshold was achieved; None with no clock stopped."""
        if not self.count:
            return None
        return 100 * self.met >= self.clock.threshold * self.count


@dataclass(frozen=True)
class CwtReturn:
    month: date  # its first day
    rows: list[ReturnRow]
    standards: list[StandardResult]


def _delay_reasons(stop_data: dict[int, dict]) -> dict[int, str]:
    """The breach_reason of each stopping step (event id -> data), its amendments applied:
    one query (run even with no step, so the page's queries are a fixed number)."""
    data = dict(stop_data)
    amendments = db.session.execute(
        select(Event.amends_event_id, Event.data)
        .where(Event.amends_event_id.in_(list(data)))
        .order_by(Event.seq)
    )
    for target, amendment in amendments:
        data[target] = apply_changes(data[target], (amendment or {}).get("changes") or {})
    return {
        event_id: str(values.get("breach_reason") or "").strip() or NOT_RECORDED
        for event_id, values in data.items()
    }


def cwt_return(month: date, visible=None) -> CwtReturn:
    """One row per clock of a national standard that stopped (met or missed) in ``month``,
    by the local date of its stop, of the pathways ``visible`` admits (an SQL condition;
    None: all); two queries."""
    start, end = clocks.start_of_day(month), clocks.start_of_day(next_month(month))
    stop = aliased(Event)
    order = case({code: i for i, code in enumerate(STANDARD_CODES)}, value=PathwayClock.clock)
    found = db.session.execute(
        select(PathwayClock, Patient.nhs_number, stop.id, stop.data)
        .join(Pathway, Pathway.id == PathwayClock.pathway_id)
        .join(Patient, Patient.id == Pathway.patient_id)
        .outerjoin(
            stop,
            and_(
                stop.pathway_id == PathwayClock.pathway_id,
                stop.seq == PathwayClock.stop_seq,
                PathwayClock.status == "missed",
            ),
        )
        .where(
            PathwayClock.clock.in_(STANDARD_CODES),
            PathwayClock.status.in_(("met", "missed")),
            PathwayClock.stopped_at >= start,
            PathwayClock.stopped_at < end,
            Pathway.in_error.is_(False),
            *([visible] if visible is not None else []),
        )
        .order_by(order, PathwayClock.stopped_at, PathwayClock.pathway_id, PathwayClock.id)
    ).all()
    reasons = _delay_reasons(
        {event_id: data or {} for *_, event_id, data in found if event_id is not None}
    )
    rows = []
    for clock, nhs_number, event_id, _ in found:
        met = clock.status == "met"
        wait = clock.wait
        if wait is None:
            wait = day_count(clock.started_at, clock.adjustment_days, local_date(clock.stopped_at))
        rows.append(
            ReturnRow(
                clock.clock,
                clock.pathway_id,
                clock.episode,
                nhs_number,
                clock.priority,
                clock.started_at,
                clock.stopped_at,
                clock.adjustment_days,
                round(wait),
                met,
                None if met else reasons.get(event_id, NOT_RECORDED),
            )
        )
    standards = [
        StandardResult(
            c,
            sum(1 for r in rows if r.standard == c.code),
            sum(1 for r in rows if r.standard == c.code and r.met),
        )
        for c in STANDARDS
    ]
    return CwtReturn(month, rows, standards)
