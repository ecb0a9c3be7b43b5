"""Account administration: for administrators only; create, change role, deactivate,
and never lock the last administrator out."""

from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import func, select

from tests.conftest import PASSWORD
from tests.helpers import make_user
from tracker.extensions import db
from tracker.users.models import User

NEW_PASSWORD = "a-long-enough-password"


def shown(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def field_error(response, name: str) -> str:
    """The error render_form shows in the field's own block (empty if none)."""
    for block in shown(response).split('<div class="mb-3')[1:]:
        if f'name="{name}"' in block:
            match = re.search(r'<div class="invalid-feedback[^"]*">(.*?)</div>', block, re.S)
            return match.group(1).strip() if match else ""
    raise AssertionError(f"no field {name} on the page")


def user_count() -> int:
    return db.session.scalar(select(func.count(User.id)))


def new_user_post(**fields) -> dict:
    return {
        "username": "nurse.kay",
        "full_name": "Kay Nurse",
        "role": "coordinator",
        "password": NEW_PASSWORD,
        **fields,
    }


def edit(client, user, **fields):
    return client.post(f"/users/{user.id}", data=fields)


# -- who may ----------------------------------------------------------------------------------


@pytest.mark.parametrize("username", ["coordinator", "surgeon", "viewer"])
def test_users_pages_are_for_administrators_only(client, login, users, session, username):
    session.commit()
    login(username)
    before = user_count()
    target = users["surgeon2"]
    assert client.get("/users/").status_code == 403
    assert client.post("/users/", data=new_user_post()).status_code == 403
    assert client.get(f"/users/{target.id}").status_code == 403
    assert edit(client, target, role="admin", active="y").status_code == 403
    db.session.refresh(target)
    assert target.role == "surgeon" and user_count() == before
    assert 'href="/users/"' not in shown(client.get("/"))  # no menu entry either


def test_users_list(client, login, users, session):
    session.commit()
    login("admin")
    response = client.get("/users/")
    assert response.status_code == 200
    page = shown(response)
    for user in users.values():
        assert f'href="/users/{user.id}"' in page
    assert "<td>surgeon2</td><td>Surgeon2</td><td>Surgeon</td>" in page
    assert "Create a user" in page


def test_unknown_user_is_404(client, login, users, session):
    session.commit()
    login("admin")
    assert client.get("/users/987654").status_code == 404
    assert client.post("/users/987654", data={"role": "viewer"}).status_code == 404


# -- create ------------------------------------------------------------------------------------


def test_create_a_user_who_can_then_log_in(client, login, users, session):
    session.commit()
    login("admin")
    response = client.post("/users/", data=new_user_post(username="  Nurse.Kay ", role="surgeon"))
    assert response.status_code == 302 and response.headers["Location"] == "/users/"
    user = db.session.scalar(select(User).where(User.username == "nurse.kay"))
    assert (user.role, user.full_name, user.active) == ("surgeon", "Kay Nurse", True)
    assert "Created nurse.kay (Surgeon)." in shown(client.get("/users/"))
    client.post("/logout")
    login("nurse.kay", NEW_PASSWORD)
    assert "Kay Nurse · Surgeon" in shown(client.get("/"))


def test_create_refuses_invalid_accounts_beside_the_field(client, login, users, session):
    session.commit()
    login("admin")
    before = user_count()
    response = client.post("/users/", data=new_user_post(password="short"))
    assert response.status_code == 422
    assert field_error(response, "password") == "The password must be 12 to 128 characters long."
    response = client.post("/users/", data=new_user_post(username="kay nurse"))
    assert response.status_code == 422
    assert "A username is 2 to 64 characters" in field_error(response, "username")
    response = client.post("/users/", data=new_user_post(username="Surgeon"))
    assert response.status_code == 422
    assert field_error(response, "username") == "The username 'surgeon' is already taken."
    response = client.post("/users/", data=new_user_post(role="superuser"))
    assert response.status_code == 422
    assert "Not a valid choice" in field_error(response, "role")
    response = client.post("/users/", data=new_user_post(username=""))
    assert response.status_code == 422
    assert field_error(response, "username") == "Enter a username."
    assert user_count() == before


# -- edit: role and active -----------------------------------------------------------------------


def test_edit_form_shows_role_and_status(client, login, users, session):
    session.commit()
    login("admin")
    response = client.get(f"/users/{users['surgeon2'].id}")
    assert response.status_code == 200
    page = shown(response)
    assert '<option selected value="surgeon">' in page
    assert re.search(r'<input checked [^>]*name="active"', page)


def test_change_a_role(client, login, users, session):
    session.commit()
    login("admin")
    target = users["surgeon2"]
    response = edit(client, target, role="coordinator", active="y")
    assert response.status_code == 302 and response.headers["Location"] == "/users/"
    db.session.refresh(target)
    assert target.role == "coordinator" and target.active
    page = shown(client.get("/users/"))
    assert "Saved surgeon2." in page
    assert "<td>surgeon2</td><td>Surgeon2</td><td>Care coordinator</td>" in page


def test_deactivate_and_reactivate(client, login, users, session):
    session.commit()
    login("admin")
    target = users["coordinator2"]
    assert edit(client, target, role="coordinator").status_code == 302  # box unticked
    db.session.refresh(target)
    assert not target.active
    assert "Deactivated" in shown(client.get("/users/"))
    client.post("/logout")
    refused = client.post("/login", data={"username": "coordinator2", "password": PASSWORD})
    assert refused.status_code == 401
    login("admin")
    assert edit(client, target, role="coordinator", active="y").status_code == 302
    db.session.refresh(target)
    assert target.active
    client.post("/logout")
    login("coordinator2")


def test_an_administrator_cannot_deactivate_themselves(client, login, users, session):
    session.commit()
    login("admin")
    me = users["admin"]
    response = edit(client, me, role="admin")
    assert response.status_code == 422
    assert "You cannot deactivate your own account." in shown(response)
    db.session.refresh(me)
    assert me.active


def test_the_last_active_administrator_stays_one(client, login, users, session):
    session.commit()
    login("admin")
    me = users["admin"]
    response = edit(client, me, role="coordinator", active="y")
    assert response.status_code == 422
    assert "This is the last active administrator; make another one first." in shown(response)
    db.session.refresh(me)
    assert me.role == "admin"
    # With a second active administrator, the other can be demoted or deactivated.
    other = make_user("admin2", "admin")
    session.commit()
    assert edit(client, other, role="admin").status_code == 302
    db.session.refresh(other)
    assert not other.active
    # ... and then the first is the last active one again.
    response = edit(client, me, role="viewer", active="y")
    assert response.status_code == 422
    assert "last active administrator" in shown(response)


def test_a_refused_change_changes_nothing(client, login, users, session):
    session.commit()
    login("admin")
    me = users["admin"]
    # The role change is allowed on its own, the deactivation is not: neither is saved.
    make_user("admin2", "admin")
    session.commit()
    response = edit(client, me, role="surgeon")
    assert response.status_code == 422
    db.session.refresh(me)
    assert (me.role, me.active) == ("admin", True)


def test_edit_refuses_an_unknown_role_with_422(client, login, users, session):
    session.commit()
    login("admin")
    target = users["viewer"]
    response = edit(client, target, role="superuser", active="y")
    assert "Not a valid choice" in field_error(response, "role")
    db.session.refresh(target)
    assert target.role == "viewer"
    assert response.status_code == 422
