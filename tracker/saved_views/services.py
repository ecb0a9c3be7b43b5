"""Saving, sharing, renaming and deleting views. Flush, never commit (tracker.web.boundary
commits). A view's filters are checked as they are saved: an unknown value is refused,
saying which, and nothing is stored."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from urllib.parse import parse_qsl

from flask import g, has_request_context
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from tracker.core.db import utcnow
from tracker.core.runtime import db_session
from tracker.engine.errors import InvalidData, RoleNotAllowed
from tracker.returns import queries as ptl_queries
from tracker.saved_views.models import NAME_MAX, PAGES, SavedView
from tracker.worklist import filters as worklist_filters

PTL_SAVED = ("band", "lead_surgeon")
_MAX_QUERY = 1000


def _ptl_check(values: Mapping[str, str]) -> tuple[dict[str, str], dict[str, list[str]]]:
    clean = {k: (v or "").strip() for k, v in values.items() if k != "page" and (v or "").strip()}
    errors = {
        name: [f"'{name[:40]}' is not a filter of the tracking list: use {', '.join(PTL_SAVED)}"]
        for name in clean
        if name not in PTL_SAVED
    }
    _, problems = ptl_queries.ptl_filters(clean.get("band"), clean.get("lead_surgeon"))
    errors.update(problems)
    return {k: v for k, v in clean.items() if k in PTL_SAVED}, errors


CHECKS = {"worklist": worklist_filters.check, "ptl": _ptl_check}


def describe(view: SavedView) -> list[str]:
    """The view's filters in words."""
    if view.page == "worklist":
        return worklist_filters.describe(view.filters) or ["Every active pathway"]
    words = []
    if view.filters.get("band"):
        band = ptl_queries.BY_BAND.get(view.filters["band"])
        words.append(f"Band: {band.label if band else view.filters['band']}")
    if view.filters.get("lead_surgeon"):
        words.append(f"Lead surgeon: {view.filters['lead_surgeon']}")
    return words or ["Every open 62-day pathway"]


def query_values(query: str) -> dict[str, str]:
    """A page's query string as {name: value} (the last of a repeated name)."""
    return dict(parse_qsl((query or "")[:_MAX_QUERY]))


def folded(name: str) -> str:
    return " ".join(name.split()).casefold()


def _check_name(name: str, owner_id: int, shared: bool, view: SavedView | None) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise InvalidData({"name": ["Give the view a name"]})
    if len(name) > NAME_MAX:
        raise InvalidData({"name": [f"The name is too long: at most {NAME_MAX} characters"]})
    others = select(SavedView).where(
        SavedView.name_key == folded(name), SavedView.id != (view.id if view else -1)
    )
    mine = db_session().scalar(others.where(SavedView.owner_id == owner_id))
    if mine is not None:
        raise InvalidData(
            {"name": [f"You already have a view called '{mine.name}': choose another name"]}
        )
    if shared and db_session().scalar(others.where(SavedView.shared.is_(True))) is not None:
        raise InvalidData(
            {"name": [f"A shared view is already called '{name}': choose another name"]}
        )
    return name


def _flush() -> None:
    try:
        db_session().flush()
    except IntegrityError as exc:  # the same name saved at the same moment by another request
        raise InvalidData({"name": ["That name was taken a moment ago: choose another"]}) from exc


def save(
    actor, name: str, page: str, values: Mapping[str, str], shared: bool, now=None
) -> SavedView:
    """Save ``values`` (the page's query) as a view called ``name``."""
    if page not in PAGES:
        raise InvalidData({"page": [f"Views are saved from: {', '.join(PAGES.values())}"]})
    clean, errors = CHECKS[page](values)
    if errors:
        raise InvalidData(errors)
    name = _check_name(name, actor.id, shared, None)
    now = now or utcnow()
    view = SavedView(
        owner_id=actor.id,
        name=name,
        name_key=folded(name),
        page=page,
        filters=clean,
        shared=bool(shared),
        created_at=now,
        updated_at=now,
    )
    db_session().add(view)
    _flush()
    _forget()
    return view


def may_change(view: SavedView, user) -> bool:
    return view.owner_id == user.id


def may_delete(view: SavedView, user) -> bool:
    """The owner; an administrator too, once the view is shared (it is everyone's then)."""
    return may_change(view, user) or (view.shared and user.role == "admin")


def change(view: SavedView, actor, name: str, shared: bool, now: datetime | None = None) -> bool:
    """Rename or (un)share one's own view; False when nothing changed."""
    if not may_change(view, actor):
        raise RoleNotAllowed("Only the person who saved a view may rename or share it.")
    name = _check_name(name, view.owner_id, shared, view)
    if name == view.name and bool(shared) == view.shared:
        return False
    view.name, view.name_key, view.shared = name, folded(name), bool(shared)
    view.updated_at = now or utcnow()
    _flush()
    _forget()
    return True


def delete(view: SavedView, actor) -> None:
    if not may_delete(view, actor):
        raise RoleNotAllowed(
            "Only the person who saved a view may delete it (an administrator: a shared one)."
        )
    db_session().delete(view)
    db_session().flush()
    _forget()


def visible(user) -> list[SavedView]:
    """The views ``user`` sees (their own and the shared ones), by name: read once per
    request, for the navigation and the page alike."""
    cache = g.setdefault("saved_views", {}) if has_request_context() else {}
    if user.id not in cache:
        cache[user.id] = list(
            db_session().scalars(
                select(SavedView)
                .where(or_(SavedView.owner_id == user.id, SavedView.shared.is_(True)))
                .order_by(SavedView.name_key, SavedView.id)
            )
        )
    return cache[user.id]


def _forget() -> None:
    if has_request_context():
        g.pop("saved_views", None)


def find(view_id: int, user) -> SavedView | None:
    """The view, if ``user`` may see it (another's private view is not there for them)."""
    view = db_session().get(SavedView, view_id)
    if view is None or not (view.shared or view.owner_id == user.id):
        return None
    return view
