"""The half login (the password right, the second factor to come) and what else anyone can
try without an account: a half login lives in the signed anonymous cookie, so a copy of
the cookie is a copy of it. It is believed for PENDING_LOGIN_MINUTES after the password
(a page view does not renew it) and only while the account's credentials are those it
started with; a reset link in such a browser opens; failures anyone can cause are
counted, not written one row each; the steps of signing in are rate limited per address.
"""

from __future__ import annotations

import html
import re
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
import time_machine
from sqlalchemy import func, select

from tests.conftest import PASSWORD, make_app
from tests.helpers import log_in, make_user, totp_code
from tracker.api.services import create_token
from tracker.audit.models import AuditEntry
from tracker.extensions import db
from tracker.users.models import User, WebSession
from tracker.users.resets import issue, use

ANON = "tracker_session_anon"
NEW_PASSWORD = "a much longer passphrase here"


def where(response) -> str:
    return urlsplit(response.headers.get("Location", "")).path


def shown(response) -> str:
    return re.sub(r"\s+", " ", html.unescape(response.get_data(as_text=True)))


def fresh(user: User) -> User:
    db.session.expire_all()
    return db.session.get(User, user.id)


def entries(action: str) -> list[AuditEntry]:
    db.session.expire_all()
    query = select(AuditEntry).where(AuditEntry.action == action)
    return list(db.session.scalars(query.order_by(AuditEntry.id)))


def logged_in(client) -> bool:
    """A real login: the browser holds a server-side session of a user."""
    cookie = client.get_cookie("tracker_session")
    if cookie is None:
        return False
    from tracker.users.sessions import session_hash

    db.session.expire_all()
    row = db.session.get(WebSession, session_hash(cookie.value))
    return row is not None and row.user_id is not None


def half_login(app, username: str):
    """A browser that typed the password: (the browser, a copy of its anonymous cookie)."""
    client = app.test_client()
    response = client.post("/login", data={"username": username, "password": PASSWORD})
    assert where(response) in ("/login/code", "/login/enrol")
    return client, client.get_cookie(ANON).value


def copy_of(app, cookie: str):
    other = app.test_client()
    other.set_cookie(ANON, cookie)
    return other


def refused_back_to_login(client, response, words: str) -> None:
    assert response.status_code == 302 and where(response) == "/login"
    assert words in shown(client.get("/login"))
    assert not logged_in(client)


@pytest.fixture
def boss(app, users, session):
    """An enrolled administrator (the test secret) and a second one to act on them."""
    app.extensions["tracker_limiter"].reset()
    boss = make_user("boss", "admin")
    session.commit()
    return boss


# -- how long a half login is believed --------------------------------------------------------


def test_a_half_login_is_refused_after_pending_login_minutes_whatever_the_cookie(
    app, boss, session
):
    started = datetime.now(UTC)
    with time_machine.travel(started, tick=False):
        client, _ = half_login(app, "boss")
    minutes = app.config["PENDING_LOGIN_MINUTES"]
    assert minutes == 10
    # Page views re-sign the cookie (a new message, a form): that renews nothing.
    for offset in (3, 6, 9):
        with time_machine.travel(started + timedelta(minutes=offset), tick=False):
            assert client.get("/login/code").status_code == 200
            assert where(client.get("/users/")) == "/login/code"
    with time_machine.travel(started + timedelta(minutes=minutes, seconds=30), tick=False):
        response = client.post("/login/code", data={"code": totp_code()})
        refused_back_to_login(client, response, f"within {minutes} minutes")
    assert not entries("login")


def test_the_half_login_lifetime_is_a_setting(app, boss, session, monkeypatch):
    monkeypatch.setitem(app.config, "PENDING_LOGIN_MINUTES", 2)
    started = datetime.now(UTC)
    with time_machine.travel(started, tick=False):
        client, _ = half_login(app, "boss")
    with time_machine.travel(started + timedelta(minutes=3), tick=False):
        refused_back_to_login(client, client.get("/login/code"), "within 2 minutes")


# -- bound to the account's credentials -------------------------------------------------------


def test_a_password_reset_kills_every_copy_of_a_half_login(app, boss, users, session):
    client, cookie = half_login(app, "boss")
    _, token = issue(fresh(boss), users["admin"], 24)
    use(token, NEW_PASSWORD)
    session.commit()
    copy = copy_of(app, cookie)
    refused_back_to_login(
        copy, copy.post("/login/code", data={"code": totp_code()}), "password, two-factor"
    )
    refused_back_to_login(client, client.get("/login/code"), "password, two-factor")
    assert not entries("login")


def test_a_two_factor_reset_kills_a_half_login_and_it_never_becomes_enrolment(
    app, boss, users, session
):
    """The reviewer's case: an old copy of a half login, after an administrator's reset,
    turned into an enrolment of the copier's own authenticator and a full admin login."""
    _, cookie = half_login(app, "boss")
    admin = app.test_client()
    assert log_in(admin, "admin", PASSWORD).status_code == 302
    assert admin.post(f"/users/{boss.id}/two-factor/reset").status_code == 302
    copy = copy_of(app, cookie)
    for path in ("/login/enrol", "/login/code"):
        copy = copy_of(app, cookie)
        refused_back_to_login(copy, copy.get(path), "Log in again")
    refused_back_to_login(copy, copy_of(app, cookie).post("/login/enrol", data={"code": "1"}), "")
    boss = fresh(boss)
    assert boss.totp_secret is None and not boss.two_factor_enrolled  # no secret was started
    # The password again starts a new half login, which may enrol.
    assert where(
        app.test_client().post("/login", data={"username": "boss", "password": PASSWORD})
    ) == ("/login/enrol")


def test_making_the_account_sign_on_only_kills_a_half_login(app, boss, session):
    _, cookie = half_login(app, "boss")
    boss = fresh(boss)
    boss.sso_only = True
    session.commit()
    copy = copy_of(app, cookie)
    refused_back_to_login(copy, copy.post("/login/code", data={"code": totp_code()}), "Log in")


def test_logout_ends_the_half_login_in_that_browser(app, boss, session):
    client, _ = half_login(app, "boss")
    assert where(client.post("/logout")) == "/login"
    assert where(client.get("/login/code")) == "/login"
    assert client.get_cookie(ANON) is None or "pending_login" not in client.get_cookie(ANON).value


# -- a reset link in a browser holding a half login ---------------------------------------


def test_a_reset_link_opens_in_a_browser_holding_a_half_login_and_ends_it(
    app, boss, users, session
):
    client, _ = half_login(app, "boss")
    _, token = issue(fresh(boss), users["admin"], 24)
    session.commit()
    page = client.get(f"/password-reset/{token}")
    assert page.status_code == 200 and "Set a new password" in shown(page)
    assert where(client.get("/login/code")) == "/login"  # the half login is gone
    done = client.post(
        f"/password-reset/{token}", data={"new": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    )
    assert done.status_code == 302 and where(done) == "/login"


# -- the administrator's pages --------------------------------------------------------------


def test_the_reset_link_page_says_when_a_required_role_sets_up_two_factor(app, boss, session):
    boss = fresh(boss)
    boss.totp_secret, boss.totp_enabled_at = None, None
    session.commit()
    admin = app.test_client()
    assert log_in(admin, "admin", PASSWORD).status_code == 302
    page = admin.post(f"/users/{boss.id}/reset-link")
    assert page.status_code == 200
    assert "Not set up: they set it up at their next login" in shown(page)


def test_a_two_factor_reset_and_sign_on_only_revoke_the_users_api_tokens(app, boss, users, session):
    _, boss_token = create_token(fresh(boss), "feed")
    _, dora_token = create_token(users["viewer"], "feed")
    session.commit()
    admin = app.test_client()
    assert log_in(admin, "admin", PASSWORD).status_code == 302
    api = app.test_client()

    def works(token: str) -> bool:
        return (
            api.get("/api/v1/definition", headers={"Authorization": f"Bearer {token}"}).status_code
            == 200
        )

    assert works(boss_token) and works(dora_token)
    assert admin.post(f"/users/{boss.id}/two-factor/reset").status_code == 302
    assert not works(boss_token)
    viewer = users["viewer"]
    form = {"role": "viewer", "active": "y", "sso_only": "y", "teams_shown": ""}
    assert admin.post(f"/users/{viewer.id}", data=form).status_code == 302
    assert fresh(viewer).sso_only
    assert not works(dora_token)
    assert len(entries("revoke_token")) == 2


# -- what anyone can cause: counted, and limited ------------------------------------------


def test_bad_reset_links_are_audited_in_aggregate(app, users, session):
    session.commit()
    app.extensions["tracker_limiter"].reset()
    anonymous = app.test_client()
    window = app.config["AUDIT_AGGREGATE_MINUTES"] * 60
    now = int(datetime.now(UTC).timestamp())
    with time_machine.travel(datetime.fromtimestamp(now - now % window + 5, UTC), tick=False):
        for n in range(25):
            response = anonymous.get(f"/password-reset/{'x' * 40}{n:03d}")
            assert response.status_code == 410 and "not valid" in shown(response)
        anonymous.post(f"/password-reset/{'y' * 43}", data={"new": "x", "confirm": "x"})
    refused = entries("password_reset_refused")
    assert len(refused) == 2  # the 1st and the 10th of the window, with their counts
    assert '"count_in_window": 1,' in refused[0].detail
    assert '"count_in_window": 10,' in refused[1].detail
    assert all("x" * 40 not in e.path + e.detail for e in refused)  # never the token


@pytest.fixture
def strict(app, users, session):
    """An app server with three tries a minute per address for each step."""
    session.commit()
    return make_app(
        app.config["SQLALCHEMY_DATABASE_URI"],
        LOGIN_RATE_LIMIT_ADDRESS="3 per minute",
        RATELIMIT_KEY_PREFIX=f"test-half-login-{uuid.uuid4().hex}",
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/password-reset/" + "x" * 43),
        ("POST", "/password-reset/" + "x" * 43),
        ("GET", "/login/sso/callback?code=x&state=y"),
    ],
)
def test_reset_links_and_sso_callbacks_are_limited_per_address(strict, method, path):
    client = strict.test_client()
    for _ in range(3):
        assert client.open(path, method=method).status_code != 429
    stopped = client.open(path, method=method)
    assert stopped.status_code == 429 and stopped.headers["Retry-After"]
    other = strict.test_client()
    assert (
        other.open(path, method=method, environ_base={"REMOTE_ADDR": "10.9.9.9"}).status_code != 429
    )


@pytest.mark.parametrize("step", ["code", "enrol"])
def test_second_factor_codes_are_limited_per_address(strict, users, session, step):
    target = "admin"
    if step == "enrol":
        admin = fresh(users["admin"])
        admin.totp_secret, admin.totp_enabled_at = None, None
        session.commit()
    client = strict.test_client()
    response = client.post("/login", data={"username": target, "password": PASSWORD})
    assert where(response) == f"/login/{step}"
    for _ in range(3):
        assert client.post(f"/login/{step}", data={"code": "000000"}).status_code in (401, 422)
    stopped = client.post(f"/login/{step}", data={"code": totp_code()})
    assert stopped.status_code == 429 and "second-factor codes" in shown(stopped)
    assert not logged_in(client)
    assert (
        session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "login")
        )
        == 0
    )
