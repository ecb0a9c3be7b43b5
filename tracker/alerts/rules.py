"""The alert rules: what is alertable now, read from the rows the derivation keeps.

Each rule returns :class:`Alert` values, one per event alerted (its ``key`` names the
event, so the same event found at every later run is recognised), with the users it
goes to. The rules read the ``pathway_clock`` rows, the MDT lists and the
``pathway_task`` rows, never the event log, and only open pathways. Running them twice,
or late, finds the same alerts: what was already raised is skipped by the services (the
notification's unique key).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from tracker.core.clock import format_local, local_date
from tracker.core.runtime import db_session
from tracker.engine.clocks import LABELS, due_day
from tracker.engine.models import Event, Pathway, PathwayClock, PathwayTask
from tracker.engine.tasks import OPEN
from tracker.mdt.models import MdtCase, MdtMeeting

# A clock that stopped after its due time (missed) while no run of the alerts saw it
# breached (the worker was down) is still alerted, if it stopped within this long.
MISSED_LOOKBACK = timedelta(days=7)
MDT_REVIEW = "mdt_review"


@dataclass(frozen=True)
class Alert:
    kind: str  # one of tracker.alerts.models.KINDS
    pathway_id: int
    key: str  # the event alerted, the same at every run
    detail: str  # in-app words; never emailed
    due_at: datetime | None
    recipients: tuple[int, ...]  # user ids


def _people(*ids: int | None) -> tuple[int, ...]:
    return tuple(dict.fromkeys(i for i in ids if i is not None))


def _clock_key(kind: str, clock: PathwayClock) -> str:
    return (
        f"{kind}:{clock.pathway_id}:{clock.episode}:{clock.clock}:{clock.started_at:%Y%m%dT%H%M%S}"
    )


def _due_words(clock: PathwayClock) -> str:
    """When the clock is due as people read it: by the end of a day (its date) for a clock
    counted in days, at its time for one counted in hours."""
    day = due_day(clock.clock, clock.due_at)
    return f"{day.day} {day:%b %Y}" if day else format_local(clock.due_at)


def _open_clocks():
    return (
        select(PathwayClock, Pathway.coordinator_id, Pathway.lead_surgeon_id)
        .join(Pathway, Pathway.id == PathwayClock.pathway_id)
        .where(Pathway.closed_at.is_(None), Pathway.in_error.is_(False))
    )


def clocks_due_soon(now: datetime) -> list[Alert]:
    """A running clock inside its due-soon window (warn_at to due_at), to the pathway's
    coordinator. A clock that is already breached when first seen gets the breach alert
    only."""
    query = _open_clocks().where(
        PathwayClock.status == "running",
        PathwayClock.warn_at <= now,
        PathwayClock.due_at >= now,
    )
    return [
        Alert(
            "due_soon",
            clock.pathway_id,
            _clock_key("due_soon", clock),
            f"{LABELS.get(clock.clock, clock.clock)}: due by {_due_words(clock)}",
            clock.due_at,
            _people(coordinator),
        )
        for clock, coordinator, _ in db_session().execute(query)
    ]


def clocks_breached(now: datetime) -> list[Alert]:
    """A running clock past its due time, or one that stopped late within MISSED_LOOKBACK
    (breached while no run saw it), to the coordinator and the lead surgeon."""
    running = (PathwayClock.status == "running") & (PathwayClock.due_at < now)
    missed = (PathwayClock.status == "missed") & (PathwayClock.stopped_at >= now - MISSED_LOOKBACK)
    query = _open_clocks().where(running | missed)
    return [
        Alert(
            "breached",
            clock.pathway_id,
            _clock_key("breached", clock),
            f"{LABELS.get(clock.clock, clock.clock)}: was due by {_due_words(clock)}",
            clock.due_at,
            _people(coordinator, surgeon),
        )
        for clock, coordinator, surgeon in db_session().execute(query)
    ]


def mdt_outcomes_outstanding(now: datetime) -> list[Alert]:
    """A pathway listed on an MDT meeting held yesterday or earlier (not cancelled) and
    still awaiting its outcome, to the coordinator.

    "Awaiting" without reading the history: the pathway is still in MDT review (an
    outcome moves it on), and this listing is its latest one and was made in this stay
    in MDT review (a listing from an earlier review, whose outcome was recorded, does
    not count)."""
    latest = select(func.max(MdtCase.id).label("id")).group_by(MdtCase.pathway_id).scalar_subquery()
    query = (
        select(MdtCase.id, MdtCase.pathway_id, MdtMeeting.meeting_date, Pathway.coordinator_id)
        .join(MdtMeeting, MdtMeeting.id == MdtCase.meeting_id)
        .join(Pathway, Pathway.id == MdtCase.pathway_id)
        .join(Event, Event.id == MdtCase.event_id)
        .where(
            MdtCase.id.in_(latest),
            MdtMeeting.meeting_date < local_date(now),
            MdtMeeting.status != "cancelled",
            Pathway.closed_at.is_(None),
            Pathway.in_error.is_(False),
            Pathway.state == MDT_REVIEW,
            Event.occurred_at >= Pathway.state_entered_at,
        )
    )
    return [
        Alert(
            "mdt_outcome",
            pathway_id,
            f"mdt_outcome:{case_id}",
            f"Listed for the MDT meeting of {meeting_date.day} {meeting_date:%b %Y}: "
            "no outcome recorded yet.",
            None,
            _people(coordinator),
        )
        for case_id, pathway_id, meeting_date, coordinator in db_session().execute(query)
    ]


def tasks_overdue(now: datetime) -> list[Alert]:
    """A pathway's open task (``pathway_task``) past its due date, to the task's owner:
    key ``task_overdue:<task id>:<due date>`` (a new due date is a new alert), only for
    open pathways. A task is due by the end of its day: overdue from the next local day
    on, so one due today is not. Done and cancelled tasks are never alerted."""
    query = (
        select(
            PathwayTask.id,
            PathwayTask.pathway_id,
            PathwayTask.what,
            PathwayTask.due_on,
            PathwayTask.owner_id,
        )
        .join(Pathway, Pathway.id == PathwayTask.pathway_id)
        .where(
            PathwayTask.status == OPEN,
            PathwayTask.due_on < local_date(now),
            Pathway.closed_at.is_(None),
            Pathway.in_error.is_(False),
        )
    )
    return [
        Alert(
            "task_overdue",
            pathway_id,
            f"task_overdue:{task_id}:{due_on.isoformat()}",
            f"Task '{what}': was due by {due_on.day} {due_on:%b %Y}",
            None,
            _people(owner),
        )
        for task_id, pathway_id, what, due_on, owner in db_session().execute(query)
    ]


RULES = (clocks_breached, clocks_due_soon, mdt_outcomes_outstanding, tasks_overdue)


def evaluate(now: datetime) -> list[Alert]:
    """Every alert the rules find at ``now``."""
    return [alert for rule in RULES for alert in rule(now)]
