"""A meeting's prepared agenda: per case, what the meeting needs to decide it.

The clinical question; the latest imaging and histology with their dates; the dated
scores of the lesion under discussion (SINS and Bilsky are a lesion's; Tokuhashi, ECOG,
ASIA and the NOMS reading are the patient's, each with the date it was recorded); the
MDT outcomes before this listing; the clocks running; and this meeting's outcome, if
recorded. Read in a fixed number of queries whatever the number of cases: the cases
with their pathways and presenters, the pathways the reader may see, every case's events
at once, and the running clocks at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby

from sqlalchemy import select

from tracker.engine import clocks, consistency, tags
from tracker.engine import steps as d
from tracker.engine.dictionary import BILSKY, BIOPSY_RESULT, IMAGING_MODALITY, describe
from tracker.engine.fields import Choice
from tracker.engine.history import History, Step
from tracker.engine.lesions import Lesion
from tracker.engine.models import Event, Pathway, PathwayClock
from tracker.engine.scores import SINS, TOKUHASHI
from tracker.extensions import db
from tracker.mdt.models import MdtCase, MdtMeeting
from tracker.teams import scope

_MODALITY = Choice("modality", "Modality", choices=IMAGING_MODALITY)
_BILSKY = Choice("bilsky_grade", "Bilsky", choices=BILSKY)
_RESULT = Choice("result", "Result", choices=BIOPSY_RESULT)


def imaging_words(step: Step | None) -> str:
    """An imaging report in a few words: modality, region, levels, Bilsky grade."""
    if step is None:
        return "No imaging reported"
    data = step.data
    words = [describe(_MODALITY, data["modality"]), data.get("region", "")]
    if data.get("levels"):
        words.append(data["levels"])
    if data.get("bilsky_grade"):
        words.append(f"Bilsky {data['bilsky_grade']}")
    return ", ".join(w for w in words if w)


def histology_words(step: Step | None) -> str:
    """A biopsy result in a few words: the result and the histology."""
    if step is None:
        return "No biopsy result"
    return f"{describe(_RESULT, step.data['result'])}: {step.data['histology']}"


@dataclass
class Score:
    label: str
    value: str
    at: datetime
    lesion: str | None = None  # the lesion it describes; None: the patient's


@dataclass
class RunningClock:
    code: str
    label: str
    due_at: datetime
    stands: str  # "day 20 of 31", "7 h left"


@dataclass
class AgendaCase:
    case: MdtCase
    number: int  # its place on the list, from 1
    visible: bool  # the reader may see the patient (else: "a patient of another team")
    history: History | None = None
    imaging: Step | None = None
    histology: Step | None = None
    lesion: Lesion | None = None
    scores: list[Score] = field(default_factory=list)
    noms: object = None
    noms_at: datetime | None = None
    prior: list[Step] = field(default_factory=list)
    running: list[RunningClock] = field(default_factory=list)
    outcome: Step | None = None  # recorded since the listing
    rolled: bool = False  # not reached: moved to a later meeting

    @property
    def pathway(self) -> Pathway:
        return self.case.pathway

    def imaging_words(self) -> str:
        return imaging_words(self.imaging)

    def histology_words(self) -> str:
        return histology_words(self.histology)

    @property
    def outstanding(self) -> bool:
        return self.outcome is None and not self.rolled


def decision_words(step: Step) -> str:
    """An MDT outcome in words: "Surgery", "Palliative care", ..."""
    return dict(d.mdt_outcome_choices()).get(step.trigger, step.label)


def _lesion_under_discussion(history: History) -> Lesion | None:
    """The lesion scored most recently (SINS or Bilsky): the one the case is about."""
    scored = [
        (reading.at, reading.seq, lesion)
        for lesion in history.lesions()
        for reading in lesion.readings
        if reading.get("sins_total") is not None or reading.get("bilsky_grade") is not None
    ]
    if not scored:
        return None
    return max(scored, key=lambda item: (item[0], item[1]))[2]


def _scores(history: History, lesion: Lesion | None) -> list[Score]:
    out: list[Score] = []
    if lesion is not None:
        if (reading := lesion.latest("sins_total")) is not None:
            total = reading.get("sins_total")
            out.append(
                Score("SINS", f"{total} ({SINS.band(total)[1].lower()})", reading.at, lesion.ref)
            )
        if (reading := lesion.latest("bilsky_grade")) is not None:
            grade = reading.get("bilsky_grade")
            out.append(Score("Bilsky", describe(_BILSKY, grade), reading.at, lesion.ref))
    for key, label, words in (
        ("tokuhashi_total", "Revised Tokuhashi", lambda v: f"{v} ({TOKUHASHI.band(v)[1].lower()})"),
        ("ecog", "ECOG", str),
        ("asia_grade", "ASIA", str),
    ):
        if (step := history.latest_with(key)) is not None:
            out.append(Score(label, words(step.data[key]), step.occurred_at))
    return out


def _noms_date(history: History) -> datetime | None:
    found = [history.latest_with(key) for key in consistency.NOMS_KEYS]
    return max((s.occurred_at for s in found if s is not None), default=None)


def build(meeting: MdtMeeting, reader, now: datetime) -> list[AgendaCase]:
    """The meeting's cases in order, each prepared (only those the reader may see)."""
    cases = list(
        db.session.scalars(
            select(MdtCase)
            .where(MdtCase.meeting_id == meeting.id)
            .order_by(MdtCase.position, MdtCase.id)
        ).unique()
    )
    ids = [c.pathway_id for c in cases]
    if not ids:
        return []
    visible = set(
        db.session.scalars(
            select(Pathway.id).where(Pathway.id.in_(ids), scope.pathways(reader, now))
        )
    )
    events = db.session.scalars(
        select(Event).where(Event.pathway_id.in_(ids)).order_by(Event.pathway_id, Event.seq)
    )
    histories = {
        pid: History.from_events(list(evs)) for pid, evs in groupby(events, lambda e: e.pathway_id)
    }
    running: dict[int, list[PathwayClock]] = {}
    for row in db.session.scalars(
        select(PathwayClock)
        .where(PathwayClock.pathway_id.in_(ids), PathwayClock.status == "running")
        .order_by(PathwayClock.due_at)
    ):
        running.setdefault(row.pathway_id, []).append(row)
    out = []
    for case in cases:
        history = histories.get(case.pathway_id, History([]))
        listing = next(
            (s for s in history.steps if s.event is not None and s.event.id == case.event_id), None
        )
        if listing is None or listing.voided_by is not None:
            continue  # the listing was voided: the case is off the list
        item = AgendaCase(case, len(out) + 1, case.pathway_id in visible)
        out.append(item)
        item.rolled = case.rolled_to_id is not None
        if not item.visible:
            continue
        item.history = history
        item.imaging = history.latest_tagged(tags.IMAGING_REPORTED)
        item.histology = history.latest_tagged(tags.BIOPSY_RESULT)
        item.lesion = _lesion_under_discussion(history)
        item.scores = _scores(history, item.lesion)
        item.noms = [r for r in consistency.noms_by_lesion(history) if r.noms.applies]
        item.noms_at = _noms_date(history)
        item.prior = [s for s in history.mdt_outcomes() if s.seq < listing.seq]
        item.outcome = history.latest_tagged(tags.MDT_OUTCOME, since=listing.seq)
        item.running = [
            RunningClock(
                r.clock,
                clocks.LABELS.get(r.clock, r.clock),
                r.due_at,
                clocks.countdown(r.clock, r.due_at, now),
            )
            for r in running.get(case.pathway_id, [])
        ]
    return out
