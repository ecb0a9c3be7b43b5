"""The hospital's local time: dates typed and judged by people are local days."""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from tracker.core.runtime import setting

DEFAULT_ZONE = "Europe/London"


@lru_cache(maxsize=8)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_zone() -> ZoneInfo:
    return _zone(setting("TIMEZONE", DEFAULT_ZONE))


def local_date(value: datetime) -> date:
    """The local calendar day of an aware time (an MDT on 15 July at 00:30 BST is 15 July)."""
    return value.astimezone(local_zone()).date()


def format_local(value: datetime) -> str:
    """A time as people read it in messages: local, with the zone ("12 Jan 2026 09:10 GMT")."""
    local = value.astimezone(local_zone())
    return f"{local.day} {local:%b %Y %H:%M %Z}"
