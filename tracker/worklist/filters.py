"""The worklist's filters and sorts by name, and their check: what the page reads from its
query string (it ignores a value it does not know) and what a saved view may keep (it
refuses one, saying which)."""

from __future__ import annotations

from collections.abc import Mapping

from tracker.engine import steps as d
from tracker.engine.dictionary import URGENCY_SHORT

SORT_LABELS = {
    "due": "Next target due",
    "in_state": "Longest in state",
    "name": "Name",
    "referral": "Newest referral",
    "urgency": "Urgency",
}
TARGET_FILTERS = {
    "breached": "Breached",
    "due_soon": "Due soon",
    "attention": "Due soon or breached",
}
FILTERS = ("state", "urgency", "target", "mine", "q")
# What a saved view keeps: the filters and the order (not the page number).
SAVED = (*FILTERS, "sort")
Q_MAX = 100


def check(values: Mapping[str, str]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """A worklist query as a saved view keeps it: (the values, blanks and the page number
    left out; {name: [what is wrong]})."""
    clean: dict[str, str] = {}
    errors: dict[str, list[str]] = {}
    for name, value in values.items():
        value = (value or "").strip()
        if name == "page" or not value:
            continue
        if name not in SAVED:
            errors[name] = [f"'{name[:40]}' is not a worklist filter: use {', '.join(SAVED)}"]
            continue
        problem = _problem(name, value)
        if problem:
            errors[name] = [problem]
        else:
            clean[name] = "1" if name == "mine" else value
    return clean, errors


def _problem(name: str, value: str) -> str | None:
    known = {
        "state": {s: d.STATE_LABELS[s] for s in d.ACTIVE_STATES},
        "urgency": URGENCY_SHORT,
        "target": TARGET_FILTERS,
        "sort": SORT_LABELS,
    }.get(name)
    if known is not None and value not in known:
        return f"Unknown {name} '{value[:40]}': choose one of {', '.join(known.values())}"
    if name == "q" and len(value) > Q_MAX:
        return f"The search is too long: at most {Q_MAX} characters"
    return None


def describe(values: Mapping[str, str]) -> list[str]:
    """A saved worklist query in words ("State: Imaging", "Sorted by name")."""
    words = []
    if values.get("state") in d.STATE_LABELS:
        words.append(f"State: {d.STATE_LABELS[values['state']]}")
    if values.get("urgency") in URGENCY_SHORT:
        words.append(f"Urgency: {URGENCY_SHORT[values['urgency']]}")
    if values.get("target") in TARGET_FILTERS:
        words.append(f"Targets: {TARGET_FILTERS[values['target']].lower()}")
    if values.get("mine"):
        words.append("Mine only")
    if values.get("q"):
        words.append(f"Search: {values['q']}")
    if values.get("sort") in SORT_LABELS:
        words.append(f"Sorted by {SORT_LABELS[values['sort']].lower()}")
    return words
