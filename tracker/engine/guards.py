"""Guards: side-effect-free checks on the recorded history and this event's data.

Each guard carries the words of its refusal, so the step that uses it, the machine
that fires it and the message a person reads are one definition. A guard is called
with ``history`` (the recorded story), and for a real change ``data`` (the clean data
of this event) and ``occurred_at``; ``probe=True`` asks only what the recorded
history allows (a form not yet filled in).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from tracker.core.clock import local_date
from tracker.engine import tags


@dataclass(frozen=True)
class Guard:
    name: str
    check: Callable[..., bool]
    refusal: str

    def __call__(self, *, history, data=None, occurred_at=None, probe=False, **_) -> bool:
        return self.check(history=history, data=data, occurred_at=occurred_at, probe=probe)


def _reported_since_entry(tag: str):
    """A step with ``tag`` since the current state was entered, that had happened by the
    time of this event (a report dated after the request it allowed does not count)."""

    def check(*, history, occurred_at=None, probe=False, **_) -> bool:
        return any(
            tag in s.tags and (probe or occurred_at is None or s.occurred_at <= occurred_at)
            for s in history.since_entry()
        )

    return check


def _mdt_outcome(*, data, probe, **_) -> bool:
    """The MDT record travels on this event (validated by the data dictionary)."""
    if probe:
        return True
    return bool(data) and bool(data.get("rationale")) and len(data.get("disciplines", [])) >= 2


def _reason_given(*, data, probe, **_) -> bool:
    return probe or bool(data and data.get("reason"))


def _operation_details(*, data, probe, **_) -> bool:
    if probe:
        return True
    return bool(data) and bool(data.get("procedures")) and bool(data.get("approach"))


def _not_before_decision_to_operate(*, history, occurred_at, probe, **_) -> bool:
    decision = history.latest_tagged(tags.DECISION_SURGERY)
    if decision is None:
        return False
    if probe or occurred_at is None:
        return True
    meeting = date.fromisoformat(decision.data.get("meeting_date", "0001-01-01"))
    return occurred_at >= decision.occurred_at and local_date(occurred_at) >= meeting


def _follow_up_clear(*, history, occurred_at=None, probe=False, **_) -> bool:
    """From surveillance: the last follow-up shows no evidence of disease or stable disease."""
    entry = history.entry_step()  # the step into surveillance: this episode only
    by = None if probe else occurred_at
    follow_up = history.latest_tagged(tags.FOLLOW_UP, since=entry.seq if entry else 0, by=by)
    return follow_up is not None and follow_up.data.get("status") in ("ned", "stable")


def _told_cancer_ruled_out(*, history, data=None, occurred_at=None, probe=False, **_) -> bool:
    """The patient was told cancer is ruled out: recorded before, or carried on this step."""
    if not probe and data and data.get("outcome") == "cancer_ruled_out":
        return True
    told = history.latest_tagged(tags.DIAGNOSIS_COMMUNICATED, by=None if probe else occurred_at)
    return probe or (told is not None and told.data.get("outcome") == "cancer_ruled_out")


def _no_treatment_yet(*, history, occurred_at=None, probe=False, **_) -> bool:
    """No treatment has started in this episode (by the time of this step)."""
    since = history.latest_tagged(tags.NEW_EPISODE)
    started = history.first_tagged(tags.TREATMENT_STARTED, since=since.seq if since else 0)
    return started is None or (
        not probe and occurred_at is not None and started.occurred_at > occurred_at
    )


IMAGING_REPORTED = Guard(
    "imaging_reported",
    _reported_since_entry(tags.IMAGING_REPORTED),
    "no imaging study has been reported yet (by the time of this step): record the "
    "imaging report first",
)
BIOPSY_RECORDED = Guard(
    "biopsy_recorded",
    _reported_since_entry(tags.BIOPSY_RESULT),
    "no biopsy result has been recorded yet (by the time of this step): record the "
    "biopsy result first",
)
MDT_OUTCOME = Guard(
    "mdt_outcome",
    _mdt_outcome,
    "the MDT outcome (meeting date, disciplines, rationale) must come with it",
)
REASON_GIVEN = Guard("reason_given", _reason_given, "a reason must be given")
OPERATION_DETAILS = Guard(
    "operation_details",
    _operation_details,
    "the operation details (procedures and approach) must be given",
)
NOT_BEFORE_DECISION_TO_OPERATE = Guard(
    "not_before_mdt_decision",
    _not_before_decision_to_operate,
    "the operation cannot be dated before the MDT decision to operate",
)
TOLD_CANCER_RULED_OUT = Guard(
    "told_cancer_ruled_out",
    _told_cancer_ruled_out,
    "the patient must be told that cancer is ruled out: record 'Diagnosis communicated' "
    "first, or give what they were told and how on this step",
)
NO_TREATMENT_YET = Guard(
    "no_treatment_yet",
    _no_treatment_yet,
    "a referral can be upgraded only before the first treatment",
)
FOLLOW_UP_CLEAR = Guard(
    "follow_up_clear",
    _follow_up_clear,
    "the last follow-up must show no evidence of disease or stable disease "
    "before discharge from surveillance",
)
