"""The web shell: login, logout, health, and nothing without a login."""

from __future__ import annotations

from tests.conftest import PASSWORD


def test_healthz_needs_nothing(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.text == "ok"
    assert "Set-Cookie" not in response.headers


def test_login_page_and_wrong_password(client, users):
    assert client.get("/login").status_code == 200
    response = client.post("/login", data={"username": "coordinator", "password": "nope"})
    assert response.status_code == 401
    assert "Unknown username or wrong password" in response.text


def test_login_lands_on_my_work_and_logout(client, users, login):
    response = login("coordinator")
    assert response.headers["Location"] == "/my-work/"
    page = client.get("/my-work/")
    assert page.status_code == 200 and "My work" in page.text
    page = client.get("/")
    assert page.status_code == 200 and "Worklist" in page.text
    assert client.post("/logout").status_code == 302
    assert client.get("/").status_code == 302


def test_login_keeps_only_local_next(client, users):
    response = client.post(
        "/login?next=https://evil.example/", data={"username": "coordinator", "password": PASSWORD}
    )
    assert response.headers["Location"] == "/my-work/"


def test_deactivated_account_cannot_log_in_and_is_logged_out(client, users, login, session):
    login("coordinator")
    users["coordinator"].active = False
    session.commit()
    assert client.get("/").status_code == 302
    response = client.post("/login", data={"username": "coordinator", "password": PASSWORD})
    assert response.status_code == 401


def test_anonymous_is_sent_to_login(client):
    response = client.get("/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_login_refuses_every_way_out_of_the_site(client, users):
    for target in [
        "//evil.example/",
        "/%09/evil.example",
        "/\\evil.example",
        "https://evil.example/",
        "/\t/evil.example",
    ]:
        response = client.post(
            f"/login?next={target}", data={"username": "coordinator", "password": PASSWORD}
        )
        assert response.headers["Location"] == "/my-work/", target
        client.post("/logout")
    response = client.post(
        "/login?next=/mdt/", data={"username": "coordinator", "password": PASSWORD}
    )
    assert response.headers["Location"] == "/mdt/"
