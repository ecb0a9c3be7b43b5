"""Recording the pathway: every change goes through here, as one transaction.

Each function validates, fires the machine, appends the event and bumps the
version, then flushes. None commits: the web request, the CLI or the API does,
once, or rolls back.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from tracker.core.clock import format_local
from tracker.core.db import utcnow
from tracker.core.runtime import db_session
from tracker.engine import counts, derive, machine, tags, teams, timing
from tracker.engine import steps as d
from tracker.engine.dictionary import (
    COMPUTED_KEYS,
    PATHWAY_FIELDS,
    DataError,
    clean_fields,
    default_priority,
    with_scores,
)
from tracker.engine.errors import (
    ConcurrentWrite,
    InvalidData,
    PathwayError,
    RequestIdReused,
    RoleNotAllowed,
    StaleVersion,
    TriggerNotAllowed,
)
from tracker.engine.fields import UserRef, parse_datetime
from tracker.engine.history import OCCURRED_AT, REFERRAL_RECEIVED_AT, History, Step
from tracker.engine.models import Event, Pathway
from tracker.engine.steps import all_fields_for, validate_event_data
from tracker.users.models import User, user_named
from tracker.users.roles import CLINICAL, a_role


@dataclass
class Recorded:
    event: Event
    created: bool  # False: the request_id was seen before, nothing new was written


def new_request_id() -> str:
    return uuid.uuid4().hex


# What a feature package adds to one trigger, given what the engine cannot see (the MDT
# meeting a listing names: tracker.mdt). ``check(pathway, data, now)`` answers (the data
# to record, {field: [messages]}), reported with the engine's own problems in one round;
# ``follow_up(pathway, event, data, now)`` writes its rows with the step, in its
# transaction. For a correction of such a step, ``correction_check(pathway, data,
# changes, now)`` answers (the changes to record, {field: [messages]}) (``data``: the
# step's data as it stands, earlier corrections applied; ``changes``: the fields this
# correction changes, as stored, a removed one as None), and ``corrected(pathway,
# event, changes, now)`` brings the feature's rows in line with it, in its transaction
# (``event``: the corrected step's event). Registered once by the package, at import.
_CHECKS: dict[str, list[Callable]] = {}
_FOLLOW_UPS: dict[str, list[Callable]] = {}
_CORRECTION_CHECKS: dict[str, list[Callable]] = {}
_CORRECTED: dict[str, list[Callable]] = {}


def extend(
    trigger: str,
    check: Callable | None = None,
    follow_up: Callable | None = None,
    correction_check: Callable | None = None,
    corrected: Callable | None = None,
):
    for registry, hook in (
        (_CHECKS, check),
        (_FOLLOW_UPS, follow_up),
        (_CORRECTION_CHECKS, correction_check),
        (_CORRECTED, corrected),
    ):
        if hook is not None and hook not in registry.setdefault(trigger, []):
            registry[trigger].append(hook)


def _extended(pathway: Pathway, trigger: str, data, now: datetime):
    errors: dict[str, list[str]] = {}
    for check in _CHECKS.get(trigger, ()):
        data, found = check(pathway, data, now)
        for name, messages in found.items():
            errors.setdefault(name, []).extend(messages)
    return data, errors


def load_events(pathway: Pathway) -> list[Event]:
    return list(
        db_session().scalars(
            select(Event).where(Event.pathway_id == pathway.id).order_by(Event.seq)
        )
    )


def load_history(pathway: Pathway) -> History:
    return History.from_events(load_events(pathway))


def _events_for_change(pathway: Pathway) -> tuple[list[Event], History]:
    """The events a change is judged on; they must be the ones the pathway row was read with.

    A writer that committed between reading the row and reading its events would
    otherwise have its history judged against the older state.
    """
    events = load_events(pathway)
    if (events[-1].seq if events else 0) != pathway.last_seq:
        raise ConcurrentWrite
    return events, History.from_events(events)


# -- what a user may do now ---------------------------------------------------


def allowed_triggers(pathway: Pathway, user, history: History | None = None) -> list[str]:
    """The machine's triggers this user may fire on this pathway now, guards checked."""
    if user is None or not getattr(user, "active", False):
        return []
    history = history if history is not None else load_history(pathway)
    return [
        trigger
        for trigger in d.recordable()
        if d.role_may(user.role, trigger)
        and d.transition_for(trigger, pathway.state) is not None
        and machine.guards_pass(pathway, trigger, history=history, probe=True)
    ]


def form_defaults(trigger: str, source: str | None, history: History) -> dict[str, Any]:
    """What a new step's form starts with: a new episode starts as urgent as the last; a
    step that names a lead surgeon (the operation) starts with the pathway's, as referred
    or last handed over."""
    if tags.NEW_EPISODE in d.tags_of(trigger, source):
        values = history.episode_values()
        values.setdefault("referral_priority", default_priority(values.get("urgency")))
        return values
    values = {}
    if tags.OPERATION in d.tags_of(trigger, source) and (
        lead := history.latest_value("lead_surgeon")
    ):
        values["lead_surgeon"] = lead
    return values


def not_allowed_reason(pathway: Pathway, trigger: str, history: History, **guard_args):
    """Why ``trigger`` cannot be recorded on ``pathway`` now, in words; None if it can.

    Without ``data`` (a form not yet filled in) only the guards on recorded history count.
    """
    label = d.label(trigger)
    transition = d.transition_for(trigger, pathway.state)
    if transition is None:
        return f"'{label}' cannot be recorded while the pathway is in '{pathway.state_label}'."
    guard_args = {"probe": "data" not in guard_args, **guard_args}
    refused = [guard for guard in transition.guards if not guard(history=history, **guard_args)]
    if refused:
        return (
            f"'{label}' cannot be recorded yet: "
            + "; ".join(guard.refusal for guard in refused)
            + "."
        )
    return None


def void_refusal(pathway: Pathway, user, history: History, now: datetime | None = None):
    """Why this user may not void the last step now, or None if they may."""
    error = void_refusal_error(user, history, now)
    return error.message if error else None


def void_refusal_error(user, history: History, now: datetime | None = None):
    """The refusal itself, with its status: 403 for who, 409 for what the pathway holds."""
    return _void_refusal(user, history, now or utcnow())


def _void_refusal(user, history: History, now: datetime) -> PathwayError | None:
    if not d.role_may(user.role, d.VOID_TRIGGER):
        return RoleNotAllowed(f"{a_role(user.role)} cannot void steps.")
    step = history.voidable_step()
    if step is None:
        return TriggerNotAllowed("There is no step to void: the pathway is at its referral.")
    later = [
        s for s in history.counting() if s.seq > step.seq and tags.VOID_TRANSPARENT not in s.tags
    ]
    if later:
        return TriggerNotAllowed(
            f"'{d.label(step.trigger)}' has been followed by "
            f"'{d.label(later[-1].trigger)}'; correct that record with an amendment "
            "instead."
        )
    if user.role == "admin":
        return None
    if step.recorded_by_id != user.id:
        return RoleNotAllowed(
            "Only the person who recorded this step, or an administrator, can void it."
        )
    if now - step.recorded_at > timedelta(hours=d.VOID_WINDOW_HOURS):
        return RoleNotAllowed(
            f"Steps can be voided by their recorder within {d.VOID_WINDOW_HOURS} hours; "
            "ask an administrator."
        )
    return None


def amendable_steps(history: History) -> list[Step]:
    """Every step of the story but the sign-offs: its data and when it happened (the
    referral: every referral field) can be corrected."""
    return [s for s in history.counting() if tags.SIGN_OFF not in s.tags]


# -- checks shared by every change -----------------------------------------------


def check_may_register(actor, what: str) -> None:
    if actor is None or not actor.active:
        raise RoleNotAllowed("Your account is not active.")
    if actor.role not in CLINICAL:
        raise RoleNotAllowed(f"{a_role(actor.role)} cannot {what}.")


def _check_actor(actor, trigger: str) -> None:
    if actor is None or not actor.active:
        raise RoleNotAllowed("Your account is not active.")
    if not d.role_may(actor.role, trigger):
        raise RoleNotAllowed(f"{a_role(actor.role)} cannot record '{d.label(trigger)}'.")


def _check_version(pathway: Pathway, expected_version) -> None:
    if expected_version is None or expected_version != pathway.version:
        raise StaleVersion(pathway.state, pathway.version)


def _time_and_data_errors(history: History, trigger: str, source, data, occurred_at, now):
    """Every problem with a new step's time and data, found in one round: (the time, the
    clean data, {field: [messages]}); the time and data are None when unusable."""
    errors: dict[str, list[str]] = {}
    try:
        occurred_at = parse_datetime(occurred_at)
    except ValueError as exc:
        errors["occurred_at"] = [f"When it happened {exc}"]
        occurred_at = None
    if occurred_at is not None and (
        found := timing.time_errors(history, trigger, source, occurred_at, now)
    ):
        errors["occurred_at"] = found
    clean = None
    try:
        clean = validate_event_data(trigger, source, data or {}, occurred_at)
    except DataError as exc:
        for name, messages in exc.errors.items():
            errors.setdefault(name, []).extend(messages)
    if clean is not None:
        found = {
            **_user_errors(all_fields_for(trigger, source), clean),
            **d.history_errors(trigger, source, clean, history),
        }
        for name, messages in found.items():
            errors.setdefault(name, []).extend(messages)
    return occurred_at, clean, errors


def problems(pathway: Pathway, trigger: str, data, occurred_at, now=None) -> dict:
    """What recording ``trigger`` with ``data`` at ``occurred_at`` would be refused for, as
    {field: [messages]}; nothing is written. A form whose own checks failed shows these
    beside its own, so every problem is reported in one round."""
    if d.transition_for(trigger, pathway.state) is None:
        return {}
    now = now or utcnow()
    history = load_history(pathway)
    data, extra = _extended(pathway, trigger, data, now)
    *_, errors = _time_and_data_errors(history, trigger, pathway.state, data, occurred_at, now)
    for name, messages in extra.items():
        errors.setdefault(name, []).extend(m for m in messages if m not in errors.get(name, []))
    return errors


def recorded_with(request_id: str | None) -> Event | None:
    """The event a request id already recorded, if any: a form or call sent twice (a
    double-click, a refresh, a retry) is answered with what it did the first time."""
    if not request_id or not isinstance(request_id, str) or len(request_id) > 64:
        return None
    return db_session().scalar(select(Event).where(Event.request_id == request_id))


def _existing_request(request_id: str, pathway: Pathway | None, trigger: str) -> Event | None:
    if not request_id or not isinstance(request_id, str) or len(request_id) > 64:
        raise InvalidData({"request_id": ["A request id of 1 to 64 characters is required"]})
    event = recorded_with(request_id)
    same_pathway = pathway is None or event is None or event.pathway_id == pathway.id
    if event is not None and (not same_pathway or event.trigger != trigger):
        raise RequestIdReused(
            "This request id was already used for a different step; send a new one."
        )
    return event


def _earlier_or_current(pathway, trigger: str, request_id, expected_version) -> Recorded | None:
    """What a request sent again recorded the first time; otherwise None, once the
    pathway is checked to be at the version the caller read."""
    existing = _existing_request(request_id, pathway, trigger)
    if existing is not None:
        return Recorded(existing, created=False)
    _check_version(pathway, expected_version)
    return None


def _resolve_users(fields, clean: dict[str, Any]) -> dict[str, User]:
    """Check that each user named in the data is an active user of the right role."""
    found, errors = _users(fields, clean)
    if errors:
        raise InvalidData(errors)
    return found


def _user_errors(fields, clean: dict[str, Any]) -> dict[str, list[str]]:
    return _users(fields, clean)[1]


def _users(fields, clean: dict[str, Any]) -> tuple[dict[str, User], dict[str, list[str]]]:
    found, errors = {}, {}
    for f in fields:
        if not isinstance(f, UserRef) or f.name not in clean:
            continue
        user = user_named(clean[f.name])
        if user is None or not user.active:
            errors[f.name] = [f"{f.label}: no active user is called '{clean[f.name]}'"]
        elif f.role and user.role != f.role:
            errors[f.name] = [f"{f.label}: {user.username} is not a {f.role}"]
        else:
            found[f.name] = user
    return found, errors


def _refresh_derived(
    pathway: Pathway, history: History, now: datetime, state_before: str | None = None
) -> None:
    """Recompute what the pathway row keeps from its events (checked by `verify`)."""
    derive.apply(pathway, derive.derive_for(pathway, history, now), state_before)


def _append(
    pathway: Pathway,
    events: list[Event],
    *,
    trigger: str,
    from_state: str | None,
    occurred_at: datetime,
    actor,
    data: dict,
    request_id: str,
    now: datetime,
    amends: Event | None = None,
    voids: Event | None = None,
    flush: bool = True,
) -> Event:
    """Append the event and refresh the pathway row. ``flush=False`` leaves the INSERT
    (and the mapper hooks) to the caller's next flush: the CSV import's batches."""
    event = Event(
        pathway=pathway,
        seq=pathway.last_seq + 1,
        trigger=trigger,
        from_state=from_state,
        to_state=pathway.state,
        occurred_at=occurred_at,
        recorded_at=now,
        recorded_by_id=actor.id,
        data=data,
        request_id=request_id,
        amends_event_id=amends.id if amends else None,
        voids_event_id=voids.id if voids else None,
    )
    history = History.from_events([*events, event])
    _refresh_derived(pathway, history, now, from_state)
    counts.moved(db_session(), pathway, from_state, pathway.state)
    if from_state is not None:
        pathway.version = pathway.version + 1
    db_session().add(event)
    if not flush:
        return event
    try:
        db_session().flush()
    except (StaleDataError, IntegrityError) as exc:
        # Another writer got there first: the version or the seq was taken meanwhile. The
        # session must be rolled back before the pathway can be read again.
        raise ConcurrentWrite from exc
    return event


# -- the services -------------------------------------------------------------------


def open_pathway(
    actor,
    patient,
    *,
    request_id: str | None = None,
    now=None,
    flush: bool = True,
    confirm_another_pathway: bool = False,
    **fields,
) -> Pathway:
    """Open a pathway from a referral: the clock starts at ``referral_received_at``.
    A patient with an open pathway gets a second one only with ``confirm_another_pathway``
    (the person confirmed it). ``flush=False`` leaves the INSERTs to the caller's next
    flush (the CSV import)."""
    now = now or utcnow()
    check_may_register(actor, "open pathways")
    # An id made here cannot have been used: only a caller's id is looked up.
    earlier = _existing_request(request_id, None, d.OPEN_TRIGGER) if request_id else None
    request_id = request_id or new_request_id()
    if earlier is not None:
        if earlier.pathway.patient_id != patient.id:
            raise RequestIdReused(
                "This request id already opened another patient's pathway; send a new one."
            )
        return earlier.pathway
    errors: dict[str, list[str]] = {}
    clean: dict[str, Any] = {}
    try:
        clean = clean_fields(PATHWAY_FIELDS, fields)
    except DataError as exc:
        errors.update(exc.errors)
    received = clean.get("referral_received_at")
    if received is not None and received > now:
        errors["referral_received_at"] = [
            f"The referral cannot be received in the future (it is now {format_local(now)})"
        ]
    users, user_errors = _users(PATHWAY_FIELDS, clean)
    errors.update(user_errors)
    if confirm_another_pathway is not True and (open_one := _open_pathway_of(patient)):
        errors["confirm_another_pathway"] = [
            f"This patient already has an open pathway: #{open_one.id}, "
            f"{open_one.state_label}, referred {format_local(open_one.referral_received_at)}. "
            "Confirm that a second pathway is wanted, or record on that one."
        ]
    if errors:
        raise InvalidData(errors)
    clean.setdefault("referral_priority", default_priority(clean["urgency"]))
    clean.setdefault("team", teams.for_diagnosis(clean["diagnosis_category"]))
    pathway = Pathway(
        patient=patient,
        state=d.INITIAL_STATE,
        version=1,
        referral_received_at=clean["referral_received_at"],
        referral_source=clean["referral_source"],
        urgency=clean["urgency"],
        referral_priority=clean["referral_priority"],
        team=clean["team"],
        diagnosis_category=clean["diagnosis_category"],
        tumour_site=clean["tumour_site"],
        primary_cancer_site=clean["primary_cancer_site"],
        presenting_symptoms=clean.get("presenting_symptoms", []),
        lead_surgeon=users.get("lead_surgeon"),
        coordinator=users.get("coordinator"),
        opened_at=now,
        last_seq=0,
        recurrence_count=0,
    )
    db_session().add(pathway)
    data = {k: v for k, v in clean.items() if k != "referral_received_at"}
    _append(
        pathway,
        [],
        trigger=d.OPEN_TRIGGER,
        from_state=None,
        occurred_at=clean["referral_received_at"],
        actor=actor,
        data=data,
        request_id=request_id,
        now=now,
        flush=flush,
    )
    return pathway


def _open_pathway_of(patient) -> Pathway | None:
    if patient.id is None:
        return None
    return next((p for p in patient.pathways if p.closed_at is None), None)


def record(
    pathway: Pathway,
    trigger: str,
    data: dict | None,
    occurred_at,
    actor,
    expected_version: int,
    request_id: str,
    now: datetime | None = None,
) -> Recorded:
    """Record ``trigger`` on ``pathway``: validate, fire the machine, append, bump the version."""
    now = now or utcnow()
    # Who may, before anything else: a replayed request id shows nothing to a role that
    # could not have sent it.
    _check_step(trigger, actor)
    if (earlier := _earlier_or_current(pathway, trigger, request_id, expected_version)) is not None:
        return earlier
    _check_transition(pathway, trigger)
    events, history = _events_for_change(pathway)
    event = _record(pathway, events, history, trigger, data, occurred_at, actor, request_id, now)
    return Recorded(event, created=True)


def record_held(
    pathway: Pathway,
    events: list[Event],
    trigger: str,
    data: dict | None,
    occurred_at,
    actor,
    request_id: str,
    now: datetime | None = None,
    flush: bool = True,
) -> Event:
    """``record`` for a caller that holds the pathway's ``events`` and makes its own request
    ids: the CSV import, whose pathways no one else sees before its commit. Every check of
    ``record`` but the request-id lookup, the version and the re-reading of the events."""
    now = now or utcnow()
    _check_step(trigger, actor)
    _check_transition(pathway, trigger)
    history = History.from_events(events)
    return _record(
        pathway, events, history, trigger, data, occurred_at, actor, request_id, now, flush
    )


def _check_step(trigger: str, actor) -> None:
    if not d.is_step(trigger):
        raise TriggerNotAllowed(
            f"'{trigger}' is not a step of the pathway; the steps are: {', '.join(d.recordable())}."
        )
    _check_actor(actor, trigger)


def _check_transition(pathway: Pathway, trigger: str) -> None:
    if d.transition_for(trigger, pathway.state) is None:
        raise TriggerNotAllowed(
            f"'{d.label(trigger)}' cannot be recorded while the pathway is in "
            f"'{d.STATE_LABELS[pathway.state]}'."
        )


def _record(
    pathway, events, history, trigger, data, occurred_at, actor, request_id, now, flush=True
) -> Event:
    source = pathway.state
    data, extra = _extended(pathway, trigger, data, now)
    occurred_at, clean, errors = _time_and_data_errors(
        history, trigger, source, data, occurred_at, now
    )
    for name, messages in extra.items():
        errors.setdefault(name, []).extend(m for m in messages if m not in errors.get(name, []))
    if errors:
        raise InvalidData(errors)
    _resolve_users(all_fields_for(trigger, source), clean)
    guard_args = {"history": history, "data": clean, "occurred_at": occurred_at}
    refusal = not_allowed_reason(pathway, trigger, history, data=clean, occurred_at=occurred_at)
    if refusal:
        raise TriggerNotAllowed(refusal)
    if not machine.fire(pathway, trigger, **guard_args):  # pragma: no cover - guards agreed
        raise TriggerNotAllowed(f"'{d.label(trigger)}' was refused by the pathway rules.")
    if tags.NEW_EPISODE in d.tags_of(trigger, source):
        pathway.recurrence_count += 1
    event = _append(
        pathway,
        events,
        trigger=trigger,
        from_state=source,
        occurred_at=occurred_at,
        actor=actor,
        data=clean,
        request_id=request_id,
        now=now,
        flush=flush,
    )
    if tags.HANDOVER in d.tags_of(trigger, source):
        _hand_over(pathway, History.from_events([*events, event]))
    for follow_up in _FOLLOW_UPS.get(trigger, ()):
        follow_up(pathway, event, clean, now)
    if (consequence := d.follows(trigger, clean)) is not None:
        # Recorded with it, at the same time, in the same transaction: both or neither.
        _record(
            pathway,
            [*events, event],
            History.from_events([*events, event]),
            consequence,
            {"note": f"Recorded with '{d.label(trigger)}' (step {event.seq})."},
            occurred_at,
            actor,
            new_request_id(),
            now,
            flush,
        )
    return event


def _hand_over(pathway: Pathway, history: History) -> None:
    """The pathway's lead surgeon and coordinator follow the story: the referral's (as
    corrected), then each handover in the order they happened."""
    session = db_session()
    people = history.people()
    for role in ("lead_surgeon", "coordinator"):
        username, current = people.get(role), getattr(pathway, role)
        if username is None:
            if current is not None:
                setattr(pathway, role, None)  # removed from the referral, never handed over
            continue
        if current is None or current.username != username:
            with session.no_autoflush:  # the caller's flush writes the change (the import's)
                user = user_named(username)
            setattr(pathway, role, user)


def amend(
    pathway: Pathway,
    event_seq: int,
    changes: dict,
    reason: str,
    actor,
    expected_version: int,
    request_id: str,
    now: datetime | None = None,
) -> Recorded:
    """Correct an earlier event with a new event; the original stays as recorded.

    ``changes`` may correct any field of the step, when it happened (``occurred_at``; on
    the referral, ``referral_received_at``), and on the referral every referral field.
    The corrected history must still hold: every later step's time and guards are judged
    again, and a correction that would break one is refused, naming it."""
    now = now or utcnow()
    # Who may, before anything else: a replayed request id shows nothing to a role that
    # could not have sent it.
    _check_actor(actor, d.AMEND_TRIGGER)
    if (
        earlier := _earlier_or_current(pathway, d.AMEND_TRIGGER, request_id, expected_version)
    ) is not None:
        return earlier
    events, history = _events_for_change(pathway)
    try:
        header = clean_fields(
            all_fields_for(d.AMEND_TRIGGER, None), {"event_seq": event_seq, "reason": reason}
        )
    except DataError as exc:
        raise InvalidData(exc.errors) from None
    target = history.by_seq.get(header["event_seq"])
    if target is None or target not in amendable_steps(history):
        raise InvalidData(
            {
                "event_seq": [
                    f"Step {header['event_seq']} cannot be amended: choose a recorded step "
                    "that has not been voided"
                ]
            }
        )
    if not isinstance(changes, dict) or not changes:
        raise InvalidData({"changes": ["Give at least one corrected field"]})
    diff = _corrected(target, changes, now)
    if not diff:
        raise InvalidData({"changes": ["The corrected values are the same as the recorded ones"]})
    found: dict[str, list[str]] = {}
    for check in _CORRECTION_CHECKS.get(target.trigger, ()):
        diff, errors = check(pathway, dict(target.data), diff, now)
        for name, messages in errors.items():
            found.setdefault(f"changes.{name}", []).extend(messages)
    if found:
        raise InvalidData(found)
    data = {"event_seq": target.seq, "changes": diff, "reason": header["reason"]}
    corrected = History.from_events([*events, _Proposed(pathway.last_seq + 1, target, data)])
    if broken := timing.new_problems(history, corrected, now):
        key = next(
            (f"changes.{k}" for k in (OCCURRED_AT, REFERRAL_RECEIVED_AT) if k in diff), "changes"
        )
        raise InvalidData(
            {
                key: [
                    "This correction would leave later steps out of order or without what "
                    "they need, so it was not made: " + " | ".join(broken)
                ]
            }
        )
    _hand_over(pathway, corrected)
    event = _append(
        pathway,
        events,
        trigger=d.AMEND_TRIGGER,
        from_state=pathway.state,
        occurred_at=now,
        actor=actor,
        data=data,
        request_id=request_id,
        now=now,
        amends=target.event,
    )
    for corrected in _CORRECTED.get(target.trigger, ()):
        corrected(pathway, target.event, diff, now)
    return Recorded(event, created=True)


def _corrected(target: Step, changes: dict, now: datetime) -> dict:
    """The amendment's changes as stored (only what differs, a removed field as None), the
    people it names checked; InvalidData lists every problem at once."""
    referral = tags.OPENS in target.tags
    time_key = REFERRAL_RECEIVED_AT if referral else OCCURRED_AT
    before = {k: v for k, v in target.data.items() if k not in COMPUTED_KEYS}
    if referral:
        before.setdefault("referral_priority", default_priority(before.get("urgency")))
    before[time_key] = target.occurred_at
    merged = {k: v for k, v in {**before, **changes}.items() if v not in (None, "", [])}
    errors: dict[str, list[str]] = {}
    when = merged.pop(OCCURRED_AT, None) if not referral else None
    if not referral and time_key in changes:
        try:
            when = parse_datetime(when)
        except ValueError as exc:
            errors[f"changes.{OCCURRED_AT}"] = [f"When it happened {exc}"]
            when = None
    clean = None
    try:
        clean = validate_event_data(
            target.trigger, target.from_state, merged, when or target.occurred_at
        )
    except DataError as exc:
        # Named as the corrected fields, apart from the amendment's own event_seq and reason.
        errors.update({f"changes.{k}": v for k, v in exc.errors.items()})
    if referral and clean is not None:
        when = clean.pop(REFERRAL_RECEIVED_AT)
    if when is not None and when > now:
        errors[f"changes.{time_key}"] = [
            f"When it happened cannot be in the future (it is now {format_local(now)})"
        ]
    if errors:
        raise InvalidData(errors)
    recorded = {k: v for k, v in before.items() if k != time_key}
    diff = {k: v for k, v in clean.items() if recorded.get(k) != v}
    if referral and "referral_priority" not in target.data:
        # A referral recorded before it had a priority: the one it was given (from its
        # urgency) is written down, so correcting the urgency does not silently move it.
        diff["referral_priority"] = clean["referral_priority"]
    diff.update({k: None for k in recorded if k not in clean})
    if when != target.occurred_at:
        diff[time_key] = when.isoformat()
    # A person named in the record may have left since; only a changed name is checked.
    _resolve_users(
        all_fields_for(target.trigger, target.from_state),
        {k: v for k, v in diff.items() if v is not None},
    )
    return diff


@dataclass
class _Proposed:
    """An amendment not yet written, as ``History.from_events`` reads an event."""

    seq: int
    target: Step
    data: dict
    id = None
    trigger = d.AMEND_TRIGGER
    voids_event_id = None
    recorded_by_id = None

    def __post_init__(self):
        self.from_state = self.to_state = self.target.to_state
        self.occurred_at = self.recorded_at = self.target.occurred_at
        self.amends_event_id = self.target.event.id


def void_last_step(
    pathway: Pathway,
    reason: str,
    actor,
    expected_version: int,
    request_id: str,
    now: datetime | None = None,
) -> Recorded:
    """Undo the latest state change, returning the pathway to the state before it."""
    now = now or utcnow()
    # Who may, before anything else: a replayed request id shows nothing to a role that
    # could not have sent it.
    _check_actor(actor, d.VOID_TRIGGER)
    if (
        earlier := _earlier_or_current(pathway, d.VOID_TRIGGER, request_id, expected_version)
    ) is not None:
        return earlier
    try:
        clean = clean_fields(all_fields_for(d.VOID_TRIGGER, None), {"reason": reason})
    except DataError as exc:
        raise InvalidData(exc.errors) from None
    events, history = _events_for_change(pathway)
    refusal = _void_refusal(actor, history, now)
    if refusal is not None:
        raise refusal
    step = history.voidable_step()
    source = pathway.state
    pathway.state = step.from_state
    if tags.NEW_EPISODE in step.tags:
        pathway.recurrence_count -= 1
    data = {"event_seq": step.seq, "reason": clean["reason"]}
    event = _append(
        pathway,
        events,
        trigger=d.VOID_TRIGGER,
        from_state=source,
        occurred_at=now,
        actor=actor,
        data=data,
        request_id=request_id,
        now=now,
        voids=step.event,
    )
    return Recorded(event, created=True)


def refresh_targets(pathway: Pathway, now: datetime | None = None) -> None:
    """Recompute the stored next target (after the limits in configuration change)."""
    _refresh_derived(pathway, load_history(pathway), now or utcnow())


__all__ = [
    "PathwayError",
    "Recorded",
    "allowed_triggers",
    "amend",
    "load_history",
    "open_pathway",
    "record",
    "void_last_step",
    "with_scores",
]
