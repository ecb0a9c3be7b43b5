"""When a step may be dated, and whether a corrected history still holds.

Care is recorded after the fact, so a step's ``occurred_at`` may be earlier than steps
recorded before it. PATHWAY.md's rule: not in the future, not before the referral, and
not before the state change that made the step possible. Records that keep the state
never block an earlier time. After a correction (a time, the referral) every later step
is judged again, on the story as it stood when it was recorded, read with the correction.
"""

from __future__ import annotations

from datetime import datetime

from tracker.core.clock import format_local
from tracker.engine import steps as d
from tracker.engine import tags
from tracker.engine.history import History, Step


def made_possible_by(history: History, trigger: str, source: str | None) -> Step | None:
    """The step that ``trigger`` from ``source`` cannot be dated before.

    A state change: the step that entered the current state. A record that keeps the
    state: the state change into the run of states it is allowed in (an assessment,
    allowed everywhere, is bound by the referral only; a complication by the operation),
    and never before the start of its episode (a suspected recurrence).
    """
    way = d.way(trigger, source)
    keeps_state = way is not None and way.dest is None
    for step in reversed(history.steps):
        if not step.counts:
            continue
        if tags.OPENS in step.tags or tags.NEW_EPISODE in step.tags:
            return step  # nothing of an episode is dated before it began
        if not step.changes_state:
            continue
        if keeps_state and step.from_state in way.sources:
            continue
        return step
    return None


def time_errors(
    history: History, trigger: str, source: str | None, occurred_at: datetime, now: datetime
) -> list[str]:
    """Why ``occurred_at`` cannot be the time of ``trigger`` recorded on ``history``."""
    if occurred_at > now:
        return [f"When it happened cannot be in the future (it is now {format_local(now)})"]
    referral = history.referral
    if referral is not None and occurred_at < referral.occurred_at:
        return [
            "When it happened cannot be before the referral was received "
            f"({format_local(referral.occurred_at)})"
        ]
    bound = made_possible_by(history, trigger, source)
    if bound is not None and bound is not referral and occurred_at < bound.occurred_at:
        return [
            f"When it happened cannot be before '{bound.label}' "
            f"({format_local(bound.occurred_at)}), the step that made this one possible"
        ]
    return []


def problems(history: History, now: datetime) -> dict[int, list[str]]:
    """Every recorded step that would not be allowed where it stands: its time, one of its
    guards or a value that names what was not recorded by then (a lesion), judged on the
    steps recorded before it. {seq: [why, ...]}."""
    out: dict[int, list[str]] = {}
    for step in history.steps:
        if not step.counts or tags.OPENS in step.tags:
            continue
        before = history.before(step.seq)
        found = time_errors(before, step.trigger, step.from_state, step.occurred_at, now)
        transition = d.transition_for(step.trigger, step.from_state)
        found += [
            why
            for messages in d.history_errors(
                step.trigger, step.from_state, step.data, before
            ).values()
            for why in messages
        ]
        if transition is not None:
            found += [
                guard.refusal
                for guard in transition.guards
                if not guard(history=before, data=step.data, occurred_at=step.occurred_at)
            ]
        if found:
            out[step.seq] = found
    return out


def new_problems(before: History, after: History, now: datetime) -> list[str]:
    """What a correction breaks: the problems of ``after`` that ``before`` did not have,
    one line per step, naming it."""
    had = problems(before, now)
    lines = []
    for seq, found in problems(after, now).items():
        fresh = [why for why in found if why not in had.get(seq, [])]
        if fresh:
            step = after.by_seq[seq]
            lines.append(
                f"step {seq} '{step.label}' ({format_local(step.occurred_at)}): " + "; ".join(fresh)
            )
    return lines
