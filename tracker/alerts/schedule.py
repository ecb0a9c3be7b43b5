"""When email goes out: the daily digest's time and the quiet hours, in local time."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from tracker.core.clock import local_zone
from tracker.core.runtime import setting


class ScheduleError(ValueError):
    """A digest time or quiet hours setting that cannot be read; says how to write it."""


def parse_time(text: str, name: str) -> time:
    try:
        hours, minutes = (int(part) for part in text.strip().split(":"))
        return time(hours, minutes)
    except ValueError:
        raise ScheduleError(
            f"{name}={text!r} is not a time of day: write it as HH:MM, e.g. 07:30"
        ) from None


def parse_quiet_hours(text: str) -> tuple[time, time] | None:
    """'21:00-07:00' -> (start, end); empty: no quiet hours."""
    if not text.strip():
        return None
    start, sep, end = text.partition("-")
    if not sep:
        raise ScheduleError(
            f"ALERT_QUIET_HOURS={text!r}: write the start and end as HH:MM-HH:MM, e.g. "
            "21:00-07:00 (empty: no quiet hours)"
        )
    return parse_time(start, "ALERT_QUIET_HOURS"), parse_time(end, "ALERT_QUIET_HOURS")


def check(config) -> list[str]:
    """What is wrong with the alerts' settings (empty: nothing)."""
    problems = []
    try:
        parse_time(config.get("ALERT_DIGEST_TIME", "07:30"), "ALERT_DIGEST_TIME")
        parse_quiet_hours(config.get("ALERT_QUIET_HOURS", ""))
    except ScheduleError as exc:
        problems.append(str(exc))
    return problems


def in_quiet_hours(now: datetime) -> bool:
    """Whether ``now`` falls in ALERT_QUIET_HOURS (local time; may span midnight)."""
    quiet = parse_quiet_hours(setting("ALERT_QUIET_HOURS", "") or "")
    if quiet is None:
        return False
    start, end = quiet
    at = now.astimezone(local_zone()).time()
    if start <= end:
        return start <= at < end
    return at >= start or at < end


def next_digest(after: datetime) -> datetime:
    """The first daily digest time (ALERT_DIGEST_TIME, local) after ``after``, in UTC."""
    at = parse_time(setting("ALERT_DIGEST_TIME", "07:30") or "07:30", "ALERT_DIGEST_TIME")
    zone = local_zone()
    day = after.astimezone(zone).date()
    while True:
        candidate = datetime.combine(day, at, tzinfo=zone).astimezone(UTC)
        if candidate > after:
            return candidate
        day += timedelta(days=1)
