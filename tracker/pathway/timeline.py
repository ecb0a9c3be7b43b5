"""The pathway page's story: events in words, with corrections shown where they apply."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tracker.core.clock import format_local
from tracker.engine import steps as d
from tracker.engine import tags
from tracker.engine.dictionary import readable
from tracker.engine.fields import parse_datetime
from tracker.engine.history import OCCURRED_AT, REFERRAL_RECEIVED_AT, History, Step
from tracker.engine.steps import all_fields_for

LATE = timedelta(days=1)  # recorded this much after it happened: the timeline says so


@dataclass
class Entry:
    step: Step
    label: str
    since_previous: timedelta | None
    details: list[tuple[str, str]]
    original: list[tuple[str, str]] = field(default_factory=list)
    voided_reason: str | None = None
    voided_by: str | None = None
    note: str | None = None
    # Recorded more than a day after it happened: how much later (shown beside the step).
    recorded_later: timedelta | None = None

    @property
    def event(self):
        return self.step.event


def _who(step: Step | None) -> str:
    user = step.event.recorded_by if step is not None and step.event is not None else None
    return user.display_name if user is not None else "unknown"


def _correction_words(step: Step, history: History, names) -> list[tuple[str, str]]:
    target = history.by_seq.get(step.amends_seq or step.voids_seq)
    name = d.label(target.trigger) if target else "?"
    out = [("Step", f"{target.seq if target else '?'} · {name}")]
    if step.trigger == d.AMEND_TRIGGER and target is not None:
        fields = {f.name: f for f in all_fields_for(target.trigger, target.from_state)}
        for key, value in step.data.get("changes", {}).items():
            if key in (OCCURRED_AT, REFERRAL_RECEIVED_AT):
                words = "Referral received" if key == REFERRAL_RECEIVED_AT else "When it happened"
                out.append((words, format_local(parse_datetime(value))))
                continue
            f = fields.get(key)
            if f is None:
                continue
            shown = "removed" if value is None else readable([f], {key: value}, names)[0][1]
            out.append((f.label, shown))
    out.append(("Reason", step.data.get("reason", "")))
    return out


def entries(history: History, names: dict[str, str] | None = None) -> list[Entry]:
    """The timeline, in the order things happened (then the order they were recorded);
    ``names`` maps usernames in the data to the people's names."""
    out: list[Entry] = []
    previous: datetime | None = None
    for step in history.in_time_order():
        fields = all_fields_for(step.trigger, step.from_state)
        note = step.data.get("note") if tags.NOTE not in step.tags else None
        if step.trigger in d.CORRECTION_TRIGGERS:
            details = _correction_words(step, history, names)
        else:
            details = [
                (label, words)
                for label, words in readable(fields, step.data, names)
                if label != "Note" or tags.NOTE in step.tags
            ]
        entry = Entry(
            step=step,
            label=d.label(step.trigger),
            since_previous=(step.occurred_at - previous) if previous else None,
            details=details,
            note=note,
        )
        if step.recorded_at is not None and step.recorded_at - step.occurred_at > LATE:
            entry.recorded_later = step.recorded_at - step.occurred_at
        if step.amended_by:
            entry.original = [
                (label, words)
                for label, words in readable(fields, step.original, names)
                if (label, words) not in details
            ]
            if step.original_occurred_at != step.occurred_at:
                entry.original.append(("When it happened", format_local(step.original_occurred_at)))
        if step.voided_by is not None:
            void = history.by_seq[step.voided_by]
            entry.voided_reason = void.data.get("reason", "")
            entry.voided_by = _who(void)
        out.append(entry)
        if step.counts:
            previous = step.occurred_at
    return out


def recorder(entry: Entry) -> str:
    return _who(entry.step)
