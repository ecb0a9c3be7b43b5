"""`flask tracker verify`: every pathway against the replay of its events."""

from __future__ import annotations

from collections import Counter
from itertools import groupby

from sqlalchemy import select

from tracker.core.runtime import db_session
from tracker.engine import counts, daily, derive, timing
from tracker.engine import steps as d
from tracker.engine.history import History
from tracker.engine.models import Event, Pathway, PathwayClock, PathwayFact, PathwayTask


def check(
    pathway: Pathway, events: list[Event], clock_rows=None, fact_rows=None, task_rows=None
) -> list[str]:
    """What is wrong with ``pathway``: its events, and every value the row and its clock
    rows keep from them, against a replay through ``derive`` (the services' own function).
    ``clock_rows``, ``fact_rows``, ``task_rows``: the pathway's derived rows (read from the
    row when not given)."""
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
        state, _ = history.replay()
    except ValueError as exc:
        problems.append(f"events do not replay: {exc}")
        return problems
    if state != pathway.state:
        problems.append(f"state is {pathway.state} but the events lead to {state}")
    if pathway.version != len(events):
        problems.append(f"version is {pathway.version} but {len(events)} events are recorded")
    if (pathway.closed_at is not None) != (state in d.FINAL_STATES):
        problems.append("closed_at does not match a final state")
    # Every step where it stands: not dated before the step that made it possible, nor
    # after the moment it was recorded; its guards held on the story before it.
    recorded = max(e.recorded_at for e in events)
    for seq, why in timing.problems(history, recorded).items():
        problems.append(f"event {seq}: {'; '.join(why)}")
    # Stored values do not depend on the time of the check (running clocks are stored as
    # running), so any instant will do: the latest event's.
    derived = derive.derive_for(pathway, history, events[-1].recorded_at)
    rows = pathway.clocks if clock_rows is None else clock_rows
    problems.extend(derive.differences(pathway, derived, rows, fact_rows, task_rows))
    return problems


def check_counts(session) -> list[str]:
    """The open pathways per state as the counter rows keep them, against a count."""
    kept, actual = counts.open_by_state(session), counts.counted(session)
    return [
        f"{actual.get(state, 0)} open pathways are in {state}, the counter rows say "
        f"{kept.get(state, 0)}"
        for state in d.ACTIVE_STATES
        if kept.get(state, 0) != actual.get(state, 0)
    ]


def verify_all(batch: int = 2000) -> tuple[list[tuple[int | str, str]], int]:
    problems: list[tuple[int | str, str]] = [
        ("counts", message) for message in check_counts(db_session())
    ]
    checked = 0
    last_id = 0
    # The reports' day rows, recounted from the pathways as they are checked.
    report_counts: Counter = Counter()
    while True:
        pathways = list(
            db_session().scalars(
                select(Pathway).where(Pathway.id > last_id).order_by(Pathway.id).limit(batch)
            )
        )
        if not pathways:
            break
        ids = [p.id for p in pathways]
        rows = db_session().scalars(
            select(Event)
            .where(Event.pathway_id.between(ids[0], ids[-1]))
            .order_by(Event.pathway_id, Event.seq)
        )
        by_pathway = {pid: list(evs) for pid, evs in groupby(rows, key=lambda e: e.pathway_id)}
        clock_rows = db_session().scalars(
            select(PathwayClock)
            .where(PathwayClock.pathway_id.between(ids[0], ids[-1]))
            .order_by(PathwayClock.pathway_id)
        )
        clocks_of = {pid: list(cs) for pid, cs in groupby(clock_rows, key=lambda c: c.pathway_id)}
        fact_rows = db_session().scalars(
            select(PathwayFact)
            .where(PathwayFact.pathway_id.between(ids[0], ids[-1]))
            .order_by(PathwayFact.pathway_id)
        )
        facts_of = {pid: list(fs) for pid, fs in groupby(fact_rows, key=lambda f: f.pathway_id)}
        task_rows = db_session().scalars(
            select(PathwayTask)
            .where(PathwayTask.pathway_id.between(ids[0], ids[-1]))
            .order_by(PathwayTask.pathway_id)
        )
        tasks_of = {pid: list(ts) for pid, ts in groupby(task_rows, key=lambda t: t.pathway_id)}
        for pathway in pathways:
            events = by_pathway.get(pathway.id, [])
            rows = (
                clocks_of.get(pathway.id, []),
                facts_of.get(pathway.id, []),
                tasks_of.get(pathway.id, []),
            )
            for message in check(pathway, events, *rows):
                problems.append((pathway.id, message))
            report_counts.update(daily.contribution(pathway, rows[0], rows[1]))
        checked += len(pathways)
        last_id = ids[-1]
        db_session().expunge_all()
    kept = daily.stored(db_session().connection())
    problems.extend(("report counts", m) for m in daily.differences(kept, +report_counts))
    return problems, checked
