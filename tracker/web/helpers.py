"""Small pieces the feature routes share."""

from __future__ import annotations

from collections import defaultdict
from urllib.parse import urlsplit

from sqlalchemy import and_, false, or_, select
from werkzeug.routing import IntegerConverter

from tracker.core.text import identifier_key, search_key
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


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _starts_with(column, prefix: str):
    """``column`` begins with ``prefix`` (compared as stored: keys are folded already).
    The range lets the database read it from the column's index; LIKE keeps it exact."""
    condition = column.like(f"{_escaped(prefix)}%", escape="\\")
    last = ord(prefix[-1])
    if last < 0x10FFFF:
        upper = prefix[:-1] + chr(last + 1)
        condition = and_(column >= prefix, column < upper, condition)
    return condition


def patient_search(q: str, patient):
    """What the patient list and the worklist's ``q`` find: every word typed begins a
    word of the name, in any order and mix of given and family names ('Grace Okafor',
    'okafor grace', 'okaf gra'), case and accents aside (``search_key``); or the MRN
    begins with ``q`` (as ``identifier_key`` compares it); or the NHS number begins with
    its digits, spaces aside. % and _ are plain text."""
    found = []
    words = search_key(q).split()
    if words:
        key = patient.search_key
        found.append(and_(*(or_(_starts_with(key, w), key.like(f"% {w}%")) for w in words)))
    mrn = identifier_key(q)
    if mrn:
        found.append(_starts_with(patient.mrn_key, mrn))
    digits = q.replace(" ", "")
    if digits.isascii() and digits.isdigit() and len(digits) <= 10:
        found.append(_starts_with(patient.nhs_number, digits))
    return or_(*found) if found else false()


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
