"""Bulk actions on a selection of the worklist or the PTL: all or nothing.

An action (``Action``) records one step of the pathway on each selected pathway, through
the engine (``tracker.engine.services.record``), as recording it from the pathway's page
does: the same checks, one event (and its audit entry) per pathway. Its form's values
are checked once (``check``); ``data`` makes each pathway's step from them. Actions are
registered by code in ``ACTIONS``; another feature adds one with ``register`` (see
``docs/guide/views-and-bulk.md``, and the ones below).

Every selected row carries the version of the pathway as the list showed it. Before
anything is written, every pathway is checked: the reader may see it, it is at that
version, the step applies in its state and its data holds. Every problem is reported,
naming the patient, and nothing is written. The steps are then recorded in one
transaction (the request's; flush, never commit): a step refused then (a guard) refuses
the whole, and the transaction boundary rolls back what was written before it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from tracker.core.clock import format_local, local_date
from tracker.core.db import utcnow
from tracker.core.runtime import db_session
from tracker.engine import services as engine
from tracker.engine import steps as d
from tracker.engine import tags
from tracker.engine.errors import (
    ConcurrentWrite,
    InvalidData,
    PathwayError,
    RoleNotAllowed,
    StaleVersion,
)
from tracker.engine.models import Pathway
from tracker.mdt import services as mdt
from tracker.mdt.models import TRIAGE, MdtMeeting
from tracker.teams import scope
from tracker.users.models import user_named
from tracker.users.roles import CLINICAL, a_role

MAX_SELECTED = 200  # two worklist pages and more; a larger selection is refused
(HANDOVER,) = d.tagged(tags.HANDOVER)
LISTING = d.MDT_LISTING_TRIGGER
ADD_TASK = d.ADD_TASK_TRIGGER
# As long as the 'Add task' step's own field allows.
TASK_WHAT_LENGTH = next(f.max_length for f in d.fields_for(ADD_TASK, None) if f.name == "what")


# -- what is selected ---------------------------------------------------------------------


@dataclass(frozen=True)
class Selected:
    """A pathway as the list showed it: its id and its version then."""

    pathway_id: int
    version: int

    @property
    def token(self) -> str:
        return f"{self.pathway_id}:{self.version}"


def parse_selection(tokens: list[str]) -> list[Selected]:
    """The rows ticked ("id:version" each), in the order shown, each once. A token that
    is not two numbers is no pathway a list showed: the form is refused."""
    out: dict[int, Selected] = {}
    for token in tokens:
        ident, _, version = (token or "").partition(":")
        ok = all(p.isascii() and p.isdigit() and len(p) <= 9 for p in (ident, version))
        if not ok or int(ident) == 0:
            raise InvalidData(
                {"pathway": ["The selection is not one a list showed: open the list again"]}
            )
        out.setdefault(int(ident), Selected(int(ident), int(version)))
    return list(out.values())


# -- the actions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    code: str
    label: str  # what the list's action menu says
    trigger: str  # the step recorded on each pathway
    # The form's values -> (the clean values, {field: [what is wrong]}), once for all.
    check: Callable[[dict[str, Any], datetime], tuple[dict[str, Any], dict[str, list[str]]]]
    # The clean values and one pathway -> the step's data; None: nothing to do there.
    data: Callable[[dict[str, Any], Pathway], dict[str, Any] | None]
    # The clean values, how many pathways were changed -> the summary shown afterwards.
    summary: Callable[[dict[str, Any], int], str]
    # Why nothing was done on a pathway ``data`` skipped (the clean values -> words).
    skipped: Callable[[dict[str, Any]], str] = lambda values: "nothing to change"

    def may(self, user) -> bool:
        return d.role_may(getattr(user, "role", None), self.trigger)


ACTIONS: dict[str, Action] = {}


def register(action: Action) -> Action:
    ACTIONS[action.code] = action
    return action


def available(user) -> list[Action]:
    """The actions ``user`` may take, in the order registered."""
    if user is None or not getattr(user, "active", False):
        return []
    return [a for a in ACTIONS.values() if a.may(user)]


def _note(values: dict[str, Any], clean: dict[str, Any]) -> dict[str, list[str]]:
    note = (values.get("note") or "").strip()
    if len(note) > 2000:
        return {"note": ["The note is too long: at most 2000 characters"]}
    if note:
        clean["note"] = note
    return {}


def _with_note(data: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    return {**data, "note": values["note"]} if values.get("note") else data


def _person(role: str, what: str):
    """An action that hands ``role`` (lead_surgeon, coordinator) of each pathway to one
    person: the handover step, as the pathway's "Handover" form records it."""

    def check(values, now):
        clean: dict[str, Any] = {}
        errors = _note(values, clean)
        username = (values.get(role) or "").strip()
        user = None
        if username and len(username) <= 64:
            user = user_named(username)
        if not username:
            errors[role] = [f"Choose the new {what}"]
        elif user is None or not user.active:
            errors[role] = [f"No active user is called '{username[:40]}'"]
        elif user.role != _ROLE_OF[role]:
            errors[role] = [f"{user.display_name} is {a_role(user.role).lower()}, not a {what}"]
        else:
            clean[role] = user
        return clean, errors

    def data(values, pathway):
        if getattr(pathway, f"{role}_id") == values[role].id:
            return None  # already theirs
        return _with_note({role: values[role].username}, values)

    def summary(values, count):
        plural = "pathway" if count == 1 else "pathways"
        return f"{what.capitalize()} set to {values[role].display_name} on {count} {plural}."

    def skipped(values):
        return f"{values[role].display_name} is already the {what}"

    return check, data, summary, skipped


_ROLE_OF = {"lead_surgeon": "surgeon", "coordinator": "coordinator"}


def _meeting_check(values, now):
    clean: dict[str, Any] = {}
    errors = _note(values, clean)
    raw = str(values.get("meeting_id") or "").strip()
    meeting = None
    if raw.isascii() and raw.isdigit() and 0 < int(raw) < 2**31:
        meeting = db_session().get(MdtMeeting, int(raw))
    if not raw:
        errors["meeting_id"] = ["Choose the meeting"]
    elif meeting is None:
        errors["meeting_id"] = [f"There is no MDT meeting {raw[:20]}"]
    elif meeting.status != "scheduled" or mdt.starts_at(meeting) <= now:
        errors["meeting_id"] = ["That meeting is not ahead any more: choose another"]
    else:
        clean["meeting"] = meeting
    for name, message in (
        ("question", "Give the clinical question for the meeting"),
        ("presenter", "Choose who presents the cases"),
        ("triage", f"Choose the triage: {', '.join(TRIAGE.values())}"),
    ):
        value = (values.get(name) or "").strip()
        if not value:
            errors[name] = [message]
        else:
            clean[name] = value
    if clean.get("triage") and clean["triage"] not in TRIAGE:
        errors["triage"] = [f"Choose the triage: {', '.join(TRIAGE.values())}"]
    if (values.get("late_reason") or "").strip():
        clean["late_reason"] = values["late_reason"].strip()
    return clean, errors


def _meeting_data(values, pathway):
    data = {
        "meeting_id": values["meeting"].id,
        "question": values["question"],
        "presenter": values["presenter"],
        "triage": values["triage"],
    }
    if values.get("late_reason"):
        data["late_reason"] = values["late_reason"]
    return _with_note(data, values)


def meeting_words(meeting: MdtMeeting) -> str:
    return format_local(mdt.starts_at(meeting))


def _meeting_summary(values, count):
    plural = "pathway" if count == 1 else "pathways"
    return f"Listed {count} {plural} on the MDT meeting of {meeting_words(values['meeting'])}."


_check, _data, _summary, _skipped = _person("lead_surgeon", "lead surgeon")
register(
    Action("lead_surgeon", "Assign a lead surgeon", HANDOVER, _check, _data, _summary, _skipped)
)
_check, _data, _summary, _skipped = _person("coordinator", "coordinator")
register(Action("coordinator", "Assign a coordinator", HANDOVER, _check, _data, _summary, _skipped))
register(
    Action(
        "mdt", "List on an MDT meeting", LISTING, _meeting_check, _meeting_data, _meeting_summary
    )
)


def _task_check(values, now):
    """What needs doing (at most 200 characters), its owner (an active coordinator or
    surgeon: whether they are in each pathway's team is the step's own check) and the date
    it is due by (today or later, the hospital's day)."""
    clean: dict[str, Any] = {}
    errors = _note(values, clean)
    what = " ".join((values.get("what") or "").split())
    if not what:
        errors["what"] = ["Say what needs doing"]
    elif len(what) > TASK_WHAT_LENGTH:
        errors["what"] = [
            f"What needs doing is too long: at most {TASK_WHAT_LENGTH} characters "
            f"(it has {len(what)})"
        ]
    else:
        clean["what"] = what
    username = (values.get("owner") or "").strip()
    owner = None
    if username and len(username) <= 64:
        owner = user_named(username)
    if not username:
        errors["owner"] = ["Choose who the task is for: a coordinator or a surgeon"]
    elif owner is None or not owner.active:
        errors["owner"] = [f"No active user is called '{username[:40]}'"]
    elif owner.role not in CLINICAL:
        errors["owner"] = [
            f"{owner.display_name} is {a_role(owner.role).lower()}: give the task to a "
            "coordinator or a surgeon"
        ]
    else:
        clean["owner"] = owner
    raw = (values.get("due_on") or "").strip()
    due = None
    if raw.isascii() and len(raw) == 10:
        try:
            due = date.fromisoformat(raw)
        except ValueError:
            due = None
    if not raw:
        errors["due_on"] = ["Give the date the task is due by"]
    elif due is None:
        errors["due_on"] = [f"'{raw[:20]}' is not a date: give it as YYYY-MM-DD"]
    elif due < local_date(now):
        errors["due_on"] = [
            f"The due date {due:%d %b %Y} is in the past: give today or a later date"
        ]
    else:
        clean["due_on"] = due
    return clean, errors


def _task_data(values, pathway):
    data = {
        "what": values["what"],
        "owner": values["owner"].username,
        "due_on": values["due_on"].isoformat(),
    }
    return _with_note(data, values)


def _task_summary(values, count):
    plural = "pathway" if count == 1 else "pathways"
    return (
        f"Task '{values['what']}' added for {values['owner'].display_name} on {count} "
        f"{plural}, due by {values['due_on']:%d %b %Y}."
    )


register(Action("task", "Add a task", ADD_TASK, _task_check, _task_data, _task_summary))


# -- doing it -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    pathway_id: int
    patient: str | None  # the patient's name and MRN; None for one the reader may not see
    reason: str

    def __str__(self) -> str:
        who = self.patient or f"Pathway {self.pathway_id}"
        return f"{who}: {self.reason}"


class BulkRefused(PathwayError):
    """One or more selected pathways cannot take the action: nothing was changed."""

    def __init__(self, failures: list[Failure]):
        self.failures = failures
        count = len(failures)
        super().__init__(
            f"Nothing was changed: {count} of the selected pathway{'s' if count != 1 else ''} "
            "cannot take this action. " + " ".join(f"{f}." for f in failures)
        )


@dataclass(frozen=True)
class Done:
    action: Action
    changed: int  # steps recorded now
    skipped: list[Pathway]  # nothing to do there (already so)
    replayed: int  # recorded by this same form sent before (a double click, a refresh)
    summary: str


def who(pathway: Pathway) -> str:
    return f"{pathway.patient.name} (MRN {pathway.patient.mrn})"


def selected_pathways(selection: list[Selected], user, now: datetime) -> dict[int, Pathway]:
    """The selected pathways ``user`` may see, by id (one query; the others are absent)."""
    ids = [s.pathway_id for s in selection]
    if not ids:
        return {}
    rows = db_session().scalars(
        select(Pathway)
        .where(Pathway.id.in_(ids), scope.pathways(user, now))
        .options(joinedload(Pathway.patient))
    )
    return {p.id: p for p in rows}


def _request_id(request_id: str, pathway_id: int) -> str:
    return f"{request_id}-{pathway_id}"


def _messages(errors: dict[str, list[str]]) -> str:
    return "; ".join(m for messages in errors.values() for m in messages)


def check_action(code: str, actor) -> Action:
    action = ACTIONS.get(code or "")
    if action is None:
        choices = ", ".join(a.label for a in ACTIONS.values())
        raise InvalidData({"action": [f"Choose what to do: {choices}"]})
    if actor is None or not actor.active or not action.may(actor):
        raise RoleNotAllowed(
            f"{a_role(getattr(actor, 'role', None))} cannot {action.label.lower()}."
        )
    return action


def apply(
    code: str,
    values: dict[str, Any],
    selection: list[Selected],
    actor,
    request_id: str,
    now: datetime | None = None,
) -> Done:
    """Take action ``code`` with the form's ``values`` on every selected pathway, or on
    none: ``BulkRefused`` names each patient that cannot take it and why."""
    now = now or utcnow()
    action = check_action(code, actor)
    if not selection:
        raise InvalidData({"pathway": ["Tick at least one patient on the list"]})
    if len(selection) > MAX_SELECTED:
        raise InvalidData({"pathway": [f"Select at most {MAX_SELECTED} patients at once"]})
    if not request_id or len(request_id) > 40:
        raise InvalidData({"request_id": ["The form is incomplete: open it again from the list"]})
    clean, errors = action.check(values, now)
    if errors:
        raise InvalidData(errors)
    pathways = selected_pathways(selection, actor, now)
    failures: list[Failure] = []
    plan: list[tuple[Pathway, dict | None, str]] = []
    for chosen in selection:
        pathway = pathways.get(chosen.pathway_id)
        if pathway is None:
            # Nothing said of a pathway the reader may not see, not even whose it is.
            failures.append(Failure(chosen.pathway_id, None, "not found, or not in your teams"))
            continue
        rid = _request_id(request_id, pathway.id)
        if engine.recorded_with(rid) is not None:
            plan.append((pathway, {}, rid))  # this form, sent before: answered as then
            continue
        problem = _problem(action, clean, pathway, chosen, now)
        if problem:
            failures.append(Failure(pathway.id, who(pathway), problem))
        else:
            plan.append((pathway, action.data(clean, pathway), rid))
    if failures:
        raise BulkRefused(failures)
    changed, replayed, skipped = 0, 0, []
    for pathway, data, rid in plan:
        if data is None:
            skipped.append(pathway)
            continue
        try:
            result = engine.record(
                pathway, action.trigger, data, now, actor, pathway.version, rid, now
            )
        except ConcurrentWrite:
            raise  # the transaction boundary runs the request again, against the winner's
        except InvalidData as exc:
            raise BulkRefused([Failure(pathway.id, who(pathway), _messages(exc.errors))]) from exc
        except PathwayError as exc:
            raise BulkRefused([Failure(pathway.id, who(pathway), exc.message)]) from exc
        if result.created:
            changed += 1
        else:
            replayed += 1
    return Done(
        action, changed, skipped, replayed, _summary_of(action, clean, changed, replayed, skipped)
    )


def _problem(action: Action, clean, pathway: Pathway, chosen: Selected, now) -> str | None:
    """Why ``pathway`` cannot take the action now (nothing is written), or None."""
    if pathway.version != chosen.version:
        return StaleVersion(pathway.state, pathway.version).message
    if d.transition_for(action.trigger, pathway.state) is None:
        return (
            f"'{d.label(action.trigger)}' cannot be recorded while the pathway is in "
            f"'{d.STATE_LABELS[pathway.state]}'"
        )
    data = action.data(clean, pathway)
    if data is None:
        return None
    errors = engine.problems(pathway, action.trigger, data, now, now)
    return _messages(errors) if errors else None


def _summary_of(action: Action, clean, changed: int, replayed: int, skipped: list[Pathway]) -> str:
    if not changed and replayed:
        return "This was done already (the form was sent twice): nothing more was changed."
    words = action.summary(clean, changed)
    if skipped:
        names = ", ".join(p.patient.name for p in skipped)
        words += f" Left as they were ({action.skipped(clean)}): {names}."
    return words
