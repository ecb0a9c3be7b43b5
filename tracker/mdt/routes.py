"""The MDT list: who is waiting for the meeting, and what the meeting will need."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from itertools import groupby

from flask import Blueprint, render_template
from flask_login import current_user
from sqlalchemy import select

from tracker.core.db import utcnow
from tracker.engine import steps as d
from tracker.engine import tags
from tracker.engine.history import History, Step
from tracker.engine.models import Event, Pathway
from tracker.engine.scores import SINS, TOKUHASHI
from tracker.extensions import db
from tracker.mdt.agenda import histology_words, imaging_words
from tracker.teams import scope

bp = Blueprint("mdt", __name__, url_prefix="/mdt")


@dataclass
class Case:
    pathway: Pathway
    meeting_date: date | None
    imaging: Step | None
    biopsy: Step | None
    facts: list[tuple[str, str]]
    waiting_since: object

    def imaging_words(self) -> str:
        return imaging_words(self.imaging)

    def histology_words(self) -> str:
        return histology_words(self.biopsy)


def _case(pathway: Pathway, events: list[Event]) -> Case:
    history = History.from_events(events)
    entry = history.entry_step()
    since = entry.seq if entry else 0
    scheduled = history.latest_tagged(tags.MDT_LISTING, since=since)
    facts = []
    for key, label in (
        ("asia_grade", "ASIA"),
        ("ecog", "ECOG"),
        ("karnofsky", "Karnofsky"),
        ("bilsky_grade", "Bilsky"),
    ):
        value = history.latest_value(key)
        if value is not None:
            facts.append((label, str(value)))
    for score in (SINS, TOKUHASHI):
        total = history.latest_value(f"{score.name}_total")
        if total is not None:
            facts.append((score.label, f"{total} ({score.band(total)[1].lower()})"))
    return Case(
        pathway=pathway,
        meeting_date=date.fromisoformat(scheduled.data["meeting_date"]) if scheduled else None,
        imaging=history.latest_tagged(tags.IMAGING_REPORTED),
        biopsy=history.latest_tagged(tags.BIOPSY_RESULT),
        facts=facts,
        waiting_since=entry.occurred_at if entry else pathway.state_entered_at,
    )


@bp.get("/")
def index():
    pathways = db.session.scalars(
        select(Pathway)
        .where(Pathway.state == "mdt_review", scope.pathways(current_user, utcnow()))
        .order_by(Pathway.state_entered_at)
    ).all()
    events = (
        db.session.scalars(
            select(Event)
            .where(Event.pathway_id.in_([p.id for p in pathways]))
            .order_by(Event.pathway_id, Event.seq)
        )
        if pathways
        else []
    )
    by_pathway = {pid: list(evs) for pid, evs in groupby(events, key=lambda e: e.pathway_id)}
    cases = [_case(p, by_pathway.get(p.id, [])) for p in pathways]
    cases.sort(key=lambda c: (c.meeting_date is not None, c.meeting_date or date.min))
    groups = [(key, list(items)) for key, items in groupby(cases, key=lambda c: c.meeting_date)]
    return render_template(
        "mdt/index.html", groups=groups, total=len(cases), state_label=d.STATE_LABELS["mdt_review"]
    )
