"""Waiting-time clocks as data, computed from recorded event times only.

Two sets run at once (PATHWAY.md, "Targets"): the spinal cord compression clocks of
NICE NG234 / QS56, read from the episode's ``urgency``, and the national Cancer Waiting
Times standards, read from its ``referral_priority``. Each clock is one definition: its
code and words, when it applies, the moment that starts it and the moments that stop it
(each a tagged step, a test of its data, and the time it counts from), its limit and
unit, and the adjustments that act on it. The pathway page, the worklist, "This week",
the reports, the PTL and the return all read the results of these definitions: on the
page computed from the history, on lists and reports from the ``pathway_clock`` rows
that the derivation writes with every event.

Day clocks count calendar days in the hospital's time zone: wait = stop date - start
date - pause days; met when the wait is at most the limit; due at the end of the local
day start + limit (+ pause); breached from the next day. Hour clocks count to the minute.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache

from tracker.core.clock import local_date, local_zone
from tracker.core.runtime import setting
from tracker.engine import tags
from tracker.engine.dictionary import default_priority
from tracker.engine.history import History, Step

EPISODE = "episode"  # a clock that starts with the episode (the referral, or a recurrence)
HOURS, DAYS = "hours", "days"


# -- when things happened, as the clocks count them ------------------------------------------


def start_of_day(day: date) -> datetime:
    """The start of a local calendar day, in UTC."""
    return datetime.combine(day, time(0), tzinfo=local_zone()).astimezone(UTC)


def end_of_day(day: date) -> datetime:
    """The end of a local calendar day (the start of the next), in UTC."""
    return start_of_day(day + timedelta(days=1))


def treatment_start(step: Step) -> datetime:
    """When a treatment started: an operation when it happened; radiotherapy or systemic
    therapy on its ``start_date`` (at the time recorded if that was the same day, else the
    start of that day); anything else when it happened."""
    started = step.data.get("start_date")
    if not started:
        return step.occurred_at
    day = date.fromisoformat(started)
    return step.occurred_at if local_date(step.occurred_at) == day else start_of_day(day)


def _is_mri(step: Step) -> bool:
    """An MRI, or a CT standing for one because MRI is contraindicated."""
    modality = step.data.get("modality")
    return modality == "mri" or (modality == "ct" and step.data.get("mri_contraindicated") is True)


def _told(step: Step) -> bool:
    return bool(step.data.get("outcome"))


def _radiotherapy(step: Step) -> bool:
    return step.data.get("modality") in (None, "conventional_rt", "sbrt")


@dataclass(frozen=True)
class Moment:
    """The first step of an episode with ``tag`` (by when it counts) that ``where``
    accepts; it counts from ``at(step)`` (default: when it happened)."""

    tag: str
    where: Callable[[Step], bool] | None = None
    at: Callable[[Step], datetime] | None = None

    def steps(self, history: History, episode: Episode) -> list[tuple[datetime, Step]]:
        found = [
            ((self.at or _occurred)(s), s)
            for s in history.tagged(self.tag, since=episode.since)
            if (episode.until is None or s.seq < episode.until)
            and (self.where is None or self.where(s))
        ]
        found = _without_superseded_starts(found)
        return sorted(found, key=lambda pair: (pair[0], pair[1].seq))

    def first(self, history: History, episode: Episode, after: datetime | None = None):
        """(time, step) of the first such step (at or after ``after``), or None."""
        for at, step in self.steps(history, episode):
            if after is not None and at < after and _dated_only(step):
                # Only the day is known: a start on the clock's first day counts from then.
                at = after if local_date(at) >= local_date(after) else at
            if after is None or at >= after:
                return at, step
        return None


def _dated_only(step: Step) -> bool:
    """A treatment known by its start date alone (recorded on another day)."""
    started = step.data.get("start_date")
    return bool(started) and local_date(step.occurred_at) != date.fromisoformat(started)


def _occurred(step: Step) -> datetime:
    return step.occurred_at


def _without_superseded_starts(found):
    """'Start oncology treatment' counts only until the treatment itself is recorded with
    its start date."""
    if any(s.data.get("start_date") for _, s in found):
        return [
            (at, s)
            for at, s in found
            if s.data.get("start_date") or tags.ONCOLOGY_STARTED not in s.tags
        ]
    return found


MRI = Moment(tags.IMAGING_REPORTED, _is_mri)
MDT_OUTCOME = Moment(tags.MDT_OUTCOME)
MDT_DECISION = Moment(tags.MDT_DECISION)
AGREED = Moment(tags.DECISION_TO_TREAT)
TOLD = Moment(tags.DIAGNOSIS_COMMUNICATED, _told)
TREATMENT = Moment(tags.TREATMENT_STARTED, at=treatment_start)
OPERATION = Moment(tags.OPERATION)
RADIOTHERAPY = Moment(tags.ONCOLOGY_STARTED, _radiotherapy, at=treatment_start)
FOLLOW_UP = Moment(tags.FOLLOW_UP)

# Adjustments (record_adjustment kinds) and the clocks each acts on.
DNA = "dna_first_appointment"
DECLINED = "patient_declined_admission"
ECAD = "earliest_clinically_appropriate_date"
USC = ("urgent_suspected_cancer", "screening")


@dataclass(frozen=True)
class Episode:
    number: int
    since: int  # the seq that started it (0: the referral); its steps are recorded after
    started_at: datetime
    until: int | None  # the seq that started the next one
    ended_at: datetime | None  # when the next one started
    urgency: str
    priority: str
    upgraded: Step | None = None  # a consultant upgrade recorded in it

    @property
    def route(self) -> str:
        """The priority the returns report: an upgraded referral is a consultant upgrade."""
        return "consultant_upgrade" if self.upgraded is not None else self.priority

    def applies(self, clock: Clock) -> bool:
        if clock.urgencies and self.urgency not in clock.urgencies:
            return False
        if clock.priorities is None:
            return True
        if self.upgraded is not None:  # onto the 62-day standard, never the 28-day one
            return "consultant_upgrade" in clock.priorities
        return self.priority in clock.priorities


@dataclass(frozen=True)
class Clock:
    code: str
    label: str
    start: Moment | str  # EPISODE, or the moment that starts it
    stop: tuple[Moment, ...]  # the first of these stops it
    limit: int  # in ``unit``
    unit: str = DAYS
    urgencies: tuple[str, ...] = ()  # applies to these urgencies (empty: any)
    priorities: tuple[str, ...] | None = None  # applies to these priorities (None: any)
    # A clock the episode's first MDT decision must have chosen (radiotherapy, surgery).
    decision: str | None = None
    standard: str | None = None  # its name among the reports' standards, if reported
    threshold: int | None = None  # the national operational standard, in per cent
    local: bool = False  # a local target, not a national one
    restarted_by_dna: bool = False
    paused_by_declined_admission: bool = False
    # A clock per start: each later decision (subsequent_31) or each booked visit.
    each: bool = False
    due_field: str | None = None  # a visit clock: due at the end of this date field's day
    provisional_start: Moment | None = None  # counts from here until ``start`` is recorded


CLOCKS: tuple[Clock, ...] = (
    Clock(
        "mscc_mri",
        "MRI within 24 hours (suspected cord compression)",
        EPISODE,
        (MRI,),
        24,
        HOURS,
        urgencies=("emergency",),
        standard="MSCC: MRI within 24 hours",
    ),
    Clock(
        "mscc_plan",
        "Treatment plan within 24 hours of the MRI",
        MRI,
        (MDT_OUTCOME,),
        24,
        HOURS,
        urgencies=("emergency",),
        standard="MSCC: plan within 24 hours of the MRI",
    ),
    Clock(
        "mscc_radiotherapy",
        "Radiotherapy within 24 hours of the decision",
        MDT_DECISION,
        (RADIOTHERAPY,),
        24,
        HOURS,
        urgencies=("emergency",),
        decision=tags.DECISION_ONCOLOGY,
        standard="MSCC: radiotherapy within 24 hours",
    ),
    Clock(
        "mscc_surgery",
        "Surgery within 24 hours of the decision (local target)",
        MDT_DECISION,
        (OPERATION,),
        24,
        HOURS,
        urgencies=("emergency",),
        decision=tags.DECISION_SURGERY,
        local=True,
        standard="MSCC: surgery within 24 hours (local)",
    ),
    Clock(
        "spinal_mets_mri",
        "MRI within a week (suspected spinal metastases)",
        EPISODE,
        (MRI,),
        7,
        urgencies=("urgent",),
        standard="Spinal metastases: MRI within 7 days",
    ),
    Clock(
        "fds_28",
        "Faster Diagnosis Standard (28 days)",
        EPISODE,
        (TOLD, TREATMENT),
        28,
        priorities=USC,
        standard="Faster Diagnosis Standard (28 days)",
        threshold=80,
        restarted_by_dna=True,
    ),
    Clock(
        "dtt_31",
        "Decision to treatment (31 days)",
        AGREED,
        (TREATMENT,),
        31,
        standard="Decision to treatment (31 days)",
        threshold=96,
        paused_by_declined_admission=True,
        provisional_start=MDT_DECISION,
    ),
    Clock(
        "subsequent_31",
        "Subsequent treatment (31 days)",
        MDT_DECISION,
        (TREATMENT,),
        31,
        standard="Subsequent treatment (31 days)",
        threshold=96,
        paused_by_declined_admission=True,
        each=True,
    ),
    Clock(
        "rtt_62",
        "Referral to first treatment (62 days)",
        EPISODE,
        (TREATMENT,),
        62,
        priorities=(*USC, "consultant_upgrade"),
        standard="Referral to treatment (62 days)",
        threshold=85,
        restarted_by_dna=True,
        paused_by_declined_admission=True,
    ),
    Clock(
        "follow_up",
        "Follow-up visit",
        Moment(tags.FOLLOW_UP_BOOKED),
        (FOLLOW_UP,),
        0,
        each=True,
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
DEFAULT_LIMITS: dict[str, int] = {c.code: c.limit for c in CLOCKS if not c.due_field}


# -- the rules in force -----------------------------------------------------------------------


@dataclass(frozen=True)
class Rules:
    limits: dict[str, int]  # clock code -> limit in the clock's unit
    due_soon_fraction: float = 0.2

    def limit(self, code: str) -> int:
        return self.limits.get(code, BY_CODE[code].limit)


def parse_limits(text: str) -> dict[str, int]:
    """'clock=limit,...' (the limit in the clock's unit) -> {clock: limit}; ValueError names
    a bad entry."""
    out = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        code, sep, value = item.partition("=")
        code = code.strip()
        if not sep or code not in DEFAULT_LIMITS:
            known = ", ".join(f"{c}={v} ({BY_CODE[c].unit})" for c, v in DEFAULT_LIMITS.items())
            raise ValueError(f"TARGET_LIMITS entry {item!r}: use clock=limit, one of {known}")
        try:
            limit = int(value)
        except ValueError:
            raise ValueError(
                f"TARGET_LIMITS entry {item!r}: the limit must be a whole number"
            ) from None
        if limit < 0:
            raise ValueError(f"TARGET_LIMITS entry {item!r}: the limit cannot be negative")
        out[code] = limit
    return out


@lru_cache(maxsize=16)
def rules_for(text: str, fraction: float) -> Rules:
    return Rules({**DEFAULT_LIMITS, **parse_limits(text)}, fraction)


def rules() -> Rules:
    """The rules in force: the host's configuration, or the defaults outside one."""
    return rules_for(setting("TARGET_LIMITS", ""), setting("TARGET_DUE_SOON_FRACTION", 0.2))


# -- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClockResult:
    code: str
    started_at: datetime
    due_at: datetime
    warn_at: datetime
    stopped_at: datetime | None
    status: str
    episode: int = 0
    adjustment_days: int = 0  # days paused (a declined admission)
    limit: int = 0
    provisional: bool = False  # counted from the MDT decision until the plan is agreed
    restarted: bool = False  # restarted on a rebooked first appointment
    stop_seq: int | None = None  # the step that stopped it
    priority: str | None = None  # the episode's referral priority

    @property
    def clock(self) -> Clock:
        return BY_CODE[self.code]

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
        """Start to stop in the clock's unit (days: calendar days less any pause); None
        while it runs."""
        if self.stopped_at is None:
            return None
        return self.elapsed(self.stopped_at)

    def elapsed(self, at: datetime) -> float:
        if self.clock.unit == HOURS:
            minutes = (_minute(at) - _minute(self.started_at)).total_seconds() / 60
            return round(minutes / 60, 2)
        days = (local_date(at) - local_date(self.started_at)).days
        return days - self.adjustment_days

    def arithmetic(self, now: datetime) -> str:
        """The count in words, as a coordinator checks it: 'day 57 of 62: 65 calendar days
        - 8 days paused'."""
        clock = self.clock
        if clock.due_field:
            return ""
        at = self.stopped_at or now
        if clock.unit == HOURS:
            hours = self.elapsed(at)
            whole, minutes = int(hours), round((hours - int(hours)) * 60)
            words = f"{whole} h {minutes:02d} min of {self.limit} hours"
        else:
            days = (local_date(at) - local_date(self.started_at)).days
            words = f"day {days - self.adjustment_days} of {self.limit}"
            if self.adjustment_days:
                words += (
                    f": {days} calendar days - {self.adjustment_days} days paused "
                    "(patient declined an offered admission)"
                )
        notes = []
        if self.provisional:
            notes.append("counted from the MDT decision until the plan is agreed (provisional)")
        if self.restarted:
            notes.append("restarted on the rebooked first appointment")
        if clock.local:
            notes.append("local target")
        return words + (f"; {'; '.join(notes)}" if notes else "")


def _minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


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


# -- computing them ---------------------------------------------------------------------------


def compute(
    urgency: str,
    referral_received_at: datetime,
    history: History,
    now: datetime,
    closed_at: datetime | None = None,
    target_rules: Rules | None = None,
) -> list[ClockResult]:
    """Each clock that has started in the current episode, with its status at ``now``.
    ``urgency`` is the referral's when its record does not say; a later episode's is its
    own."""
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
    out = []
    for episode in _episodes(urgency, referral_received_at, history):
        out.extend(_episode_clocks(history, now, closed_at, target_rules, episode))
    return out


def of_current_episode(every: list[ClockResult], history: History) -> list[ClockResult]:
    """What `compute` gives, taken from what `compute_all` gave (the derivation needs
    both with every event: each episode's clocks are computed once)."""
    current = len(history.tagged(tags.NEW_EPISODE))  # episodes are numbered from 0
    return [result for result in every if result.episode == current]


def _episodes(urgency: str, referral_received_at: datetime, history: History) -> list[Episode]:
    """The referral's episode and one per suspected recurrence, each with its own urgency
    and referral priority (a recurrence recorded before episodes had their own takes the
    referral's)."""
    referral = history.referral_values()
    urgency = referral.get("urgency", urgency)
    priority = referral.get("referral_priority") or default_priority(urgency)
    starts = [(0, referral.get("referral_received_at", referral_received_at), urgency, priority)]
    for s in history.tagged(tags.NEW_EPISODE):
        own = s.data.get("urgency", urgency)
        starts.append((s.seq, s.occurred_at, own, s.data.get("referral_priority", priority)))
    out = []
    for i, (since, at, episode_urgency, episode_priority) in enumerate(starts):
        following = starts[i + 1] if i + 1 < len(starts) else None
        until = following[0] if following else None
        upgrades = [
            s for s in history.tagged(tags.UPGRADE, since=since) if until is None or s.seq < until
        ]
        out.append(
            Episode(
                i,
                since,
                at,
                until,
                following[1] if following else None,
                episode_urgency,
                episode_priority,
                upgrades[0] if upgrades else None,
            )
        )
    return out


def _in(episode: Episode, step: Step) -> bool:
    return step.seq > episode.since and (episode.until is None or step.seq < episode.until)


def _adjustments(history: History, episode: Episode, kind: str) -> list[Step]:
    return [
        s
        for s in history.tagged(tags.ADJUSTMENT, since=episode.since)
        if _in(episode, s) and s.data.get("kind") == kind
    ]


def _paused_days(history: History, episode: Episode, start: datetime, admitted: bool) -> int:
    """Days a declined admission paused the clock: from the offered date to the date the
    patient was available, for admitted treatment (surgery) only, within the clock."""
    if not admitted:
        return 0
    total = 0
    for s in _adjustments(history, episode, DECLINED):
        offered = date.fromisoformat(s.data["offered_date"])
        available = date.fromisoformat(s.data["available_from"])
        if offered >= local_date(start):
            total += (available - offered).days
    return total


def _episode_clocks(
    history: History, now, closed_at, target_rules: Rules, episode: Episode
) -> list[ClockResult]:
    # A clock still running when the next episode began ends there, as at a closing.
    ended = episode.ended_at if episode.until is not None else closed_at
    out = []
    for clock in CLOCKS:
        if not episode.applies(clock):
            continue
        if clock.due_field:
            out.extend(_per_visit(clock, history, now, closed_at, target_rules, episode))
        elif clock.each:
            out.extend(_subsequent(clock, history, now, ended, target_rules, episode))
        else:
            result = _single(clock, history, now, ended, target_rules, episode)
            if result is not None:
                out.append(result)
    return out


def _decided(history: History, episode: Episode, tag: str) -> bool:
    first = MDT_DECISION.first(history, episode)
    return first is not None and tag in first[1].tags


def _single(clock: Clock, history, now, ended, target_rules: Rules, episode: Episode):
    if clock.decision and not _decided(history, episode, clock.decision):
        return None
    provisional = restarted = False
    if clock.start == EPISODE:
        start = episode.started_at
        if episode.upgraded is not None and "consultant_upgrade" in (clock.priorities or ()):
            start = start_of_day(date.fromisoformat(episode.upgraded.data["upgraded_on"]))
    else:
        found = clock.start.first(history, episode)
        if found is None and clock.provisional_start is not None:
            found = clock.provisional_start.first(history, episode)
            provisional = found is not None
        if found is None:
            return None
        start = found[0]
    if clock.restarted_by_dna:
        rebooked = _adjustments(history, episode, DNA)
        if rebooked:
            start = start_of_day(date.fromisoformat(rebooked[-1].data["rebooked_on"]))
            restarted = True
    stops = [m.first(history, episode, after=start) for m in clock.stop]
    stops = [s for s in stops if s is not None]
    stop_at, stop_step = min(stops, key=lambda pair: pair[0]) if stops else (None, None)
    admitted = stop_step is not None and tags.OPERATION in stop_step.tags
    if stop_step is None:
        admitted = _decided(history, episode, tags.DECISION_SURGERY)
    paused = (
        _paused_days(history, episode, start, admitted) if clock.paused_by_declined_admission else 0
    )
    return _result(
        clock,
        target_rules,
        episode,
        start,
        stop_at,
        stop_step,
        now,
        ended,
        paused,
        provisional=provisional,
        restarted=restarted,
    )


def _result(
    clock: Clock,
    target_rules: Rules,
    episode: Episode,
    start: datetime,
    stop_at: datetime | None,
    stop_step: Step | None,
    now: datetime,
    ended: datetime | None,
    paused: int = 0,
    **flags,
) -> ClockResult | None:
    limit = target_rules.limit(clock.code)
    if clock.unit == HOURS:
        start = _minute(start)
        due = start + timedelta(hours=limit)
        stop = _minute(stop_at) if stop_at is not None else None
    else:
        due = end_of_day(local_date(start) + timedelta(days=limit + paused))
        # Met when the stop's local day is no later than the due day.
        stop = end_of_day(local_date(stop_at)) if stop_at is not None else None
    warn = due - (due - start) * target_rules.due_soon_fraction
    status = decide(due, warn, stop, now, ended)
    if status is None:
        return None
    return ClockResult(
        clock.code,
        start,
        due,
        warn,
        stop_at,
        status,
        episode.number,
        paused,
        limit,
        stop_seq=stop_step.seq if stop_step is not None else None,
        priority=episode.route,
        **flags,
    )


def _subsequent(clock: Clock, history, now, ended, target_rules: Rules, episode: Episode):
    """A clock for each decision to treat after the first treatment of the episode (after
    restaging, adjuvant therapy): from the plan agreed with the patient (until then, the MDT
    decision, provisionally), or its earliest clinically appropriate date, to the start of
    the next treatment."""
    first = TREATMENT.first(history, episode)
    if first is None:
        return []
    decisions = sorted(
        (
            (at, s, moment is AGREED)
            for moment in (MDT_DECISION, AGREED)
            for at, s in moment.steps(history, episode)
            if at > first[0]
        ),
        key=lambda item: (item[0], item[1].seq),
    )
    starts: list[list] = []  # [time, step, agreed]
    for at, step, agreed in decisions:
        previous = starts[-1] if starts else None
        treated_between = previous is not None and (
            (found := TREATMENT.first(history, episode, after=previous[0])) is not None
            and found[0] <= at
        )
        if agreed and previous is not None and not previous[2] and not treated_between:
            starts[-1] = [at, step, True]  # the plan the MDT decided, agreed with the patient
        else:
            starts.append([at, step, agreed])
    out = []
    for at, decision, agreed in starts:
        start = at
        for adjustment in _adjustments(history, episode, ECAD):
            if adjustment.occurred_at >= at:
                start = max(start, start_of_day(date.fromisoformat(adjustment.data["ecad"])))
        stop = TREATMENT.first(history, episode, after=at)
        stop_at, stop_step = stop if stop else (None, None)
        if stop_at is not None and stop_at < start:
            stop_at = start  # started on the earliest date it could
        admitted = (
            tags.OPERATION in stop_step.tags
            if stop_step is not None
            else tags.DECISION_SURGERY in decision.tags
        )
        paused = _paused_days(history, episode, start, admitted)
        result = _result(
            clock,
            target_rules,
            episode,
            start,
            stop_at,
            stop_step,
            now,
            ended,
            paused,
            provisional=not agreed,
        )
        if result is not None:
            out.append(result)
    return out


def _per_visit(clock: Clock, history: History, now, closed_at, target_rules: Rules, episode):
    """The last completed visit clock (met or missed) and the one running now.

    Each step that books the next visit (its date in ``due_field``) starts a clock that the
    next visit stops, or the next episode (a suspected recurrence brings the patient back);
    earlier completed ones are in the timeline.
    """

    def when(step):
        return (step.occurred_at, step.seq)

    # A booking or visit dated after the next episode began (a recurrence entered with an
    # earlier date) belongs to no visit clock of this episode.
    ended = episode.ended_at
    bookings = sorted(
        (
            s
            for s in history.tagged(clock.start.tag)
            if _in(episode, s)
            and s.data.get(clock.due_field)
            and (ended is None or s.occurred_at < ended)
        ),
        key=when,
    )
    visits = sorted((s for s in history.tagged(FOLLOW_UP.tag) if _in(episode, s)), key=when)
    out = []
    for i, booking in enumerate(bookings):
        rebooked = bookings[i + 1] if i + 1 < len(bookings) else None
        if rebooked is not None and rebooked.occurred_at == booking.occurred_at:
            continue  # a visit recorded again at the same time: the later one's clock counts
        following = next((v for v in visits if when(v) > when(booking)), None)
        stop = following.occurred_at if following else episode.ended_at
        due = end_of_day(date.fromisoformat(booking.data[clock.due_field]))
        warn = due - (due - booking.occurred_at) * target_rules.due_soon_fraction
        status = decide(due, warn, stop, now, closed_at)
        if status:
            out.append(
                ClockResult(
                    clock.code,
                    booking.occurred_at,
                    due,
                    warn,
                    stop,
                    status,
                    episode.number,
                    stop_seq=following.seq if following else None,
                    priority=episode.route,
                )
            )
    completed = [t for t in out if t.stopped_at is not None][-1:]
    running = [t for t in out if t.stopped_at is None]
    return completed + running


def due_day(code: str, due_at: datetime | None) -> date | None:
    """The local date a clock counted in whole days is due by (the end of that day): shown
    as that date, never as midnight of the next."""
    if due_at is None or code not in BY_CODE or BY_CODE[code].unit != DAYS:
        return None
    return (due_at - timedelta(microseconds=1)).astimezone(local_zone()).date()


def next_open(results: list[ClockResult]) -> ClockResult | None:
    """The open clock due first: what the worklist shows and sorts by."""
    open_ = [t for t in results if t.is_open]
    return min(open_, key=lambda t: t.due_at) if open_ else None


def countdown(code: str | None, due_at: datetime | None, now: datetime) -> str:
    """Where a running clock stands, read from its due time alone (a pathway's next target,
    a clock row): "day 57 of 62" for a clock counted in days (in local calendar days, the
    day it started day 0 and its due day the last, as the cancer waiting times count;
    past it, "day 65 of 62"), "7 h left" or "3 h over" for one counted in hours,
    "due in 4 days" or "2 days overdue" for a visit. Pauses and adjustments move the due
    time, so the count is the one the target is held to. "" with no clock running."""
    if not code or due_at is None or code not in BY_CODE:
        return ""
    clock = BY_CODE[code]
    left = due_at - now
    if clock.due_field:
        days = (due_day(code, due_at) - local_date(now)).days
        if days > 0:
            return f"due in {days} day{'s' if days != 1 else ''}"
        return "due today" if days == 0 else f"{-days} day{'s' if days != -1 else ''} overdue"
    if clock.unit == HOURS:
        hours = math.ceil(left.total_seconds() / 3600)
        return f"{hours} h left" if hours > 0 else f"{max(1, -hours)} h over"
    limit = rules().limit(code)
    return f"day {max(0, limit - (due_day(code, due_at) - local_date(now)).days)} of {limit}"


def status_at(due_at: datetime | None, warn_at: datetime | None, now: datetime) -> str | None:
    """The live status of a running clock (a stored next target or clock row) at ``now``."""
    if due_at is None:
        return None
    if now > due_at:
        return "breached"
    if warn_at is not None and now >= warn_at:
        return "due_soon"
    return "pending"
