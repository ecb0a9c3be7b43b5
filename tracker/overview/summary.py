"""What a surgeon reads first: phases, milestones, trends, key facts, review status.

Everything is computed from the pathway's history (corrections applied, voided
steps ignored), so the overview and the timeline below it always agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from tracker.engine import consistency, tags
from tracker.engine import steps as d
from tracker.engine.dictionary import (
    APPROACH,
    CLAVIEN_DINDO,
    COMPLICATION,
    LESION_FINDING,
    PROCEDURES,
    describe,
)
from tracker.engine.fields import Choice, MultiChoice, expand_levels
from tracker.engine.history import History, Step
from tracker.engine.lesions import Lesion, radiotherapy
from tracker.engine.scores import MIRELS, SINS, TOKUHASHI, mirels_recommendation


@dataclass(frozen=True)
class Phase:
    state: str
    start: datetime
    end: datetime
    current: bool

    @property
    def days(self) -> float:
        return (self.end - self.start).total_seconds() / 86400


def phases(history: History, now: datetime, closed_at: datetime | None) -> list[Phase]:
    """Time in each state, in order; the current phase runs to now (or to the closing)."""
    changes = [s for s in history.counting() if s.changes_state or tags.OPENS in s.tags]
    out = []
    for i, step in enumerate(changes):
        last = i == len(changes) - 1
        if step.to_state in d.FINAL_STATES:
            break
        end = changes[i + 1].occurred_at if not last else (closed_at or now)
        out.append(Phase(step.to_state, step.occurred_at, end, current=last))
    return out


@dataclass(frozen=True)
class Milestone:
    label: str
    at: datetime | None
    days_since_referral: int | None  # since the start of its episode
    episode: int = 0


def episode_words(episode: int) -> str:
    return "first episode" if episode == 0 else f"recurrence {episode}"


MILESTONES = (
    ("First imaging reported", tags.IMAGING_REPORTED),
    ("Histology", tags.BIOPSY_RESULT),
    ("MDT decision", tags.MDT_DECISION),
    ("Operation", tags.OPERATION),
    ("Rehabilitation started", tags.REHABILITATION_STARTED),
    ("Oncology treatment started", tags.ONCOLOGY_STARTED),
)


def milestones(history: History, referral: datetime) -> list[Milestone]:
    """The first episode's milestones (each one, reached or not), then each recurrence's
    that were reached, counted in days from the start of their own episode."""
    starts = [(0, referral, "Referral")] + [
        (s.seq, s.occurred_at, f"Recurrence {n} suspected")
        for n, s in enumerate(history.tagged(tags.NEW_EPISODE), start=1)
    ]
    out = []
    for episode, (since, start, words) in enumerate(starts):
        until = starts[episode + 1][0] if episode + 1 < len(starts) else None
        out.append(Milestone(words, start, 0, episode))
        for label, tag in MILESTONES:
            step = history.first_tagged(tag, since=since, until=until)
            at = step.occurred_at if step else None
            if episode and at is None:
                continue
            days = (at - start).days if at else None
            shown = f"Recurrence {episode}: {label}" if episode else label
            out.append(Milestone(shown, at, days, episode))
    return out


# Trend measures: data key, label, lowest and highest value on the axis, tick labels.
ASIA_SCALE = {"A": 0, "B": 1, "C": 2, "D": 3, "E": 4}
TRENDS = (
    ("asia_grade", "ASIA grade", 0, 4, {0: "A", 1: "B", 2: "C", 3: "D", 4: "E"}),
    ("pain_nrs", "Pain (NRS)", 0, 10, {0: "0", 5: "5", 10: "10"}),
    ("ecog", "ECOG", 0, 4, {0: "0", 2: "2", 4: "4"}),
    ("karnofsky", "Karnofsky", 0, 100, {0: "0", 50: "50", 100: "100"}),
)


@dataclass
class Series:
    key: str
    label: str
    low: int
    high: int
    ticks: dict[int, str]
    points: list[tuple[datetime, float, str, str]] = field(
        default_factory=list
    )  # at, y, shown, from


def trends(history: History) -> list[Series]:
    out = []
    for key, label, low, high, ticks in TRENDS:
        series = Series(key, label, low, high, ticks)
        for step in history.counting():
            if key not in step.data:
                continue
            raw = step.data[key]
            value = ASIA_SCALE[raw] if key == "asia_grade" else float(raw)
            series.points.append((step.occurred_at, value, str(raw), d.label(step.trigger)))
        out.append(series)
    return out


def operations(history: History) -> list[Step]:
    return history.tagged(tags.OPERATION)


def journey_marks(history: History) -> list[tuple[datetime, str, str, str]]:
    """What the trend charts mark: (when, kind, short label, words) of each operation,
    radiotherapy course and MDT decision."""
    out = []
    for step in operations(history):
        out.append(
            (
                step.occurred_at,
                "operation",
                "Op",
                f"Operation {step.occurred_at:%d %b %Y}: levels {step.data.get('levels', '')}",
            )
        )
    for step in radiotherapy(history):
        where = step.data.get("levels") or step.data.get("bone") or ""
        dose = f" {step.data['dose_gy']:g} Gy" if step.data.get("dose_gy") is not None else ""
        out.append(
            (
                step.occurred_at,
                "radiotherapy",
                "RT",
                f"Radiotherapy {step.occurred_at:%d %b %Y}: {where}{dose}".rstrip(": "),
            )
        )
    for step in history.mdt_outcomes():
        out.append(
            (
                step.occurred_at,
                "mdt",
                "MDT",
                f"{d.label(step.trigger)}, {step.occurred_at:%d %b %Y}",
            )
        )
    return out


_PROCEDURES = MultiChoice("procedures", "Procedures", choices=PROCEDURES)
_APPROACH = Choice("approach", "Approach", choices=APPROACH)
_COMPLICATION = Choice("complication", "Complication", choices=COMPLICATION)
_CLAVIEN = Choice("clavien_dindo", "Clavien-Dindo", choices=CLAVIEN_DINDO)


@dataclass
class Facts:
    histology: str | None
    sins: list[str]  # the latest of each lesion, naming it and its day, newest first
    tokuhashi: str | None
    bilsky: list[str]  # as SINS
    asia: str | None
    operations: list[tuple[datetime, str]]
    complications: list[tuple[datetime, str, str]]
    mirels: list[str] = field(default_factory=list)  # as SINS, for long-bone lesions


def _sins_words(total) -> str:
    return f"{total} · {SINS.band(total)[1]}"


def _mirels_words(total) -> str:
    return f"{total} · {MIRELS.band(total)[1]}"


def _operations_on(history: History, lesion: Lesion) -> list[Step]:
    """The operations that reached a lesion: naming it, or operating or instrumenting any
    of its levels."""
    ops = operations(history)
    by_seq = {s.seq for s in ops}
    named = {link.seq for link in lesion.links if link.seq in by_seq}
    covered = set(_levels(lesion.levels)) if lesion.levels else set()
    out = []
    for step in ops:
        reached = set(_levels(step.data.get("levels"))) | set(
            _levels(step.data.get("instrumented_levels"))
        )
        if step.seq in named or covered & reached:
            out.append(step)
    return out


def _levels(value: str | None) -> list[str]:
    if not value:
        return []
    try:
        return expand_levels(value)
    except ValueError:  # an operation's levels as free text, from before they were checked
        return []


def _against_operations(at: datetime, ops: list[Step]) -> str:
    """When a score was given, against the operations on its lesion: "before fixation",
    "after fixation on 13 Jan 2026"."""
    if not ops:
        return ""

    def what(step: Step) -> str:
        fixed = "stabilisation_fusion" in step.data.get("procedures", ())
        return "fixation" if fixed else "surgery"

    before = [s for s in ops if s.occurred_at > at]
    after = [s for s in ops if s.occurred_at <= at]
    if after:
        last = after[-1]
        return f", after {what(last)} on {last.occurred_at:%d %b %Y}"
    return f", before {what(before[0])}"


def per_lesion(history: History, lesions: list[Lesion], key: str, words=str) -> list[str]:
    """The latest ``key`` of each lesion, naming the lesion, the day it was recorded for,
    when that was against the operations on the lesion, and its episode after a recurrence;
    the newest first: "14 · Unstable at T8, 12 Jun 2026, before fixation"."""
    recurred = bool(history.tagged(tags.NEW_EPISODE))
    found = [(r, lesion) for lesion in lesions if (r := lesion.latest(key)) is not None]
    found.sort(key=lambda pair: (pair[0].at, pair[0].seq), reverse=True)
    parts = []
    for reading, lesion in found:
        episode = history.episode_of(history.by_seq[reading.seq])
        where = f" ({episode_words(episode)})" if recurred else ""
        context = _against_operations(reading.at, _operations_on(history, lesion))
        parts.append(
            f"{words(reading.get(key))} {lesion.where}, {reading.at:%d %b %Y}{context}{where}"
        )
    return parts


@dataclass(frozen=True)
class LesionRow:
    """One reading of a lesion's table: the day, the step, its finding and scores in words."""

    at: datetime
    source: str
    finding: str
    sins: str
    bilsky: str
    mirels: str


@dataclass(frozen=True)
class LesionTable:
    lesion: Lesion
    finding: str  # the latest, in words
    latest: str  # the latest scores in words ("SINS 10 · Potentially unstable; Bilsky 2")
    recommendation: str | None  # of the latest Mirels
    treated: list[tuple[datetime, str]]  # the steps that name it (operations, radiotherapy...)
    rows: list[LesionRow]


def lesion_tables(history: History, lesions: list[Lesion] | None = None) -> list[LesionTable]:
    """Per lesion, its findings and scores with their dates, the latest of each, and the
    steps that concern it: the overview's small table per lesion."""
    findings = dict(LESION_FINDING)
    out = []
    for lesion in history.lesions() if lesions is None else lesions:
        rows = [
            LesionRow(
                r.at,
                r.source,
                findings.get(r.get("finding"), "") if r.get("finding") else "",
                _sins_words(r.get("sins_total")) if r.get("sins_total") is not None else "",
                r.get("bilsky_grade") or "",
                _mirels_words(r.get("mirels_total")) if r.get("mirels_total") is not None else "",
            )
            for r in sorted(lesion.readings, key=lambda r: (r.at, r.seq))
        ]
        latest = []
        for key, label, words in (
            ("sins_total", "SINS", _sins_words),
            ("bilsky_grade", "Bilsky", str),
            ("mirels_total", "Mirels", _mirels_words),
        ):
            if (reading := lesion.latest(key)) is not None:
                latest.append(f"{label} {words(reading.get(key))} ({reading.at:%d %b %Y})")
        mirels = lesion.latest("mirels_total")
        out.append(
            LesionTable(
                lesion,
                findings.get(lesion.finding, "not charted") if lesion.finding else "not charted",
                "; ".join(latest) or "not scored",
                mirels_recommendation(mirels.get("mirels_total")) if mirels else None,
                [(link.at, link.source) for link in lesion.links],
                rows,
            )
        )
    return out


def facts(history: History) -> Facts:
    """The latest of each fact, each with the day it was recorded for and, once there has
    been a recurrence, the episode it belongs to; a lesion's scores (SINS, Bilsky, Mirels)
    the latest of each lesion, naming it."""
    recurred = bool(history.tagged(tags.NEW_EPISODE))

    def dated(step: Step | None, words: str | None) -> str | None:
        if step is None or words is None:
            return None
        where = f", {episode_words(history.episode_of(step))}" if recurred else ""
        return f"{words} ({step.occurred_at:%d %b %Y}{where})"

    def latest(key: str, words=str) -> str | None:
        step = history.latest_with(key)
        return dated(step, words(step.data[key])) if step is not None else None

    biopsy = history.latest_tagged(tags.BIOPSY_RESULT)
    lesions = history.lesions()
    return Facts(
        histology=dated(
            biopsy,
            f"{biopsy.data['histology']} ({biopsy.data['result'].replace('_', '-')})"
            if biopsy
            else None,
        ),
        sins=per_lesion(history, lesions, "sins_total", _sins_words),
        tokuhashi=latest("tokuhashi_total", lambda v: f"{v} · {TOKUHASHI.band(v)[1]}"),
        bilsky=per_lesion(history, lesions, "bilsky_grade"),
        mirels=per_lesion(history, lesions, "mirels_total", _mirels_words),
        asia=latest("asia_grade"),
        operations=[
            (
                s.occurred_at,
                f"{describe(_PROCEDURES, s.data['procedures'])} · "
                f"{describe(_APPROACH, s.data['approach'])} · levels {s.data['levels']}",
            )
            for s in operations(history)
        ],
        complications=[
            (
                s.occurred_at,
                describe(_COMPLICATION, s.data["complication"]),
                describe(_CLAVIEN, s.data["clavien_dindo"]),
            )
            for s in history.tagged(tags.COMPLICATION)
        ],
    )


def noms(history: History) -> list[consistency.LesionNoms]:
    """The NOMS reading of the latest recorded values, one per lesion scored (named when
    there are two or more); none when there is nothing to read (a pathway that is not
    metastatic spinal disease, with no flag either)."""
    return [
        reading
        for reading in consistency.noms_by_lesion(history)
        if reading.noms.applies or reading.noms.flags
    ]


@dataclass(frozen=True)
class Review:
    signed: Step | None
    unreviewed: frozenset[int]


def review(history: History) -> Review:
    """The last sign-off, and the steps recorded after it (not yet reviewed by a surgeon):
    the history's own reading, the one the sign-off queue's count is derived from."""
    return Review(history.last_sign_off(), frozenset(s.seq for s in history.unreviewed()))
