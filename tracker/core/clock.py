"""The hospital's local time: dates typed and judged by people are local days."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from flask import current_app, has_app_context

DEFAULT_ZONE = "Europe/London"


def local_zone() -> ZoneInfo:
    name = current_app.config.get("TIMEZONE", DEFAULT_ZONE) if has_app_context() else DEFAULT_ZONE
    return ZoneInfo(name)


def local_date(value: datetime) -> date:
    """The local calendar day of an aware time (an MDT on 15 July at 00:30 BST is 15 July)."""
    return value.astimezone(local_zone()).date()
