"""`flask tracker verify`: every pathway against the replay of its events."""

from __future__ import annotations

from itertools import groupby

from sqlalchemy import select

from tracker.extensions import db
from tracker.pathway import definition as d
from tracker.pathway import targets
from tracker.pathway.history import History
from tracker.pathway.models import NO_TARGET, Event, Pathway


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
    for step in history.counting():
        if previous is not None and step.occurred_at < previous:
            problems.append(f"event {step.seq} happened before the step before it")
            break
        previous = step.occurred_at
    problems.extend(_derived(pathway, history))
    return problems


def _derived(pathway: Pathway, history: History) -> list[str]:
    """What the row keeps from its events: entry time, closing and the next target."""
    problems = []
    entry = history.entry_step()
    if entry is not None and pathway.state_entered_at != entry.occurred_at:
        problems.append(
            f"state_entered_at is {pathway.state_entered_at}, the events give {entry.occurred_at}"
        )
    if (
        pathway.state in d.FINAL_STATES
        and entry is not None
        and (pathway.closed_at != entry.occurred_at)
    ):
        problems.append(f"closed_at is {pathway.closed_at}, the events give {entry.occurred_at}")
    if pathway.closed_at is None:
        # Open clocks do not depend on the time of the check, so the stored next target must
        # be the one the events give (after a change of limits: run refresh-targets).
        statuses = targets.compute(
            pathway.urgency, pathway.referral_received_at, history, pathway.state_entered_at, None
        )
        upcoming = targets.next_open(statuses)
        expected = (upcoming.code, upcoming.due_at) if upcoming else (None, None)
        sort = expected[1] or NO_TARGET
        if (pathway.next_target, pathway.next_target_due_at) != expected or (
            pathway.next_target_sort != sort
        ):
            problems.append(
                f"next target is {pathway.next_target} due {pathway.next_target_due_at}, "
                f"the events give {expected[0]} due {expected[1]} (run refresh-targets if the "
                "limits changed)"
            )
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
