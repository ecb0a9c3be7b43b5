"""Jinja filters: times and codes shown in words a coordinator reads at a glance."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import Flask, current_app

from tracker.engine import clocks
from tracker.engine import steps as d
from tracker.engine.dictionary import REFERRAL_PRIORITY, URGENCY_SHORT
from tracker.users.roles import ROLE_LABELS
from tracker.web.back import way_back


def _zone() -> ZoneInfo:
    return ZoneInfo(current_app.config.get("TIMEZONE", "Europe/London"))


def when(value: datetime | None) -> str:
    """A stored UTC time in the hospital's local time."""
    if value is None:
        return ""
    return value.astimezone(_zone()).strftime("%d %b %Y %H:%M")


def due(value: datetime | None, code: str | None) -> str:
    """When a clock is due: a clock counted in whole days (a follow-up visit) is due by the
    end of a day, shown as that day; the others at their time."""
    on = clocks.due_day(code, value) if code else None
    return day(on) if on is not None else when(value)


def iso(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat() if value else ""


def days_since(value: datetime | None, now: datetime) -> int | None:
    return None if value is None else int((now - value).total_seconds() // 86400)


def day(value: date | datetime | str | None) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = date.fromisoformat(value)
    return value.strftime("%d %b %Y")


def duration(delta: timedelta | None) -> str:
    if delta is None:
        return ""
    seconds = int(delta.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{sign}{days} d {hours} h" if days < 7 and hours else f"{sign}{days} d"
    if hours:
        return f"{sign}{hours} h {minutes} min"
    return f"{sign}{minutes} min"


# Labels that already say what the button does ("Refer to MDT", "Record operation"):
# those whose first word is one of these English verbs (words, not trigger names).
_VERBS = frozenset("record refer request start withdraw discharge add change mark cancel".split())  # noqa: SIM905


def action_words(trigger: str) -> str:
    """What the button that records ``trigger`` says: its label when that is already an
    instruction ("Record operation", "Refer to MDT"), else "Record " and the label, an
    acronym kept ("Record MDT meeting scheduled", "Record clinical assessment")."""
    words = d.label(trigger)
    first = words.split(" ", 1)[0]
    if first.lower() in _VERBS:
        return words
    if not (first.isupper() and len(first) > 1):
        words = words[0].lower() + words[1:]
    return f"Record {words}"


def init_app(app: Flask) -> None:
    app.add_template_filter(when)
    app.add_template_filter(day)
    app.add_template_filter(duration)
    app.add_template_filter(iso)
    app.add_template_filter(due)
    app.add_template_global(dict(REFERRAL_PRIORITY), "REFERRAL_PRIORITY_LABELS")
    app.add_template_global(days_since)
    app.add_template_global(clocks.countdown, "countdown")
    app.add_template_global(d.STATE_LABELS, "STATE_LABELS")
    app.add_template_global(d.label, "step_label")
    app.add_template_global(action_words)
    app.add_template_global(URGENCY_SHORT, "URGENCY_LABELS")
    app.add_template_global(ROLE_LABELS, "ROLE_LABELS")
    app.add_template_global(way_back)
