"""The figures a cancer service is judged by, from a few queries over derived rows.

Each report runs a fixed number of SQL queries whatever the number of pathways, and
reads no event: the first episode's milestones from the pathway rows, the standards
from the pathway_clock rows, operations, complications and recurrences from the
pathway_fact rows, all written by the engine's derivation with every event.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from statistics import median

from sqlalchemy import func, select

from tracker.engine import clocks, tags
from tracker.engine import steps as d
from tracker.engine.dictionary import (
    APPROACH,
    CLAVIEN_DINDO,
    PROCEDURES,
)
from tracker.engine.models import Pathway, PathwayClock, PathwayFact
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

    def bounds(self, zone) -> tuple[datetime, datetime]:
        """The range as local days: from the start of ``start`` to the end of ``end``."""
        return (
            datetime.combine(self.start, time(0), tzinfo=zone),
            datetime.combine(self.end + timedelta(days=1), time(0), tzinfo=zone),
        )


@dataclass
class Cohort:
    pathway_id: int
    urgency: str
    referral: datetime
    imaging: datetime | None
    decision: datetime | None
    treatment: datetime | None
    closed_at: datetime | None


@dataclass
class Report:
    filters: Filters
    referrals: int
    intervals: list[tuple[str, int, float | None, float | None]]  # label, n, median, p90
    standards: list[tuple[str, int, int, int, float | None]]  # label, met, not met, pending, %
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
    conditions = []
    if f.urgency:
        conditions.append(Pathway.urgency == f.urgency)
    if f.diagnosis_category:
        conditions.append(Pathway.diagnosis_category == f.diagnosis_category)
    if f.lead_surgeon:
        surgeon = select(User.id).where(User.username == f.lead_surgeon).scalar_subquery()
        conditions.append(Pathway.lead_surgeon_id == surgeon)
    return conditions


def _cohort(f: Filters, zone) -> list:
    start, end = f.bounds(zone)
    return [
        Pathway.referral_received_at >= start,
        Pathway.referral_received_at < end,
        *_pathway_filters(f),
    ]


def cohort(f: Filters, zone) -> list[Cohort]:
    """Pathways referred in the range, each with its first episode's milestones, as the
    derivation keeps them on the pathway row (one query, no events read)."""
    rows = db.session.execute(
        select(
            Pathway.id,
            Pathway.urgency,
            Pathway.referral_received_at,
            Pathway.first_imaging_at,
            Pathway.first_decision_at,
            Pathway.first_treatment_at,
            Pathway.closed_at,
        ).where(*_cohort(f, zone))
    ).all()
    return [Cohort(*row) for row in rows]


def _days(a: datetime | None, b: datetime | None) -> float | None:
    if a is None or b is None:
        return None
    return (b - a).total_seconds() / 86400


def percentile(values: list[float], share: float) -> float | None:
    """Nearest-rank percentile (the value at rank ceil(share x n))."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def intervals(rows: list[Cohort]) -> list[tuple[str, int, float | None, float | None]]:
    out = []
    for label, pick in (
        ("Referral to diagnosis (MDT decision)", lambda c: _days(c.referral, c.decision)),
        ("Diagnosis to treatment", lambda c: _days(c.decision, c.treatment)),
        ("Referral to treatment", lambda c: _days(c.referral, c.treatment)),
    ):
        values = [v for v in map(pick, rows) if v is not None]
        out.append(
            (
                label,
                len(values),
                round(median(values), 1) if values else None,
                None if not values else round(percentile(values, 0.9), 1),
            )
        )
    return out


def standards(f: Filters, zone, now: datetime) -> list:
    """Met, not met and pending per reported clock, for the first episode of the pathways
    referred in the range: one grouped query over the pathway_clock rows."""
    counts = Counter()
    overdue = (PathwayClock.due_at < now).label("overdue")
    rows = db.session.execute(
        select(PathwayClock.clock, PathwayClock.status, overdue, func.count())
        .join(Pathway, Pathway.id == PathwayClock.pathway_id)
        .where(
            PathwayClock.episode == 0,
            PathwayClock.clock.in_([c.code for c in STANDARDS]),
            *_cohort(f, zone),
        )
        .group_by(PathwayClock.clock, PathwayClock.status, overdue)
    )
    for code, status, overdue, n in rows:
        if status == "met":
            counts[(code, "met")] += n
        elif status == "missed" or overdue:  # a running clock past its due time: breached
            counts[(code, "not_met")] += n
        else:
            counts[(code, "pending")] += n
    out = []
    for clock in STANDARDS:
        met, not_met = counts[(clock.code, "met")], counts[(clock.code, "not_met")]
        share = round(100 * met / (met + not_met), 1) if met + not_met else None
        out.append((clock.standard, met, not_met, counts[(clock.code, "pending")], share))
    return out


def _facts(f: Filters, zone, kind: str, *, in_range: bool = True, pathway_ids=None):
    """The pathway_fact rows of ``kind`` (a registry tag: operations, complications,
    recurrences) of the pathways filtered; their data has its amendments applied."""
    start, end = f.bounds(zone)
    query = (
        select(PathwayFact)
        .join(Pathway, Pathway.id == PathwayFact.pathway_id)
        .where(PathwayFact.kind == kind, *_pathway_filters(f))
    )
    if in_range:
        query = query.where(PathwayFact.occurred_at >= start, PathwayFact.occurred_at < end)
    if pathway_ids is not None:
        query = query.where(PathwayFact.pathway_id.in_(pathway_ids))
    return list(db.session.scalars(query))


def _labelled(counter: Counter, codes) -> list[tuple[str, int]]:
    return [(label, counter.get(code, 0)) for code, label in codes]


def build(f: Filters, now: datetime, zone) -> Report:
    rows = cohort(f, zone)
    start, end = f.bounds(zone)
    states = Counter(
        dict(
            db.session.execute(
                select(Pathway.state, func.count())
                .where(
                    Pathway.referral_received_at >= start,
                    Pathway.referral_received_at < end,
                    *_pathway_filters(f),
                )
                .group_by(Pathway.state)
            ).all()
        )
    )
    surgeries = _facts(f, zone, tags.OPERATION)
    procedures = Counter(p for s in surgeries for p in s.data.get("procedures", []))
    approaches = Counter(s.data.get("approach") for s in surgeries)
    operated = {s.pathway_id for s in surgeries}
    complications = (
        _facts(f, zone, tags.COMPLICATION, in_range=False, pathway_ids=list(operated))
        if operated
        else []
    )
    recurrences = _facts(f, zone, tags.NEW_EPISODE)
    return Report(
        filters=f,
        referrals=len(rows),
        intervals=intervals(rows),
        standards=standards(f, zone, now),
        states=[(d.STATE_LABELS[s], states.get(s, 0)) for s in d.STATES],
        procedures=_labelled(procedures, PROCEDURES),
        approaches=_labelled(approaches, APPROACH),
        operations=len(surgeries),
        operated_pathways=len(operated),
        complicated_pathways=len({e.pathway_id for e in complications}),
        clavien_dindo=_labelled(
            Counter(c.data.get("clavien_dindo") for c in complications), CLAVIEN_DINDO
        ),
        recurrences=len(recurrences),
        recurrence_pathways=len({e.pathway_id for e in recurrences}),
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
            "Waiting-time standards",
            ["Standard", "Met", "Not met", "Pending", "Met (%)"],
            r.standards,
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
            [(label, share) for label, _, _, _, share in r.standards],
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
