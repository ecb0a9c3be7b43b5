"""A pathway's events read as a story: corrections applied, voids honoured.

Guards, targets, replay and the timeline all read the recorded events through
this one view, so an amended value or a voided step means the same everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tracker.engine import steps as d
from tracker.engine import tags
from tracker.engine.machine import expected_destination


@dataclass
class Step:
    """One event with its effective data (amendments applied)."""

    seq: int
    trigger: str
    from_state: str | None
    to_state: str
    occurred_at: datetime
    data: dict[str, Any]
    original: dict[str, Any]
    recorded_at: datetime | None = None
    recorded_by_id: int | None = None
    amends_seq: int | None = None
    voids_seq: int | None = None
    voided_by: int | None = None  # seq of the void event
    amended_by: list[int] = field(default_factory=list)
    event: Any = None  # the Event row, when built from rows

    @property
    def changes_state(self) -> bool:
        return d.changes_state(self.trigger)

    @property
    def tags(self) -> frozenset[str]:
        """The registry's tags of this step, as taken from its state."""
        return d.tags_of(self.trigger, self.from_state)

    @property
    def label(self) -> str:
        return d.label(self.trigger)

    @property
    def counts(self) -> bool:
        """Part of the clinical story: not voided and not a correction itself."""
        return self.voided_by is None and self.trigger not in d.CORRECTION_TRIGGERS


def apply_changes(data: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """An event's data with an amendment's changes; a field set to None was removed."""
    merged = {**data, **changes}
    return {k: v for k, v in merged.items() if v is not None}


class History:
    def __init__(self, steps: list[Step]):
        self.steps = steps
        self.by_seq = {s.seq: s for s in steps}
        for step in steps:
            if step.trigger == d.AMEND_TRIGGER and step.amends_seq in self.by_seq:
                target = self.by_seq[step.amends_seq]
                target.data = apply_changes(target.data, step.data.get("changes", {}))
                target.amended_by.append(step.seq)
            if step.trigger == d.VOID_TRIGGER and step.voids_seq in self.by_seq:
                self.by_seq[step.voids_seq].voided_by = step.seq

    @classmethod
    def from_events(cls, events) -> History:
        id_to_seq = {e.id: e.seq for e in events if e.id is not None}
        steps = [
            Step(
                seq=e.seq,
                trigger=e.trigger,
                from_state=e.from_state,
                to_state=e.to_state,
                occurred_at=e.occurred_at,
                data=dict(e.data or {}),
                original=dict(e.data or {}),
                recorded_at=e.recorded_at,
                recorded_by_id=e.recorded_by_id,
                amends_seq=id_to_seq.get(e.amends_event_id),
                voids_seq=id_to_seq.get(e.voids_event_id),
                event=e,
            )
            for e in sorted(events, key=lambda e: e.seq)
        ]
        return cls(steps)

    # -- reading the story -------------------------------------------------

    @property
    def last_seq(self) -> int:
        return self.steps[-1].seq if self.steps else 0

    @property
    def last_occurred_at(self) -> datetime | None:
        """When the latest step of the clinical story happened.

        Voided steps and corrections (timed when they were made) are left out, so a
        step undone by mistake can be recorded again at the time it really happened.
        """
        return max((s.occurred_at for s in self.counting()), default=None)

    def counting(self) -> list[Step]:
        return [s for s in self.steps if s.counts]

    def entry_step(self) -> Step | None:
        """The counting step that brought the pathway into its current state."""
        for step in reversed(self.steps):
            if step.counts and (step.changes_state or step.trigger == d.OPEN_TRIGGER):
                return step
        return None

    def since_entry(self) -> list[Step]:
        entry = self.entry_step()
        start = entry.seq if entry else 0
        return [s for s in self.steps if s.seq > start and s.counts]

    def latest(self, *triggers: str, since: int = 0) -> Step | None:
        for step in reversed(self.steps):
            if step.seq > since and step.counts and step.trigger in triggers:
                return step
        return None

    def first(self, *triggers: str, since: int = 0) -> Step | None:
        for step in self.steps:
            if step.seq > since and step.counts and step.trigger in triggers:
                return step
        return None

    def latest_tagged(self, tag: str, since: int = 0) -> Step | None:
        for step in reversed(self.steps):
            if step.seq > since and step.counts and tag in step.tags:
                return step
        return None

    def first_tagged(self, tag: str, since: int = 0) -> Step | None:
        for step in self.steps:
            if step.seq > since and step.counts and tag in step.tags:
                return step
        return None

    def tagged(self, tag: str, since: int = 0) -> list[Step]:
        return [s for s in self.steps if s.seq > since and s.counts and tag in s.tags]

    def latest_value(self, key: str) -> Any:
        """The most recent value recorded for a data field (ASIA, SINS total, ...), or None."""
        for step in reversed(self.counting()):
            if step.data.get(key) is not None:
                return step.data[key]
        return None

    def mdt_outcomes(self) -> list[Step]:
        return self.tagged(tags.MDT_OUTCOME)

    def voidable_step(self) -> Step | None:
        """The latest state change still standing: what a void would undo."""
        for step in reversed(self.steps):
            if step.counts and step.changes_state:
                return step
        return None

    def replay(self) -> tuple[str | None, int]:
        """The state and recurrence count the events lead to, by the machine's rules.

        Raises ValueError naming the first event that does not follow.
        """
        state: str | None = None
        recurrences = 0
        stack: list[tuple[str, int]] = []  # (state before, recurrence count before)
        for step in self.steps:
            if step.trigger == d.OPEN_TRIGGER:
                if state is not None or step.to_state != d.INITIAL_STATE:
                    raise ValueError(f"event {step.seq}: open_pathway out of place")
                state = d.INITIAL_STATE
            elif step.trigger == d.AMEND_TRIGGER:
                pass
            elif step.trigger == d.VOID_TRIGGER:
                if not stack:
                    raise ValueError(f"event {step.seq}: void with no step to undo")
                state, recurrences = stack.pop()
            else:
                dest = expected_destination(step.trigger, state)
                if dest is None:
                    raise ValueError(
                        f"event {step.seq}: {step.trigger} is not allowed from {state}"
                    )
                if step.changes_state:
                    stack.append((state, recurrences))
                    if tags.NEW_EPISODE in step.tags:
                        recurrences += 1
                state = dest
            if step.to_state != state:
                raise ValueError(
                    f"event {step.seq}: recorded to_state {step.to_state}, replay gives {state}"
                )
        return state, recurrences
