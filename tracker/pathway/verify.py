"""`flask tracker verify`: every pathway against the replay of its events."""

from __future__ import annotations

from itertools import groupby

from sqlalchemy import select

from tracker.extensions import db
from tracker.pathway import definition as d
from tracker.pathway.history import History
from tracker.pathway.models import Event, Pathway


def check(pathway: Pathway, events: list[Event]) -> list[str]:
    problems = []
    seqs = [e.seq for e in events]
    if seqs != list(range(1, len(events) + 1)):
        problems.append(f"event seq is not contiguous from 1: {seqs[:10]}...")
        return problems
    if not events or events[0].trigger != d.OPEN_TRIGGER:
        problems.append("the first event is not the referral (open_pathway)")
        return problems
    history = History.from_events(events)
    try:
        state, recurrences = history.replay()
    except ValueError as exc:
        problems.append(f"events do not replay: {exc}")
        return problems
    if state != pathway.state:
        problems.append(f"state is {pathway.state} but the events lead to {state}")
    if pathway.version != len(events):
        problems.append(f"version is {pathway.version} but {len(events)} events are recorded")
    if pathway.last_seq != len(events):
        problems.append(f"last_seq is {pathway.last_seq} but {len(events)} events are recorded")
    if pathway.recurrence_count != recurrences:
        problems.append(
            f"recurrence count is {pathway.recurrence_count}, the events give {recurrences}"
        )
    if (pathway.closed_at is not None) != (state in d.FINAL_STATES):
        problems.append("closed_at does not match a final state")
    previous = None
    for event in events:
        if previous is not None and event.occurred_at < previous:
            problems.append(f"event {event.seq} happened before the event before it")
            break
        previous = event.occurred_at
    return problems


def verify_all(batch: int = 2000) -> tuple[list[tuple[int, str]], int]:
    problems: list[tuple[int, str]] = []
    checked = 0
    last_id = 0
    while True:
        pathways = list(
            db.session.scalars(
                select(Pathway).where(Pathway.id > last_id).order_by(Pathway.id).limit(batch)
            )
        )
        if not pathways:
            break
        ids = [p.id for p in pathways]
        rows = db.session.scalars(
            select(Event)
            .where(Event.pathway_id.between(ids[0], ids[-1]))
            .order_by(Event.pathway_id, Event.seq)
        )
        by_pathway = {pid: list(evs) for pid, evs in groupby(rows, key=lambda e: e.pathway_id)}
        for pathway in pathways:
            for message in check(pathway, by_pathway.get(pathway.id, [])):
                problems.append((pathway.id, message))
        checked += len(pathways)
        last_id = ids[-1]
        db.session.expunge_all()
    return problems, checked
