"""Waiting-time clocks as data, computed from recorded event times only.

Each clock is one definition: its code and words, the pathways it applies to (by
urgency, with the limit for each), the tag of the step that starts it (or the start of
the episode) and the tag of the step that stops it. The pathway page, the worklist,
"This week", the reports and the API all read the results of these definitions: on the
page computed from the history, on lists and reports from the ``pathway_clock`` rows
that the derivation writes with every event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache

from tracker.core.clock import local_zone
from tracker.core.runtime import setting
from tracker.engine import tags
from tracker.engine.history import History

DAY = 24
EPISODE = "episode"  # a clock that starts with the episode (the referral, or a recurrence)


@dataclass(frozen=True)
class Clock:
    code: str
    label: str
    start: str  # EPISODE or a step tag: the first such step of the episode starts it
    stop: str  # the tag of the first step of the episode that stops it
    limits: dict[str, int]  # urgency -> limit in hours (PATHWAY.md's defaults)
    unit: str = "hours"  # how its wait is counted and shown: hours or days
    standard: str | None = None  # its name among the reports' standards, if reported
    # A clock per visit: started by each step tagged ``start`` that names its due date in
    # this field, stopped by the next such step.
    due_field: str | None = None


CLOCKS: tuple[Clock, ...] = (
    Clock(
        "mri",
        "MRI within 24 hours",
        EPISODE,
        tags.IMAGING_REPORTED,
        {"emergency": 24},
        standard="Emergency MRI within 24 hours",
    ),
    Clock(
        "treatment_plan",
        "Treatment plan within 24 hours of imaging",
        tags.IMAGING_REPORTED,
        tags.MDT_DECISION,
        {"emergency": 24},
        standard="Emergency plan within 24 hours of imaging",
    ),
    Clock(
        "treatment",
        "Treatment within 24 hours of the decision",
        tags.MDT_DECISION,
        tags.TREATMENT_STARTED,
        {"emergency": 24},
        standard="Emergency treatment within 24 hours of decision",
    ),
    Clock(
        "imaging_and_plan",
        "Imaging and plan",
        EPISODE,
        tags.MDT_DECISION,
        {"urgent": 7 * DAY},
        unit="days",
    ),
    Clock(
        "diagnosis",
        "Faster Diagnosis Standard",
        EPISODE,
        tags.MDT_DECISION,
        {"urgent": 28 * DAY, "routine": 28 * DAY},
        unit="days",
        standard="Faster Diagnosis Standard (28 days)",
    ),
    Clock(
        "decision_to_treatment",
        "Decision to treatment",
        tags.MDT_DECISION,
        tags.TREATMENT_STARTED,
        {"urgent": 31 * DAY, "routine": 31 * DAY},
        unit="days",
        standard="Decision to treatment (31 days)",
    ),
    Clock(
        "referral_to_treatment",
        "Referral to treatment",
        EPISODE,
        tags.TREATMENT_STARTED,
        {"urgent": 62 * DAY, "routine": 62 * DAY},
        unit="days",
        standard="Referral to treatment (62 days)",
    ),
    Clock(
        "follow_up",
        "Follow-up visit",
        tags.FOLLOW_UP_BOOKED,
        tags.FOLLOW_UP,
        {},
        unit="days",
        due_field="next_due",
    ),
)
BY_CODE: dict[str, Clock] = {c.code: c for c in CLOCKS}
LABELS: dict[str, str] = {c.code: c.label for c in CLOCKS}
STATUSES = ("pending", "due_soon", "breached", "met", "missed")
OPEN_STATUSES = ("pending", "due_soon", "breached")
# What a clock row keeps: "running" until it stops (its live status then depends on the
# time it is read: pending, due soon or breached), "met" or "missed" once decided.
STORED_STATUSES = ("running", "met", "missed")
DEFAULT_LIMITS: dict[tuple[str, str], int] = {
    (urgency, c.code): hours for c in CLOCKS for urgency, hours in c.limits.items()
}


@dataclass(frozen=True)
class Rules:
    limits: dict[tuple[str, str], timedelta]
    due_soon_fraction: float = 0.2

    def limit(self, urgency: str, code: str) -> timedelta | None:
        return self.limits.get((urgency, code))


@dataclass(frozen=True)
class ClockResult:
    code: str
    started_at: datetime
    due_at: datetime
    warn_at: datetime
    stopped_at: datetime | None
    status: str
    episode: int = 0

    @property
    def label(self) -> str:
        return LABELS[self.code]

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def stored_status(self) -> str:
        return "running" if self.is_open else self.status

    @property
    def wait(self) -> float | None:
        """Start to stop, in the clock's unit; None while it runs."""
        if self.stopped_at is None:
            return None
        hours = (self.stopped_at - self.started_at).total_seconds() / 3600
        return round(hours / 24 if BY_CODE[self.code].unit == "days" else hours, 2)


def parse_limits(text: str) -> dict[tuple[str, str], int]:
    """'urgency.clock=hours,...' -> {(urgency, clock): hours}; ValueError names a bad entry."""
    out = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, hours = item.partition("=")
        urgency, dot, code = key.strip().partition(".")
        if not sep or not dot or (urgency, code) not in DEFAULT_LIMITS:
            known = ", ".join(f"{u}.{c}" for u, c in DEFAULT_LIMITS)
            raise ValueError(
                f"TARGET_LIMITS entry {item!r}: use urgency.target=hours, one of {known}"
            )
        try:
            out[(urgency, code)] = int(hours)
        except ValueError:
            raise ValueError(
                f"TARGET_LIMITS entry {item!r}: hours must be a whole number"
            ) from None
    return out


@lru_cache(maxsize=16)
def rules_for(text: str, fraction: float) -> Rules:
    limits = {**DEFAULT_LIMITS, **parse_limits(text)}
    return Rules({k: timedelta(hours=h) for k, h in limits.items()}, fraction)


def rules() -> Rules:
    """The rules in force: the host's configuration, or the defaults outside one."""
    return rules_for(setting("TARGET_LIMITS", ""), setting("TARGET_DUE_SOON_FRACTION", 0.2))


def decide(
    due: datetime, warn: datetime, stop: datetime | None, now: datetime, closed_at
) -> str | None:
    """A clock's status at ``now``; None when the pathway closed before it was due."""
    if stop is not None:
        return "met" if stop <= due else "missed"
    if closed_at is not None:  # the pathway ended without this clock stopping
        return "missed" if closed_at > due else None
    if now > due:
        return "breached"
    if now >= warn:
        return "due_soon"
    return "pending"


def end_of_day(day: date) -> datetime:
    """The end of a local calendar day, in UTC."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=local_zone()).astimezone(UTC)


def compute(
    urgency: str,
    referral_received_at: datetime,
    history: History,
    now: datetime,
    closed_at: datetime | None = None,
    target_rules: Rules | None = None,
) -> list[ClockResult]:
    """Each clock that has started in the current episode, with its status at ``now``.
    ``urgency`` is the referral's; a later episode's is its own."""
    episodes = _episodes(urgency, referral_received_at, history)
    return _episode_clocks(history, now, closed_at, target_rules or rules(), episodes[-1])


def compute_all(
    urgency: str,
    referral_received_at: datetime,
    history: History,
    now: datetime,
    closed_at: datetime | None = None,
    target_rules: Rules | None = None,
) -> list[ClockResult]:
    """The clocks of every episode: an earlier episode's clocks keep their results, and one
    still running when the next episode began ends there (a follow-up visit is stopped by
    the recurrence; a target, as at a closing)."""
    target_rules = target_rules or rules()
    episodes = _episodes(urgency, referral_received_at, history)
    out = []
    for episode in episodes:
        out.extend(_episode_clocks(history, now, closed_at, target_rules, episode))
    return out


@dataclass(frozen=True)
class Episode:
    number: int
    since: int  # the seq that started it (0: the referral); its steps are recorded after
    started_at: datetime
    until: int | None  # the seq that started the next one
    ended_at: datetime | None  # when the next one started
    urgency: str


def _episodes(urgency: str, referral_received_at: datetime, history: History) -> list[Episode]:
    """The referral's episode and one per suspected recurrence, each with its own urgency
    (a recurrence recorded before episodes had their own takes the referral's)."""
    starts = [(0, referral_received_at, urgency)] + [
        (s.seq, s.occurred_at, s.data.get("urgency", urgency))
        for s in history.tagged(tags.NEW_EPISODE)
    ]
    out = []
    for i, (since, at, episode_urgency) in enumerate(starts):
        following = starts[i + 1] if i + 1 < len(starts) else None
        out.append(
            Episode(
                i,
                since,
                at,
                following[0] if following else None,
                following[1] if following else None,
                episode_urgency,
            )
        )
    return out


def _episode_clocks(
    history: History, now, closed_at, target_rules: Rules, episode: Episode
) -> list[ClockResult]:
    fraction = target_rules.due_soon_fraction
    # A clock still running when the next episode began ends there, as at a closing.
    ended = episode.ended_at if episode.until is not None else closed_at

    def first(tag: str) -> datetime | None:
        if tag == EPISODE:
            return episode.started_at
        step = history.first_tagged(tag, since=episode.since, until=episode.until)
        return step.occurred_at if step is not None else None

    out = []
    for clock in CLOCKS:
        if clock.due_field:
            out.extend(_per_visit(clock, history, now, closed_at, fraction, episode))
            continue
        limit = target_rules.limit(episode.urgency, clock.code)
        start = first(clock.start)
        if limit is None or start is None:
            continue
        due = start + limit
        warn = due - limit * fraction
        stop = first(clock.stop)
        status = decide(due, warn, stop, now, ended)
        if status:
            out.append(ClockResult(clock.code, start, due, warn, stop, status, episode.number))
    return out


def _per_visit(clock: Clock, history: History, now, closed_at, fraction, episode: Episode):
    """The last completed visit clock (met or missed) and the one running now.

    Each step that books the next visit (its date in ``due_field``) starts a clock that the
    next visit stops, or the next episode (a suspected recurrence brings the patient back);
    earlier completed ones are in the timeline.
    """

    def in_episode(step) -> bool:
        return step.seq > episode.since and (episode.until is None or step.seq < episode.until)

    def when(step):
        return (step.occurred_at, step.seq)

    bookings = sorted(
        (s for s in history.tagged(clock.start) if in_episode(s) and s.data.get(clock.due_field)),
        key=when,
    )
    visits = sorted((s for s in history.tagged(clock.stop) if in_episode(s)), key=when)
    out = []
    for i, booking in enumerate(bookings):
        rebooked = bookings[i + 1] if i + 1 < len(bookings) else None
        if rebooked is not None and rebooked.occurred_at == booking.occurred_at:
            continue  # a visit recorded again at the same time: the later one's clock counts
        following = next((v for v in visits if when(v) > when(booking)), None)
        stop = following.occurred_at if following else episode.ended_at
        due = end_of_day(date.fromisoformat(booking.data[clock.due_field]))
        warn = due - (due - booking.occurred_at) * fraction
        status = decide(due, warn, stop, now, closed_at)
        if status:
            out.append(
                ClockResult(
                    clock.code, booking.occurred_at, due, warn, stop, status, episode.number
                )
            )
    completed = [t for t in out if t.stopped_at is not None][-1:]
    running = [t for t in out if t.stopped_at is None]
    return completed + running


def due_day(code: str, due_at: datetime | None) -> date | None:
    """The local date a clock counted in whole days is due (a follow-up due on 12 Jan is due
    by the end of 12 Jan): shown as that date, never as midnight of the next."""
    if due_at is None or code not in BY_CODE or not BY_CODE[code].due_field:
        return None
    return (due_at - timedelta(microseconds=1)).astimezone(local_zone()).date()


def next_open(results: list[ClockResult]) -> ClockResult | None:
    """The open clock due first: what the worklist shows and sorts by."""
    open_ = [t for t in results if t.is_open]
    return min(open_, key=lambda t: t.due_at) if open_ else None


def status_at(due_at: datetime | None, warn_at: datetime | None, now: datetime) -> str | None:
    """The live status of a running clock (a stored next target or clock row) at ``now``."""
    if due_at is None:
        return None
    if now > due_at:
        return "breached"
    if warn_at is not None and now >= warn_at:
        return "due_soon"
    return "pending"
