"""The way back to the list a user came from: the worklist or the patient tracking list,
as they left it (filters, sort and page), remembered in their session. The pathway's
pages link back to it ("Back to the worklist"), so opening a patient and coming back
keeps the list where it was."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from flask import request, session, url_for

_KEY = "back_to_list"
LISTS = {
    "worklist": ("worklist.index", "Back to the worklist"),
    "ptl": ("returns.ptl", "Back to the patient tracking list"),
}
_MAX_QUERY = 1000


def list_url(page: str, query: str = "") -> str:
    """The address of ``page`` (a key of LISTS) with ``query``, its values read and
    written again: whatever was carried, the answer is a path of this site."""
    endpoint = LISTS.get(page, LISTS["worklist"])[0]
    pairs = parse_qsl((query or "")[:_MAX_QUERY])
    encoded = urlencode(pairs)
    return url_for(endpoint) + (f"?{encoded}" if encoded else "")


def remember_list(page: str) -> None:
    """The list page answering now is the one to come back to (written only on a change:
    most views of a list are the same one again)."""
    value = [page, request.query_string.decode("utf-8", "replace")[:_MAX_QUERY]]
    if session.get(_KEY) != value:
        session[_KEY] = value


def way_back() -> tuple[str, str]:
    """(label, address) of the list this user came from; the worklist when none."""
    value = session.get(_KEY)
    if not (isinstance(value, list) and len(value) == 2 and value[0] in LISTS):
        return LISTS["worklist"][1], url_for(LISTS["worklist"][0])
    page, query = value
    return LISTS[page][1], list_url(page, str(query))
