"""Waiting-time targets of PATHWAY.md, computed from recorded event times only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache

from flask import current_app, has_app_context

from tracker.core.clock import local_zone
from tracker.pathway import definition as d
from tracker.pathway.history import History

DAY = 24
# (urgency, target) -> limit in hours; PATHWAY.md's defaults, overridable in configuration.
DEFAULT_LIMITS: dict[tuple[str, str], int] = {
    ("emergency", "mri"): 24,
    ("emergency", "treatment_plan"): 24,
    ("emergency", "treatment"): 24,
    ("urgent", "imaging_and_plan"): 7 * DAY,
    ("urgent", "diagnosis"): 28 * DAY,
    ("urgent", "decision_to_treatment"): 31 * DAY,
    ("urgent", "referral_to_treatment"): 62 * DAY,
    ("routine", "diagnosis"): 28 * DAY,
    ("routine", "decision_to_treatment"): 31 * DAY,
    ("routine", "referral_to_treatment"): 62 * DAY,
}
TARGET_LABELS = {
    "mri": "MRI within 24 hours",
    "treatment_plan": "Treatment plan within 24 hours of imaging",
    "treatment": "Treatment within 24 hours of the decision",
    "imaging_and_plan": "Imaging and plan",
    "diagnosis": "Faster Diagnosis Standard",
    "decision_to_treatment": "Decision to treatment",
    "referral_to_treatment": "Referral to treatment",
    "follow_up": "Follow-up visit",
}
# Clock events. Treatment: the first definitive treatment, including palliative care and
# active surveillance when the MDT chose them (as cancer waiting-time rules count them).
IMAGING_REPORTED = ("record_imaging",)
TREATMENT_STARTED = (
    "record_surgery",
    "record_treatment",
    "start_oncology_treatment",
    "plan_palliative",
    "start_palliative_care",
    "plan_surveillance",
)
STATUSES = ("pending", "due_soon", "breached", "met", "missed")
OPEN_STATUSES = ("pending", "due_soon", "breached")


@dataclass(frozen=True)
class TargetRules:
    limits: dict[tuple[str, str], timedelta]
    due_soon_fraction: float = 0.2

    def limit(self, urgency: str, target: str) -> timedelta | None:
        return self.limits.get((urgency, target))


@dataclass(frozen=True)
class TargetStatus:
    code: str
    started_at: datetime
    due_at: datetime
    warn_at: datetime
    stopped_at: datetime | None
    status: str

    @property
    def label(self) -> str:
        return TARGET_LABELS[self.code]

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


def parse_limits(text: str) -> dict[tuple[str, str], int]:
    """'urgency.target=hours,...' -> {(urgency, target): hours}; ValueError names a bad entry."""
    out = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, hours = item.partition("=")
        urgency, dot, target = key.strip().partition(".")
        if not sep or not dot or (urgency, target) not in DEFAULT_LIMITS:
            known = ", ".join(f"{u}.{t}" for u, t in DEFAULT_LIMITS)
            raise ValueError(
                f"TARGET_LIMITS entry {item!r}: use urgency.target=hours, one of {known}"
            )
        try:
            out[(urgency, target)] = int(hours)
        except ValueError:
            raise ValueError(
                f"TARGET_LIMITS entry {item!r}: hours must be a whole number"
            ) from None
    return out


@lru_cache(maxsize=16)
def _rules(text: str, fraction: float) -> TargetRules:
    limits = {**DEFAULT_LIMITS, **parse_limits(text)}
    return TargetRules({k: timedelta(hours=h) for k, h in limits.items()}, fraction)


def rules() -> TargetRules:
    """The rules in force: the app's configuration, or the defaults outside an app."""
    if has_app_context():
        config = current_app.config
        return _rules(config.get("TARGET_LIMITS", ""), config.get("TARGET_DUE_SOON_FRACTION", 0.2))
    return _rules("", 0.2)


def _status(start, due, warn, stop, now, closed_at) -> str | None:
    if stop is not None:
        return "met" if stop <= due else "missed"
    if closed_at is not None:  # the pathway ended without this clock stopping
        return "missed" if closed_at > due else None
    if now > due:
        return "breached"
    if now >= warn:
        return "due_soon"
    return "pending"


def _end_of_day(day: date) -> datetime:
    """The end of a local calendar day, in UTC."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=local_zone()).astimezone(UTC)


def compute(
    urgency: str,
    referral_received_at: datetime,
    history: History,
    now: datetime,
    closed_at: datetime | None = None,
    target_rules: TargetRules | None = None,
) -> list[TargetStatus]:
    """Each target whose clock has started, with its status at ``now``."""
    target_rules = target_rules or rules()
    fraction = target_rules.due_soon_fraction
    # A recurrence starts a new episode: its clocks run from the suspected recurrence.
    recurrence = history.latest("suspect_recurrence")
    since = recurrence.seq if recurrence else 0
    episode_start = recurrence.occurred_at if recurrence else referral_received_at

    def at(step):
        return step.occurred_at if step else None

    imaging = at(history.first(*IMAGING_REPORTED, since=since))
    decision = at(history.first(*d.MDT_DECISIONS, since=since))
    treatment = at(history.first(*TREATMENT_STARTED, since=since))
    clocks = {
        "mri": (episode_start, imaging),
        "treatment_plan": (imaging, decision),
        "treatment": (decision, treatment),
        "imaging_and_plan": (episode_start, decision),
        "diagnosis": (episode_start, decision),
        "decision_to_treatment": (decision, treatment),
        "referral_to_treatment": (episode_start, treatment),
    }
    out = []
    for code, (start, stop) in clocks.items():
        limit = target_rules.limit(urgency, code)
        if limit is None or start is None:
            continue
        due = start + limit
        warn = due - limit * fraction
        status = _status(start, due, warn, stop, now, closed_at)
        if status:
            out.append(TargetStatus(code, start, due, warn, stop, status))
    out.extend(_follow_ups(history, now, closed_at, fraction))
    return out


def _follow_ups(history: History, now, closed_at, fraction) -> list[TargetStatus]:
    """The last completed follow-up clock (met or missed) and the one running now.

    Each follow-up with a "next visit due" date starts a clock that the next
    follow-up stops; earlier completed ones are in the timeline.
    """
    visits = [s for s in history.counting() if s.trigger == "record_follow_up"]
    out = []
    for i, visit in enumerate(visits):
        following = visits[i + 1] if i + 1 < len(visits) else None
        if not visit.data.get("next_due"):
            continue
        due = _end_of_day(date.fromisoformat(visit.data["next_due"]))
        warn = due - (due - visit.occurred_at) * fraction
        stop = following.occurred_at if following else None
        status = _status(visit.occurred_at, due, warn, stop, now, closed_at)
        if status:
            out.append(TargetStatus("follow_up", visit.occurred_at, due, warn, stop, status))
    completed = [t for t in out if t.stopped_at is not None][-1:]
    running = [t for t in out if t.stopped_at is None]
    return completed + running


def next_open(statuses: list[TargetStatus]) -> TargetStatus | None:
    """The open target due first: what the worklist shows and sorts by."""
    open_ = [t for t in statuses if t.is_open]
    return min(open_, key=lambda t: t.due_at) if open_ else None


def status_at(due_at: datetime | None, warn_at: datetime | None, now: datetime) -> str | None:
    """The status of a stored next target at ``now`` (same rule as ``compute``)."""
    if due_at is None:
        return None
    if now > due_at:
        return "breached"
    if warn_at is not None and now >= warn_at:
        return "due_soon"
    return "pending"
