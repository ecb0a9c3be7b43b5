"""Small pieces the feature routes share."""

from __future__ import annotations

from collections import defaultdict
from urllib.parse import urlsplit

from sqlalchemy import func, or_, select
from werkzeug.routing import IntegerConverter

from tracker.core.text import identifier_key
from tracker.extensions import db
from tracker.users.models import User


class AnyIdConverter(IntegerConverter):
    """`<anyint:...>` in URLs: ASCII digits only. Werkzeug's `\\d` and Python's `int()`
    also take other scripts' digits (U+0661, ARABIC-INDIC DIGIT ONE, is 1), which would
    name a record by a string no link holds; such a path matches no rule: a 404."""

    regex = "[0-9]+"


class IdConverter(AnyIdConverter):
    """`<int:...>` in URLs: ASCII digits (as `<anyint:...>`), and ids beyond what the
    database holds are a 404, not an error."""

    def __init__(self, url_map, *args, **kwargs):
        kwargs.setdefault("max", 2**31 - 1)
        super().__init__(url_map, *args, **kwargs)


def name_or_mrn(q: str, patient):
    """Match an MRN exactly (as ``identifier_key`` compares it) or a name containing
    ``q``; % and _ are plain text."""
    escaped = q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    like = f"%{escaped}%"
    return or_(
        patient.mrn_key == identifier_key(q),
        func.lower(patient.family_name).like(like, escape="\\"),
        func.lower(patient.given_name).like(like, escape="\\"),
    )


def users_by_role() -> dict[str, list]:

    grouped: dict[str, list] = defaultdict(list)
    for user in db.session.scalars(
        select(User).where(User.active.is_(True)).order_by(User.full_name, User.username)
    ):
        grouped[user.role].append(user)
    return grouped


def safe_next(target: str | None, fallback: str) -> str:
    """Only a path on this site; browsers drop tabs and read backslashes as slashes."""
    if not target or any(ord(c) < 32 or c == "\\" for c in target) or target.startswith("//"):
        return fallback
    try:
        parts = urlsplit(target)
    except ValueError:  # e.g. '/[' : not a URL at all
        return fallback
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return fallback
    return target
