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
    PROCEDURES,
    describe,
)
from tracker.engine.fields import Choice, MultiChoice
from tracker.engine.history import History, Step
from tracker.engine.scores import SINS, TOKUHASHI


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


_PROCEDURES = MultiChoice("procedures", "Procedures", choices=PROCEDURES)
_APPROACH = Choice("approach", "Approach", choices=APPROACH)
_COMPLICATION = Choice("complication", "Complication", choices=COMPLICATION)
_CLAVIEN = Choice("clavien_dindo", "Clavien-Dindo", choices=CLAVIEN_DINDO)


@dataclass
class Facts:
    histology: str | None
    sins: str | None
    tokuhashi: str | None
    bilsky: str | None
    asia: str | None
    operations: list[tuple[datetime, str]]
    complications: list[tuple[datetime, str, str]]


def facts(history: History) -> Facts:
    """The latest of each fact, each with the day it was recorded for and, once there has
    been a recurrence, the episode it belongs to."""
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
    return Facts(
        histology=dated(
            biopsy,
            f"{biopsy.data['histology']} ({biopsy.data['result'].replace('_', '-')})"
            if biopsy
            else None,
        ),
        sins=latest("sins_total", lambda v: f"{v} · {SINS.band(v)[1]}"),
        tokuhashi=latest("tokuhashi_total", lambda v: f"{v} · {TOKUHASHI.band(v)[1]}"),
        bilsky=latest("bilsky_grade"),
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


def noms(history: History) -> consistency.Noms | None:
    """The NOMS reading of the latest recorded values, or None when there is nothing to read
    (a pathway that is not metastatic spinal disease, with no flag either)."""
    reading = consistency.noms_for(history)
    return reading if reading.applies or reading.flags else None


@dataclass(frozen=True)
class Review:
    signed: Step | None
    unreviewed: frozenset[int]


def review(history: History) -> Review:
    """The last sign-off, and the steps recorded after it (not yet reviewed by a surgeon):
    the history's own reading, the one the sign-off queue's count is derived from."""
    return Review(history.last_sign_off(), frozenset(s.seq for s in history.unreviewed()))
