"""A pathway's events read as a story: corrections applied, voids honoured.

Guards, targets, replay and the timeline all read the recorded events through
this one view, so an amended value or a voided step means the same everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tracker.engine import lesions as lesion_reading
from tracker.engine import steps as d
from tracker.engine import tags, teams
from tracker.engine import tasks as task_reading
from tracker.engine.fields import parse_datetime
from tracker.engine.machine import expected_destination

# The key of an amendment's changes that corrects when a step happened; on the referral
# (seq 1) its time is ``referral_received_at``, a field of its own.
OCCURRED_AT = "occurred_at"
REFERRAL_RECEIVED_AT = "referral_received_at"
EPISODE_KEYS = ("urgency", "referral_priority")  # what each episode has of its own


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
    original_occurred_at: datetime | None = None  # as first recorded, before corrections

    def __post_init__(self) -> None:
        if self.original_occurred_at is None:
            self.original_occurred_at = self.occurred_at

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
    """An event's data with an amendment's changes; a field set to None was removed. A
    corrected time is the step's, not its data's (see ``History``)."""
    merged = {**data, **changes}
    return {
        k: v
        for k, v in merged.items()
        if v is not None and k not in (OCCURRED_AT, REFERRAL_RECEIVED_AT)
    }


def corrected_time(step: Step, changes: dict[str, Any]) -> datetime | None:
    """The time an amendment's ``changes`` give ``step``, or None if they keep it."""
    key = REFERRAL_RECEIVED_AT if tags.OPENS in step.tags else OCCURRED_AT
    return parse_datetime(changes[key]) if changes.get(key) else None


class History:
    def __init__(self, steps: list[Step]):
        self.steps = steps
        self.by_seq = {s.seq: s for s in steps}
        for step in steps:
            if step.trigger == d.AMEND_TRIGGER and step.amends_seq in self.by_seq:
                target = self.by_seq[step.amends_seq]
                changes = step.data.get("changes", {})
                target.data = apply_changes(target.data, changes)
                target.occurred_at = corrected_time(target, changes) or target.occurred_at
                target.amended_by.append(step.seq)
            if step.trigger == d.VOID_TRIGGER and step.voids_seq in self.by_seq:
                self.by_seq[step.voids_seq].voided_by = step.seq
        self._by_tag: dict[str, list[Step]] | None = None
        self._lesions: list[lesion_reading.Lesion] | None = None

    def _tagged(self, tag: str) -> list[Step]:
        """The counting steps with ``tag``, in the order recorded. Pages ask this dozens of
        times of one history: the index is built at the first question."""
        if self._by_tag is None:
            index: dict[str, list[Step]] = {}
            for step in self.steps:
                if step.counts:
                    for each in step.tags:
                        index.setdefault(each, []).append(step)
            self._by_tag = index
        return self._by_tag.get(tag, [])

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

    def before(self, seq: int) -> History:
        """The story as it stood when step ``seq`` was recorded, read with today's
        corrections: the counting steps recorded before it (guards are judged on this)."""
        return History([s for s in self.steps if s.seq < seq and s.counts])

    def in_time_order(self) -> list[Step]:
        """The steps by when they happened, then by the order they were recorded."""
        return sorted(self.steps, key=lambda s: (s.occurred_at, s.seq))

    @property
    def referral(self) -> Step | None:
        return self.steps[0] if self.steps and tags.OPENS in self.steps[0].tags else None

    def referral_values(self) -> dict[str, Any]:
        """The referral as corrected: its fields, and when it was received."""
        referral = self.referral
        if referral is None:
            return {}
        return {**referral.data, REFERRAL_RECEIVED_AT: referral.occurred_at}

    def episode_values(self) -> dict[str, Any]:
        """The current episode's urgency and referral priority: the latest recurrence's,
        or the referral's (a recurrence recorded before episodes had their own: the
        referral's)."""
        values = {k: v for k, v in self.referral_values().items() if k in EPISODE_KEYS}
        for step in self.tagged(tags.NEW_EPISODE):
            values.update({k: v for k, v in step.data.items() if k in EPISODE_KEYS})
        return values

    def people(self) -> dict[str, str]:
        """Who leads and who coordinates now (usernames): the referral's as corrected, then
        each handover in the order they happened."""
        roles = ("lead_surgeon", "coordinator")
        values = {k: v for k, v in self.referral_values().items() if k in roles and v}
        for step in sorted(self.tagged(tags.HANDOVER), key=lambda s: (s.occurred_at, s.seq)):
            values.update({k: v for k, v in step.data.items() if k in roles and v})
        return values

    def team(self, diagnosis_category: str | None = None) -> str:
        """The team the pathway belongs to now: the referral's (as corrected; when it
        names none, the team of its diagnosis category), then each handover that moved it,
        in the order they happened."""
        referral = self.referral_values()
        team = referral.get("team") or teams.for_diagnosis(
            referral.get("diagnosis_category", diagnosis_category)
        )
        for step in sorted(self.tagged(tags.HANDOVER), key=lambda s: (s.occurred_at, s.seq)):
            team = step.data.get("team") or team
        return team

    def episode_of(self, step: Step) -> int:
        """The episode a step belongs to: 0 the referral's, n the n-th recurrence's."""
        return sum(1 for s in self.tagged(tags.NEW_EPISODE) if s.seq <= step.seq)

    def latest_with(self, key: str) -> Step | None:
        """The step that recorded the most recent value of a data field (by when it
        happened), or None."""
        found = [s for s in self.counting() if s.data.get(key) is not None]
        return max(found, key=lambda s: (s.occurred_at, s.seq), default=None)

    def last_sign_off(self) -> Step | None:
        for step in reversed(self.steps):
            if tags.SIGN_OFF in step.tags:
                return step
        return None

    def unreviewed(self) -> list[Step]:
        """The steps recorded after the last sign-off (a sign-off confirms what was recorded
        before it, whatever the dates): not yet reviewed by a surgeon. Tracking notes and
        tasks are the coordinators' administration, not care: they need no review."""
        signed = self.last_sign_off()
        after = signed.seq if signed else 0
        return [
            s
            for s in self.steps
            if s.seq > after and tags.SIGN_OFF not in s.tags and not tags.TRACKING & s.tags
        ]

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

    def latest_tagged(self, tag: str, since: int = 0, by: datetime | None = None) -> Step | None:
        """The step with ``tag`` that happened last among those recorded after ``since``
        (and, given ``by``, that had happened by then)."""
        found = [
            s for s in self._tagged(tag) if s.seq > since and (by is None or s.occurred_at <= by)
        ]
        return max(found, key=lambda s: (s.occurred_at, s.seq), default=None)

    def first_tagged(self, tag: str, since: int = 0, until: int | None = None) -> Step | None:
        """The step with ``tag`` that happened first among those recorded after ``since``
        (and before ``until``): a step entered late but dated earlier comes first."""
        found = [s for s in self._tagged(tag) if s.seq > since and (until is None or s.seq < until)]
        return min(found, key=lambda s: (s.occurred_at, s.seq), default=None)

    def tagged(self, tag: str, since: int = 0) -> list[Step]:
        return [s for s in self._tagged(tag) if s.seq > since]

    def latest_value(self, key: str) -> Any:
        """The most recent value recorded for a data field (ASIA, SINS total, ...), or None."""
        step = self.latest_with(key)
        return step.data[key] if step is not None else None

    def lesions(self) -> list[lesion_reading.Lesion]:
        """The pathway's lesions, each with its dated findings and scores and the steps that
        name it (see ``tracker.engine.lesions``). Worked out once per history: every
        caller gets the same list, to read."""
        if self._lesions is None:
            self._lesions = lesion_reading.lesions(self)
        return self._lesions

    def tasks(self) -> list[task_reading.Task]:
        """The pathway's tasks with their status (see ``tracker.engine.tasks``)."""
        return task_reading.read(self)

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
