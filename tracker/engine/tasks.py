"""A pathway's tasks (next actions) and tracking note, read from its history.

A task is created by a step tagged ``task_added`` (what, owner, due date), may be given
a new owner or due date (``task_changed``) and is closed once, as done (``task_done``) or
cancelled (``task_cancelled``). The closing and changing steps name the task by its number:
the seq of the step that created it. The derivation writes these as ``pathway_task`` rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING

from tracker.engine import tags

if TYPE_CHECKING:
    from tracker.engine.history import History

OPEN, DONE, CANCELLED = "open", "done", "cancelled"
STATUSES = (OPEN, DONE, CANCELLED)
STATUS_LABELS = {OPEN: "Open", DONE: "Done", CANCELLED: "Cancelled"}
TASK_FIELD = "task"  # the field of the changing and closing steps that names the task


@dataclass
class Task:
    seq: int  # the step that created it; the task's number on its pathway
    what: str
    owner: str  # username
    due_on: date
    created_at: datetime
    created_by_id: int | None
    status: str = OPEN
    closed_seq: int | None = None
    closed_at: datetime | None = None
    closed_by_id: int | None = None
    close_note: str | None = None

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.status]


def read(history: History) -> list[Task]:
    """The pathway's tasks, in the order they were added, as the counting steps leave
    them (amendments applied, voided steps ignored), taken in the order recorded."""
    found: dict[int, Task] = {}
    for step in history.counting():
        step_tags = step.tags
        if tags.TASK_ADDED in step_tags:
            found[step.seq] = Task(
                seq=step.seq,
                what=step.data["what"],
                owner=step.data["owner"],
                due_on=date.fromisoformat(step.data["due_on"]),
                created_at=step.occurred_at,
                created_by_id=step.recorded_by_id,
            )
            continue
        task = found.get(step.data.get(TASK_FIELD))
        if task is None or task.status != OPEN:
            continue
        if tags.TASK_CHANGED in step_tags:
            task.owner = step.data.get("owner") or task.owner
            if step.data.get("due_on"):
                task.due_on = date.fromisoformat(step.data["due_on"])
        elif tags.TASK_DONE in step_tags or tags.TASK_CANCELLED in step_tags:
            task.status = DONE if tags.TASK_DONE in step_tags else CANCELLED
            task.closed_seq = step.seq
            task.closed_at = step.occurred_at
            task.closed_by_id = step.recorded_by_id
            task.close_note = step.data.get("reason") or step.data.get("note")
    return list(found.values())


def tracking_note(history: History) -> tuple[str | None, datetime | None]:
    """The latest tracking comment (by when it was written) and when, or (None, None)."""
    step = history.latest_tagged(tags.TRACKING_NOTE)
    return (step.data.get("note"), step.occurred_at) if step is not None else (None, None)
