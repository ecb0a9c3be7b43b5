"""What My work lists, each in one query of the derived rows (``pathway_task``,
``pathway_clock``, the pathway row), never the event log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import contains_eager

from tracker.engine import clocks
from tracker.engine.models import Pathway, PathwayClock, PathwayTask
from tracker.engine.tasks import OPEN
from tracker.extensions import db
from tracker.teams import scope

LIMIT = 200  # rows per list; the page says when a list was cut


def open_tasks(user, now: datetime) -> list[PathwayTask]:
    """``user``'s open tasks on open pathways they may see: overdue first (the oldest due
    date first), then by due date."""
    return list(
        db.session.scalars(
            select(PathwayTask)
            .join(PathwayTask.pathway)
            .where(
                PathwayTask.owner_id == user.id,
                PathwayTask.status == OPEN,
                Pathway.closed_at.is_(None),
                scope.pathways(user, now),
            )
            .order_by(PathwayTask.due_on, PathwayTask.pathway_id, PathwayTask.seq)
            .limit(LIMIT)
            .options(contains_eager(PathwayTask.pathway))
        )
    )


@dataclass(frozen=True)
class ClockRow:
    pathway: Pathway
    clock: PathwayClock
    status: str  # due_soon or breached, at the time of reading
    role: str  # "coordinator", "lead surgeon" or both


def clocks_due(user, now: datetime) -> list[ClockRow]:
    """The running clocks, due soon or breached at ``now``, of the open pathways ``user``
    coordinates or leads: the most overdue first."""
    rows = db.session.execute(
        select(PathwayClock, Pathway)
        .join(Pathway, PathwayClock.pathway_id == Pathway.id)
        .where(
            PathwayClock.status == "running",
            PathwayClock.warn_at <= now,
            Pathway.closed_at.is_(None),
            Pathway.in_error.is_(False),
            or_(Pathway.coordinator_id == user.id, Pathway.lead_surgeon_id == user.id),
            scope.pathways(user, now),
        )
        .order_by(PathwayClock.due_at, PathwayClock.id)
        .limit(LIMIT)
    ).all()
    out = []
    for clock, pathway in rows:
        roles = [
            words
            for words, person in (
                ("coordinator", pathway.coordinator_id),
                ("lead surgeon", pathway.lead_surgeon_id),
            )
            if person == user.id
        ]
        out.append(
            ClockRow(
                pathway,
                clock,
                clocks.status_at(clock.due_at, clock.warn_at, now),
                " and ".join(roles),
            )
        )
    return out


def awaiting_sign_off(user, now: datetime) -> list[Pathway]:
    """The pathways ``user`` leads with steps not yet reviewed (as tracker.review lists)."""
    return list(
        db.session.scalars(
            select(Pathway)
            .where(
                Pathway.lead_surgeon_id == user.id,
                Pathway.unreviewed_steps > 0,
                Pathway.in_error.is_(False),
                scope.pathways(user, now),
            )
            .order_by(Pathway.next_target_sort, Pathway.id)
            .limit(LIMIT)
        )
    )
