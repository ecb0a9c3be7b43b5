"""What the pathway page's Tracking panel shows: the latest tracking note and the earlier
ones, the open tasks (overdue marked), and which tracking steps the user may record."""

from __future__ import annotations

from datetime import datetime

from tracker.core.clock import local_date
from tracker.engine import steps as d
from tracker.engine import tags
from tracker.engine.history import History
from tracker.engine.models import Pathway, PathwayTask
from tracker.engine.tasks import OPEN
from tracker.tracking.services import tasks_of


def tracking_triggers() -> frozenset[str]:
    """The steps the Tracking panel records (the Actions list leaves them to it)."""
    return frozenset().union(*(d.tagged(tag) for tag in tags.TRACKING))


def open_tasks(pathway: Pathway) -> list[PathwayTask]:
    return [t for t in tasks_of(pathway) if t.status == OPEN]


def _may(user, pathway: Pathway, trigger: str) -> bool:
    return d.role_may(getattr(user, "role", None), trigger) and (
        d.transition_for(trigger, pathway.state) is not None
    )


def build(pathway: Pathway, history: History, user, now: datetime) -> dict:
    tasks = tasks_of(pathway)
    notes = sorted(
        history.tagged(tags.TRACKING_NOTE), key=lambda s: (s.occurred_at, s.seq), reverse=True
    )
    return {
        "note": pathway.tracking_note,
        "note_at": pathway.tracking_note_at,
        "earlier_notes": notes[1:],
        "open": [t for t in tasks if t.status == OPEN],
        "closed": [t for t in tasks if t.status != OPEN],
        "today": local_date(now),
        "note_trigger": d.TRACKING_NOTE_TRIGGER,
        "add_trigger": d.ADD_TASK_TRIGGER,
        "done_trigger": d.COMPLETE_TASK_TRIGGER,
        "cancel_trigger": d.CANCEL_TASK_TRIGGER,
        "update_trigger": d.UPDATE_TASK_TRIGGER,
        "can_note": _may(user, pathway, d.TRACKING_NOTE_TRIGGER),
        "can_add": _may(user, pathway, d.ADD_TASK_TRIGGER),
        "can_close": _may(user, pathway, d.COMPLETE_TASK_TRIGGER),
        "can_update": _may(user, pathway, d.UPDATE_TASK_TRIGGER),
    }
