"""Saved views: a worklist's or the PTL's filters and sort under a name, private or shared
(in the navigation); names unique per owner and among shared views; filters checked as
saved. And the worklist as it was left, after opening a patient."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from tests.helpers import driver
from tracker.extensions import db
from tracker.saved_views import services
from tracker.saved_views.models import SavedView


def shown(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def views_count() -> int:
    return db.session.scalar(select(func.count()).select_from(SavedView))


def query_of(location: str) -> tuple[str, dict]:
    parts = urlsplit(location)
    return parts.path, parse_qs(parts.query)


def nav_of(text: str) -> str:
    """The navigation's saved views menu."""
    return text.split('id="views-menu"', 1)[1].split("</ul>", 1)[0]


def switch(client, login, username: str) -> None:
    """Log out, then in as ``username``."""
    client.post("/logout")
    login(username)


def save(client, name: str, query: str, page: str = "worklist", shared: bool = False):
    data = {"name": name, "page": page, "query": query}
    if shared:
        data["shared"] = "y"
    return client.post("/views/", data=data)


def test_a_view_is_saved_and_opened_with_its_filters_and_sort(client, login, users, session):
    session.commit()
    login("coordinator")
    response = save(
        client, "  Imaging  breaches ", "state=imaging&target=breached&sort=name&page=3"
    )
    assert response.status_code == 302
    # Saved without the page number, and the list opens with the saved filters.
    assert query_of(response.headers["Location"]) == (
        "/",
        {"state": ["imaging"], "target": ["breached"], "sort": ["name"]},
    )
    view = db.session.scalar(select(SavedView))
    assert (view.name, view.page, view.shared) == ("Imaging breaches", "worklist", False)
    assert view.filters == {"state": "imaging", "target": "breached", "sort": "name"}
    assert view.owner_id == users["coordinator"].id
    opened = client.get(f"/views/{view.id}")
    assert opened.status_code == 302
    assert query_of(opened.headers["Location"]) == query_of(response.headers["Location"])
    page = shown(client.get(opened.headers["Location"]))
    assert "View 'Imaging breaches' saved." in page
    # The worklist marks the view it shows.
    assert re.search(rf'href="/views/{view.id}" class="btn btn-sm btn-primary" aria-current', page)
    other = shown(client.get("/?state=imaging"))
    assert f'href="/views/{view.id}" class="btn btn-sm btn-outline-secondary"' in other


def test_a_ptl_view_keeps_its_band_and_surgeon(client, login, users, session):
    session.commit()
    login("coordinator")
    response = save(client, "Long waits", "band=over_104&lead_surgeon=surgeon", page="ptl")
    assert query_of(response.headers["Location"]) == (
        "/ptl",
        {"band": ["over_104"], "lead_surgeon": ["surgeon"]},
    )
    assert "Long waits" in shown(client.get("/ptl?band=over_104&lead_surgeon=surgeon"))
    listing = shown(client.get("/views/"))
    assert "Band: Over 104 days; Lead surgeon: surgeon" in listing


def test_a_private_view_is_its_owners_and_a_shared_one_everyones(client, login, users, session):
    private = services.save(users["coordinator"], "Mine only", "worklist", {"mine": "1"}, False)
    shared = services.save(
        users["coordinator"], "Emergencies", "worklist", {"urgency": "emergency"}, True
    )
    session.commit()
    login("coordinator")
    menu = nav_of(shown(client.get("/patients/")))
    assert "Mine only" in menu and "Emergencies" in menu
    switch(client, login, "surgeon")
    page = shown(client.get("/patients/"))
    menu = nav_of(page)
    assert "Emergencies" in menu and "Mine only" not in menu
    assert "Mine only" not in shown(client.get("/")) and "Mine only" not in shown(
        client.get("/views/")
    )
    assert client.get(f"/views/{private.id}").status_code == 404
    assert client.get(f"/views/{shared.id}").status_code == 302
    # Another's view is not theirs to change, shared or not.
    assert client.post(f"/views/{private.id}/edit", data={"name": "x"}).status_code == 404
    assert client.post(f"/views/{private.id}/delete").status_code == 404
    refused = client.post(f"/views/{shared.id}/edit", data={"name": "Mine now", "shared": "y"})
    assert refused.status_code == 403
    assert "Only the person who saved a view may rename or share it." in shown(refused)
    assert client.post(f"/views/{shared.id}/delete").status_code == 403
    db.session.expire_all()
    assert db.session.get(SavedView, shared.id).name == "Emergencies"


def test_the_owner_renames_shares_and_deletes_a_view(client, login, users, session):
    view = services.save(users["coordinator"], "Imaging", "worklist", {"state": "imaging"}, False)
    session.commit()
    login("coordinator")
    response = client.post(f"/views/{view.id}/edit", data={"name": "Imaging queue", "shared": "y"})
    assert response.status_code == 302
    db.session.expire_all()
    view = db.session.get(SavedView, view.id)
    assert (view.name, view.name_key, view.shared) == ("Imaging queue", "imaging queue", True)
    assert view.updated_at >= view.created_at
    switch(client, login, "viewer")
    assert "Imaging queue" in nav_of(shown(client.get("/")))
    switch(client, login, "coordinator")
    response = client.post(f"/views/{view.id}/edit", data={"name": "Imaging queue"})  # unshare
    db.session.expire_all()
    assert db.session.get(SavedView, view.id).shared is False
    response = client.post(f"/views/{view.id}/delete")
    assert response.status_code == 302
    assert "View 'Imaging queue' deleted." in shown(client.get("/views/"))
    assert views_count() == 0


def test_an_administrator_deletes_a_shared_view_not_a_private_one(client, login, users, session):
    shared = services.save(users["coordinator"], "Team", "worklist", {"target": "breached"}, True)
    private = services.save(users["coordinator"], "Own", "worklist", {"target": "due_soon"}, False)
    session.commit()
    login("admin")
    assert "Team" in shown(client.get("/views/"))
    assert client.post(f"/views/{private.id}/delete").status_code == 404
    assert client.post(f"/views/{shared.id}/delete").status_code == 302
    db.session.expire_all()
    assert db.session.get(SavedView, shared.id) is None
    assert db.session.get(SavedView, private.id) is not None


def test_a_name_already_used_is_refused_saying_so(client, login, users, session):
    services.save(users["coordinator"], "Breaches", "worklist", {"target": "breached"}, False)
    services.save(
        users["surgeon"], "Theatre list", "worklist", {"state": "surgery_scheduled"}, True
    )
    session.commit()
    login("coordinator")
    response = save(client, "  breaches", "state=imaging")
    assert response.status_code == 422
    assert "You already have a view called 'Breaches': choose another name" in shown(response)
    response = save(client, "THEATRE list", "state=imaging", shared=True)
    assert response.status_code == 422
    assert "A shared view is already called 'THEATRE list': choose another name" in shown(response)
    assert views_count() == 2
    # Private, the name is free (shared names are unique among shared views only).
    assert save(client, "Theatre list", "state=imaging").status_code == 302
    # Sharing it now would take the shared name: refused, and it stays private.
    mine = db.session.scalar(
        select(SavedView).where(
            SavedView.owner_id == users["coordinator"].id, SavedView.name == "Theatre list"
        )
    )
    response = client.post(f"/views/{mine.id}/edit", data={"name": "Theatre list", "shared": "y"})
    assert response.status_code == 422
    assert "A shared view is already called 'Theatre list'" in shown(response)
    response = client.post(f"/views/{mine.id}/edit", data={"name": "Breaches"})
    assert "You already have a view called 'Breaches'" in shown(response)
    db.session.expire_all()
    assert db.session.get(SavedView, mine.id).shared is False
    assert save(client, "   ", "state=imaging").status_code == 422
    assert "Give the view a name" in shown(save(client, "", "state=imaging"))
    assert "at most 80 characters" in shown(save(client, "x" * 81, "state=imaging"))


@pytest.mark.parametrize(
    ("page", "query", "words"),
    [
        ("worklist", "state=nonsense", "Unknown state 'nonsense': choose one of Referred"),
        ("worklist", "state=discharged", "Unknown state 'discharged'"),  # not an active state
        ("worklist", "urgency=soon", "Unknown urgency 'soon': choose one of Emergency"),
        ("worklist", "target=late", "Unknown target 'late'"),
        ("worklist", "sort=age", "Unknown sort 'age'"),
        ("worklist", "colour=red", "'colour' is not a worklist filter"),
        ("worklist", "q=" + "a" * 101, "The search is too long: at most 100 characters"),
        ("ptl", "band=200", "The band must be one of: 0-28, 29-62, 63-104, over_104."),
        ("ptl", "lead_surgeon=nobody", "No user has the username 'nobody'"),
        ("ptl", "state=imaging", "'state' is not a filter of the tracking list"),
        ("reports", "state=imaging", "Views are saved from: Worklist, Patient tracking list"),
    ],
)
def test_a_filter_value_not_known_is_refused_and_nothing_stored(
    client, login, users, session, page, query, words
):
    session.commit()
    login("coordinator")
    response = save(client, "Bad", query, page=page)
    assert response.status_code == 422
    assert words in shown(response)
    assert views_count() == 0


def test_the_database_keeps_names_unique_per_owner_and_among_shared_views(users, session):
    def row(owner, name, shared):
        return SavedView(
            owner_id=users[owner].id, name=name, name_key=name.lower(), page="worklist",
            filters={}, shared=shared,
        )  # fmt: skip

    session.add_all([row("coordinator", "A", True), row("surgeon", "A", False)])
    session.flush()  # a private view may share a shared one's name
    for duplicate in (row("coordinator", "A", False), row("viewer", "A", True)):
        with session.begin_nested(), pytest.raises(IntegrityError):
            session.add(duplicate)
            session.flush()


def test_the_worklist_is_where_it_was_left_after_opening_a_patient(client, login, users, session):
    pathway = driver(users).pathway
    session.commit()
    login("coordinator")
    client.get("/?state=referred&sort=name&urgency=routine&page=1")
    page = shown(client.get(f"/pathways/{pathway.id}"))
    back = re.search(
        r'<a href="([^"]*)" class="back-to-list">&larr; ([^<]*)</a>', page.replace("←", "&larr;")
    )
    assert back is not None
    assert back.group(2) == "Back to the worklist"
    assert query_of(back.group(1)) == (
        "/",
        {"state": ["referred"], "sort": ["name"], "urgency": ["routine"], "page": ["1"]},
    )
    # Every page of the pathway (a step's form) leads back to the same list.
    form = shown(client.get(f"/pathways/{pathway.id}/record/add_note"))
    assert 'href="/?state=referred&amp;sort=name&amp;urgency=routine&amp;page=1"' in (
        client.get(f"/pathways/{pathway.id}/record/add_note").get_data(as_text=True)
    )
    assert "Back to the worklist" in form
    # Coming from the PTL, the way back is to the PTL as it was.
    client.get("/ptl?band=0-28")
    page = client.get(f"/pathways/{pathway.id}").get_data(as_text=True)
    assert 'href="/ptl?band=0-28" class="back-to-list"' in page
    assert "Back to the patient tracking list" in page


def test_without_a_list_opened_the_way_back_is_the_worklist(client, login, users, session):
    pathway = driver(users).pathway
    session.commit()
    login("coordinator")
    page = client.get(f"/pathways/{pathway.id}").get_data(as_text=True)
    assert 'href="/" class="back-to-list"' in page


def test_the_menu_follows_a_colleagues_shared_view_once_a_list_is_opened(
    client, login, users, session
):
    session.commit()
    login("coordinator")
    assert "Theatre" not in nav_of(shown(client.get("/patients/")))
    view = services.save(
        users["surgeon"], "Theatre", "worklist", {"state": "surgery_scheduled"}, True
    )
    session.commit()
    # The menu is kept in the session (no query on every page); opening a list reads the
    # views, and the menu shows the new one there and on every page after.
    assert "Theatre" in nav_of(shown(client.get("/")))
    assert "Theatre" in nav_of(shown(client.get("/patients/")))
    services.delete(view, users["surgeon"])
    session.commit()
    assert "Theatre" not in nav_of(shown(client.get("/ptl")))
    assert "Theatre" not in nav_of(shown(client.get("/patients/")))
