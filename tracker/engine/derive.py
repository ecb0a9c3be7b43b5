"""Derive once: everything a pathway row keeps from its history, from one function.

The services (after every event), the demo seeder, the CSV import (through the
services), ``refresh-targets`` and ``verify`` all call ``derive``; ``apply`` writes the
result onto the row and its ``pathway_clock`` rows, in the caller's transaction.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby

from sqlalchemy import select
from sqlalchemy.orm import object_session

from tracker.engine import clocks, daily, tags
from tracker.engine import tasks as task_reading
from tracker.engine.dictionary import IN_ERROR, default_priority
from tracker.engine.history import History
from tracker.engine.models import (
    NO_TARGET,
    Event,
    Pathway,
    PathwayClock,
    PathwayFact,
    PathwayTask,
)
from tracker.engine.states import FINAL_STATES, INITIAL_STATE
from tracker.users.models import User

# What the reports count of each tagged step, as pathway_fact rows: (kind of row, the
# field whose code or codes it keeps, or None for the step alone).
REPORTED = {
    tags.OPERATION: (("operation", "approach"), ("procedure", "procedures")),
    tags.COMPLICATION: (("complication", "clavien_dindo"),),
    tags.NEW_EPISODE: (("recurrence", None),),
}
FACT_COLUMNS = ("seq", "kind", "code", "occurred_at")
# The referral's fields the pathway row keeps, corrected by amendments of the referral.
REFERRAL_COLUMNS = (
    "referral_received_at",
    "referral_source",
    "urgency",
    "diagnosis_category",
    "tumour_site",
    "primary_cancer_site",
    "presenting_symptoms",
)
# The columns of a pathway_clock row that the derivation decides (id and pathway aside).
CLOCK_COLUMNS = (
    "episode",
    "clock",
    "started_at",
    "stopped_at",
    "due_at",
    "warn_at",
    "adjustment_days",
    "status",
    "wait",
    "priority",
    "stop_seq",
)

# The columns of a pathway_task row that the derivation decides (id, pathway and the owner
# aside: the owner is derived as a username, ``owner``, and stored as ``owner_id``).
TASK_COLUMNS = (
    "seq",
    "what",
    "due_on",
    "status",
    "created_at",
    "created_by_id",
    "closed_seq",
    "closed_at",
    "closed_by_id",
    "close_note",
)


@dataclass(frozen=True)
class Derived:
    state: str
    recurrence_count: int
    state_entered_at: datetime
    last_seq: int
    closed_at: datetime | None
    next_target: str | None
    next_target_due_at: datetime | None
    next_target_warn_at: datetime | None
    next_target_sort: datetime
    # The first episode's milestones, for the reports' intervals.
    first_imaging_at: datetime | None
    first_decision_at: datetime | None
    first_treatment_at: datetime | None
    days_to_decision: float | None
    days_decision_to_treatment: float | None
    days_to_treatment: float | None
    in_error: bool
    unreviewed_steps: int
    tracking_note: str | None
    tracking_note_at: datetime | None
    referral_priority: str
    team: str
    # The referral's fields as corrected (the keys its event holds): the row follows them.
    referral: dict
    clocks: tuple[dict, ...]  # the pathway_clock rows, as CLOCK_COLUMNS -> value
    facts: tuple[dict, ...]  # the pathway_fact rows, as FACT_COLUMNS -> value
    tasks: tuple[dict, ...] = ()  # the pathway_task rows, as TASK_COLUMNS and owner -> value

    def row_values(self) -> dict:
        values = {
            name: getattr(self, name)
            for name in self.__dataclass_fields__
            if name not in ("clocks", "facts", "tasks", "state", "referral")
        }
        return {**self.referral, **values}


def derive(
    urgency: str,
    referral_received_at: datetime,
    history: History,
    now: datetime,
    rules: clocks.Rules | None = None,
) -> Derived:
    """What the row keeps from ``history``. The clocks are stored as running, met or
    missed, which does not depend on ``now``: the live status of a running clock is read
    against the time of reading."""
    state, recurrences = history.replay()
    entry = history.entry_step()
    closed_at = entry.occurred_at if state in FINAL_STATES else None
    referral = {k: v for k, v in history.referral_values().items() if k in REFERRAL_COLUMNS}
    if history.referral is not None:
        referral.setdefault("presenting_symptoms", [])  # none given, or all removed
    urgency = referral.get("urgency", urgency)
    referral_received_at = referral.get("referral_received_at", referral_received_at)
    in_error = state in FINAL_STATES and entry is not None and entry.data.get("reason") == IN_ERROR
    rules = rules or clocks.rules()
    every = clocks.compute_all(urgency, referral_received_at, history, now, closed_at, rules)
    upcoming = clocks.next_open(clocks.of_current_episode(every, history))

    recurrence = history.first_tagged(tags.NEW_EPISODE)

    def first(tag: str) -> datetime | None:
        step = history.first_tagged(tag, until=recurrence.seq if recurrence else None)
        return step.occurred_at if step is not None else None

    note, note_at = task_reading.tracking_note(history)
    imaging, decision, treatment = (
        first(tags.IMAGING_REPORTED),
        first(tags.MDT_DECISION),
        first(tags.TREATMENT_STARTED),
    )
    return Derived(
        state=state or INITIAL_STATE,
        recurrence_count=recurrences,
        state_entered_at=entry.occurred_at if entry else referral_received_at,
        last_seq=history.last_seq,
        closed_at=closed_at,
        next_target=upcoming.code if upcoming else None,
        next_target_due_at=upcoming.due_at if upcoming else None,
        next_target_warn_at=upcoming.warn_at if upcoming else None,
        next_target_sort=upcoming.due_at if upcoming else NO_TARGET,
        first_imaging_at=imaging,
        first_decision_at=decision,
        first_treatment_at=treatment,
        days_to_decision=_days(referral_received_at, decision),
        days_decision_to_treatment=_days(decision, treatment),
        days_to_treatment=_days(referral_received_at, treatment),
        in_error=in_error,
        unreviewed_steps=len(history.unreviewed()),
        tracking_note=note,
        tracking_note_at=note_at,
        referral_priority=history.referral_values().get("referral_priority")
        or default_priority(urgency),
        team=history.team(),
        referral=referral,
        # A pathway opened in error leaves every count and report: no clock or fact rows.
        clocks=() if in_error else tuple(_clock_row(r) for r in every),
        facts=() if in_error else tuple(_facts(history)),
        tasks=() if in_error else tuple(_task_row(task) for task in history.tasks()),
    )


def _days(start: datetime | None, stop: datetime | None) -> float | None:
    if start is None or stop is None:
        return None
    return (stop - start).total_seconds() / 86400


def _facts(history: History):
    for step in history.counting():
        for tag, rows in REPORTED.items():
            if tag not in step.tags:
                continue
            for kind, field in rows:
                value = step.data.get(field) if field else ""
                for code in value if isinstance(value, list) else [value]:
                    if code is not None:
                        yield {
                            "seq": step.seq,
                            "kind": kind,
                            "code": str(code),
                            "occurred_at": step.occurred_at,
                        }


def _task_row(task: task_reading.Task) -> dict:
    return {**{name: getattr(task, name) for name in TASK_COLUMNS}, "owner": task.owner}


def _clock_row(result: clocks.ClockResult) -> dict:
    return {
        "episode": result.episode,
        "clock": result.code,
        "started_at": result.started_at,
        "stopped_at": result.stopped_at,
        "due_at": result.due_at,
        "warn_at": result.warn_at,
        "adjustment_days": result.adjustment_days,
        "status": result.stored_status,
        "wait": result.wait,
        "priority": result.priority,
        "stop_seq": result.stop_seq,
    }


def derive_for(pathway: Pathway, history: History, now: datetime) -> Derived:
    return derive(pathway.urgency, pathway.referral_received_at, history, now)


def apply(pathway: Pathway, derived: Derived, state_before: str | None = None) -> None:
    """Write ``derived`` onto the row and its clock rows; unchanged clock rows stay as
    they are (an UPDATE or INSERT per clock that changed, a DELETE per one gone).
    ``state_before``: the state the row was in before the event (the machine has moved
    it already), for the difference in the reports' day rows; the row's, if not given."""
    session = object_session(pathway)
    # Loading the clock rows must not flush the change in progress: its flush is the
    # caller's, where a concurrent writer is caught (the version check).
    with session.no_autoflush if session is not None else nullcontext():
        existing = {_clock_key(row): row for row in pathway.clocks}
        facts = {_fact_key(row): row for row in pathway.facts}
        # What the pathway added to the reports' day rows, if it was derived before.
        before = daily.of_pathway(pathway, state_before) if pathway.last_seq else None
        tasks = {row.seq: row for row in pathway.tasks}
    for name, value in derived.row_values().items():
        if getattr(pathway, name) != value:
            setattr(pathway, name, value)
    # Matched by key, so no UPDATE ever takes another row's key.
    _sync(pathway.clocks, existing, derived.clocks, _clock_key, CLOCK_COLUMNS, PathwayClock)
    _sync(pathway.facts, facts, derived.facts, _fact_key, FACT_COLUMNS, PathwayFact)
    if session is not None:
        with session.no_autoflush:
            daily.note(session, before, daily.of_pathway(pathway))
    _sync_tasks(pathway, tasks, derived.tasks, session)


def _sync_tasks(pathway: Pathway, existing: dict, wanted_rows, session) -> None:
    """As ``_sync``, keyed by the task's number, with each owner's username made a user."""
    changed_owner = [
        values
        for values in wanted_rows
        if (row := existing.get(values["seq"])) is None or _owner_name(row) != values["owner"]
    ]
    users = {}
    if changed_owner and session is not None:
        names = {values["owner"] for values in changed_owner}
        with session.no_autoflush:
            users = {
                u.username: u for u in session.scalars(select(User).where(User.username.in_(names)))
            }
    wanted = {values["seq"]: values for values in wanted_rows}
    for seq, values in wanted.items():
        row = existing.get(seq)
        if row is None:
            row = PathwayTask(**{name: values[name] for name in TASK_COLUMNS})
            pathway.tasks.append(row)
        else:
            for name in TASK_COLUMNS:
                if getattr(row, name) != values[name]:
                    setattr(row, name, values[name])
        if _owner_name(row) != values["owner"]:
            row.owner = users[values["owner"]]
    for seq, row in existing.items():
        if seq not in wanted:
            pathway.tasks.remove(row)


def _owner_name(row: PathwayTask) -> str | None:
    return row.owner.username if row.owner is not None else None


def _sync(collection, existing: dict, wanted_rows, key, columns, model) -> None:
    """Make ``collection`` hold ``wanted_rows``: unchanged rows stay as they are, changed
    ones are updated, new ones added and gone ones removed."""
    wanted = {key(values): values for values in wanted_rows}
    for k, values in wanted.items():
        row = existing.get(k)
        if row is None:
            collection.append(model(**values))
            continue
        for name in columns:
            if getattr(row, name) != values[name]:
                setattr(row, name, values[name])
    for k, row in existing.items():
        if k not in wanted:
            collection.remove(row)


def _fact_key(row) -> tuple:
    get = row.get if isinstance(row, dict) else lambda name: getattr(row, name)
    return (get("seq"), get("kind"), get("code"))


def _clock_key(row) -> tuple:
    get = row.get if isinstance(row, dict) else lambda name: getattr(row, name)
    return (get("episode"), get("clock"), get("started_at"))


def differences(
    pathway: Pathway, derived: Derived, clock_rows, fact_rows=None, task_rows=None
) -> list[str]:
    """How the stored row and clock rows differ from ``derived``, in words (for verify)."""
    problems = []
    for name, value in derived.row_values().items():
        stored = getattr(pathway, name)
        if stored != value:
            problems.append(f"{name} is {stored}, the events give {value}")
    stored_clocks = sorted(
        ({name: getattr(r, name) for name in CLOCK_COLUMNS} for r in clock_rows), key=_clock_key
    )
    wanted = sorted(derived.clocks, key=_clock_key)
    if stored_clocks != wanted:
        stored_codes = [(c["episode"], c["clock"], c["status"]) for c in stored_clocks]
        wanted_codes = [(c["episode"], c["clock"], c["status"]) for c in wanted]
        problems.append(
            f"pathway_clock rows {stored_codes} differ from the replay's {wanted_codes} "
            "(run refresh-targets if the limits changed)"
        )
    fact_rows = pathway.facts if fact_rows is None else fact_rows
    stored_facts = sorted(
        ({name: getattr(r, name) for name in FACT_COLUMNS} for r in fact_rows), key=_fact_key
    )
    if stored_facts != sorted(derived.facts, key=_fact_key):
        problems.append(
            f"pathway_fact rows {[_fact_key(f) for f in stored_facts]} differ from "
            f"the replay's {[_fact_key(f) for f in derived.facts]}"
        )
    stored_tasks = sorted(
        (
            {**{name: getattr(r, name) for name in TASK_COLUMNS}, "owner": _owner_name(r)}
            for r in (pathway.tasks if task_rows is None else task_rows)
        ),
        key=lambda t: t["seq"],
    )
    if stored_tasks != sorted(derived.tasks, key=lambda t: t["seq"]):
        problems.append(
            f"pathway_task rows {_task_words(stored_tasks)} differ from the replay's "
            f"{_task_words(derived.tasks)}"
        )
    return problems


def _task_words(rows) -> list[str]:
    return [f"#{t['seq']} {t['status']} {t['owner']} due {t['due_on']}" for t in rows]


def refresh_all(session, now: datetime, batch: int = 1000) -> int:
    """Derive every pathway again from its events and write the results (after the limits
    in configuration change, or to backfill a new derived column). Returns the count."""
    last_id, count = 0, 0
    while True:
        pathways = list(
            session.scalars(
                select(Pathway)
                .where(Pathway.id > last_id)
                .order_by(Pathway.id)
                .limit(batch)
                # A writer recording on one of these meanwhile waits (PostgreSQL), rather than
                # have its new clock rows overwritten from the events read before it.
                .with_for_update(of=Pathway)
            )
        )
        if not pathways:
            return count
        ids = [p.id for p in pathways]
        events = session.scalars(
            select(Event)
            .where(Event.pathway_id.between(ids[0], ids[-1]))
            .order_by(Event.pathway_id, Event.seq)
        )
        by_pathway = {pid: list(evs) for pid, evs in groupby(events, key=lambda e: e.pathway_id)}
        for pathway in pathways:
            history = History.from_events(by_pathway.get(pathway.id, []))
            apply(pathway, derive_for(pathway, history, now))
        session.flush()
        count += len(pathways)
        last_id = ids[-1]
