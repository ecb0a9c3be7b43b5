"""Record tracking notes and tasks, and the checks the engine cannot make alone.

Every function records one step through ``tracker.engine.services.record`` (validated,
audited, chained, derived in the same transaction) and returns its ``Recorded``; none
commits. ``expected_version`` None means "the version the caller holds now": pass the
version the person saw to have a concurrent change refused ("changed since you opened
it"), as the forms and the API do.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select

from tracker.core.clock import local_date
from tracker.core.db import utcnow
from tracker.core.runtime import db_session
from tracker.engine import services as engine
from tracker.engine import steps as d
from tracker.engine import teams
from tracker.engine.fields import blank
from tracker.engine.models import Pathway, PathwayTask
from tracker.engine.tasks import OPEN
from tracker.teams.models import UserTeam
from tracker.users.models import User, user_named
from tracker.users.roles import CLINICAL


def _record(pathway, trigger, data, actor, expected_version, request_id, occurred_at, now):
    now = now or utcnow()
    return engine.record(
        pathway,
        trigger,
        {k: v for k, v in data.items() if not blank(v)},
        occurred_at or now,
        actor,
        pathway.version if expected_version is None else expected_version,
        request_id or engine.new_request_id(),
        now,
    )


def add_task(
    pathway: Pathway,
    what: str,
    owner: str,
    due_on: date | str,
    actor,
    *,
    note: str | None = None,
    expected_version: int | None = None,
    request_id: str | None = None,
    occurred_at: datetime | None = None,
    now: datetime | None = None,
) -> engine.Recorded:
    """Add a task to ``pathway``: ``what`` needs doing (at most 200 characters), by
    ``owner`` (a username: an active coordinator or surgeon who can see the pathway's team),
    by ``due_on`` (a date or YYYY-MM-DD, not before today). Records an ``add_task`` step;
    the derivation writes its ``pathway_task`` row (number = the step's seq) in the same
    transaction. Refusals raise ``InvalidData`` naming the field; nothing is written."""
    due = due_on.isoformat() if isinstance(due_on, date) else due_on
    data = {"what": what, "owner": owner, "due_on": due, "note": note}
    return _record(
        pathway, d.ADD_TASK_TRIGGER, data, actor, expected_version, request_id, occurred_at, now
    )


def update_task(
    pathway: Pathway,
    number: int,
    actor,
    *,
    owner: str | None = None,
    due_on: date | str | None = None,
    note: str | None = None,
    expected_version: int | None = None,
    request_id: str | None = None,
    occurred_at: datetime | None = None,
    now: datetime | None = None,
) -> engine.Recorded:
    """Give open task ``number`` of ``pathway`` a new owner and/or due date."""
    due = due_on.isoformat() if isinstance(due_on, date) else due_on
    data = {"task": number, "owner": owner, "due_on": due, "note": note}
    return _record(
        pathway, d.UPDATE_TASK_TRIGGER, data, actor, expected_version, request_id, occurred_at, now
    )


def complete_task(
    pathway: Pathway,
    number: int,
    actor,
    *,
    note: str | None = None,
    expected_version: int | None = None,
    request_id: str | None = None,
    occurred_at: datetime | None = None,
    now: datetime | None = None,
) -> engine.Recorded:
    """Mark open task ``number`` of ``pathway`` done."""
    data = {"task": number, "note": note}
    return _record(
        pathway,
        d.COMPLETE_TASK_TRIGGER,
        data,
        actor,
        expected_version,
        request_id,
        occurred_at,
        now,
    )


def cancel_task(
    pathway: Pathway,
    number: int,
    reason: str,
    actor,
    *,
    expected_version: int | None = None,
    request_id: str | None = None,
    occurred_at: datetime | None = None,
    now: datetime | None = None,
) -> engine.Recorded:
    """Cancel open task ``number`` of ``pathway``, saying why (at most 280 characters)."""
    data = {"task": number, "reason": reason}
    return _record(
        pathway, d.CANCEL_TASK_TRIGGER, data, actor, expected_version, request_id, occurred_at, now
    )


def add_tracking_note(
    pathway: Pathway,
    text: str,
    actor,
    *,
    expected_version: int | None = None,
    request_id: str | None = None,
    occurred_at: datetime | None = None,
    now: datetime | None = None,
) -> engine.Recorded:
    """Write the pathway's tracking comment (at most 280 characters); the latest is shown
    on the worklist and the PTL."""
    return _record(
        pathway,
        d.TRACKING_NOTE_TRIGGER,
        {"note": text},
        actor,
        expected_version,
        request_id,
        occurred_at,
        now,
    )


# -- reading ------------------------------------------------------------------------------


def task_by_id(pathway: Pathway, task_id: int) -> PathwayTask | None:
    """Task row ``task_id`` if it is one of ``pathway``'s (another pathway's: None)."""
    if not 0 < task_id < 2**31:
        return None
    return db_session().scalar(
        select(PathwayTask).where(PathwayTask.id == task_id, PathwayTask.pathway_id == pathway.id)
    )


def tasks_of(pathway: Pathway) -> list[PathwayTask]:
    """The pathway's tasks: open ones first by due date, then the closed, latest first."""
    rows = list(
        db_session().scalars(select(PathwayTask).where(PathwayTask.pathway_id == pathway.id))
    )
    open_ = sorted((t for t in rows if t.status == OPEN), key=lambda t: (t.due_on, t.seq))
    closed = sorted((t for t in rows if t.status != OPEN), key=lambda t: -(t.closed_seq or 0))
    return [*open_, *closed]


# -- the checks the engine cannot make ------------------------------------------------------


def _owner_check(pathway: Pathway, data, now: datetime):
    """The owner is a coordinator or surgeon of the pathway's team; the due date is not
    before today (the engine checks it against the day the step happened)."""
    data = dict(data or {})
    errors: dict[str, list[str]] = {}
    due = data.get("due_on")
    if isinstance(due, str):
        try:
            day = date.fromisoformat(due.strip())
        except ValueError:
            day = None  # the field's own check says what is wrong
        if day is not None and day < local_date(now):
            errors["due_on"] = [
                f"The due date {day:%d %b %Y} is in the past: give today or a later date"
            ]
    errors.update(_owner_errors(pathway, data.get("owner")))
    return data, errors


def _owner_errors(pathway: Pathway, owner) -> dict[str, list[str]]:
    """The owner named is a coordinator or surgeon of the pathway's team (an unknown or
    inactive one is the field's own check)."""
    if not isinstance(owner, str) or not owner.strip():
        return {}
    user = user_named(owner.strip())
    if user is None or not user.active:
        return {}
    if user.role not in CLINICAL:
        return {
            "owner": [
                f"Owner: {user.display_name} is not a coordinator or surgeon; give the "
                "task to someone who records care"
            ]
        }
    if not _in_team(user, pathway.team):
        return {
            "owner": [
                f"Owner: {user.display_name} is not in {teams.label(pathway.team)}, which "
                "cares for this patient, so cannot see the pathway; choose someone in "
                "that team, or ask an administrator to add them to it"
            ]
        }
    return {}


def _corrected_owner_check(pathway: Pathway, data: dict, changes: dict, now: datetime):
    """A correction that gives a task to another owner: the same rule as a new task. Its
    due date is not held to today or later: a correction says what was agreed then."""
    return changes, _owner_errors(pathway, changes.get("owner"))


def _in_team(user: User, team: str) -> bool:
    return (
        db_session().scalar(
            select(UserTeam.user_id).where(UserTeam.user_id == user.id, UserTeam.team == team)
        )
        is not None
    )


for _trigger in (d.ADD_TASK_TRIGGER, d.UPDATE_TASK_TRIGGER):
    engine.extend(_trigger, check=_owner_check, correction_check=_corrected_owner_check)
