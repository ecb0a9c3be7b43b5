"""What a visitor without an account can make the tracker write, and how fast they may try.

- An anonymous visitor gets no ``web_session`` row (the login form's CSRF token travels
  in a signed cookie), and CSRF is still enforced on the login form.
- Rate limits on the login form (per address, per account typed) and the API (per token,
  per address without one), on memory storage and on the real Redis shared by two app
  servers; a stopped request answers 429 with Retry-After.
- A bad bearer token or a 429 is audited per address and window with its count, not one
  chained row each.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis
import time_machine
from sqlalchemy import func, select

from config import Config
from tests.conftest import PASSWORD, make_app
from tracker.api.services import create_token
from tracker.audit.models import AuditEntry
from tracker.extensions import db
from tracker.users.models import WebSession

REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_LIMITS = {
    name: getattr(Config, name)
    for name in (
        "LOGIN_RATE_LIMIT_ADDRESS",
        "LOGIN_RATE_LIMIT_ACCOUNT",
        "API_RATE_LIMIT",
        "API_ANONYMOUS_RATE_LIMIT",
    )
}


def session_rows() -> int:
    return db.session.scalar(select(func.count()).select_from(WebSession))


def entries(action: str) -> list[AuditEntry]:
    query = select(AuditEntry).where(AuditEntry.action == action)
    return list(db.session.scalars(query.order_by(AuditEntry.id)))


def storage_kind(client) -> str:
    return client.application.config["RATELIMIT_STORAGE_URI"].split(":")[0]


def log_in(client, username: str, password: str = PASSWORD, address: str = "10.0.0.1"):
    return client.post(
        "/login",
        data={"username": username, "password": password},
        environ_base={"REMOTE_ADDR": address},
    )


@pytest.fixture(params=["memory", "redis"])
def storage(request):
    """A limit storage: this process's memory, or the real Redis under a key prefix of
    this test's own (deleted afterwards)."""
    prefix = f"test-ratelimit-{uuid.uuid4().hex}"
    if request.param == "memory":
        yield {"RATELIMIT_STORAGE_URI": "memory://", "RATELIMIT_KEY_PREFIX": prefix}
        return
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.fail("Redis is not running at 127.0.0.1:6379 (.ci/run starts it)")
    try:
        yield {"RATELIMIT_STORAGE_URI": REDIS_URL, "RATELIMIT_KEY_PREFIX": prefix}
    finally:
        for key in client.scan_iter(match=f"*{prefix}*"):
            client.delete(key)
        client.close()


@pytest.fixture
def limited(app, users, session, storage):
    """A factory of app servers with the default limits (as a deployment has them) on
    the test's database and limit storage."""
    session.commit()
    url = app.config["SQLALCHEMY_DATABASE_URI"]

    def server(**overrides):
        return make_app(url, **{**DEFAULT_LIMITS, **storage, **overrides})

    return server


# -- no row for an anonymous visitor --------------------------------------------------------


def test_an_anonymous_visitor_writes_no_session_row(client, users, session):
    session.commit()
    for _ in range(30):
        response = client.get("/login")
        assert response.status_code == 200
        assert "tracker_session=" not in response.headers.get("Set-Cookie", "")
    client.get("/")  # sent to log in, with a message: kept in the signed cookie
    log_in(client, "nobody", "a wrong password")
    assert session_rows() == 0
    assert client.get_cookie("tracker_session") is None
    # The login makes the first row, and the anonymous cookie goes.
    assert log_in(client, "coordinator").status_code == 302
    assert session_rows() == 1
    assert client.get_cookie("tracker_session_anon") is None
    # A logout deletes the row; the visitor is anonymous again, row-less.
    assert client.post("/logout").status_code == 302
    assert session_rows() == 0
    assert "You have logged out." in client.get("/login").get_data(as_text=True)
    assert session_rows() == 0


def test_a_forged_or_tampered_anonymous_cookie_is_ignored(client, users, session):
    session.commit()
    client.get("/")
    value = client.get_cookie("tracker_session_anon").value
    client.set_cookie("tracker_session_anon", value[:-4] + "AAAA")
    body = client.get("/login").get_data(as_text=True)
    assert "Please log in to continue." not in body  # the tampered data was not read
    # Flask's ordinary signed session cookie, under the same key, does not log anyone in.
    from flask.sessions import SecureCookieSessionInterface

    signer = SecureCookieSessionInterface().get_signing_serializer(client.application)
    client.set_cookie("tracker_session_anon", signer.dumps({"_user_id": str(1)}))
    assert client.get("/").status_code == 302


def test_csrf_is_enforced_on_the_login_form_without_a_server_session(app, users, session):
    session.commit()
    server = make_app(app.config["SQLALCHEMY_DATABASE_URI"], WTF_CSRF_ENABLED=True)
    browser = server.test_client()
    page = browser.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    assert session_rows() == 0
    form = {"username": "coordinator", "password": PASSWORD}
    assert browser.post("/login", data=form).status_code == 400
    assert browser.post("/login", data={**form, "csrf_token": token[:-2] + "xx"}).status_code == 400
    # A token from another browser's page does not fit this browser's cookie.
    other = server.test_client()
    other_page = other.get("/login").get_data(as_text=True)
    other_token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', other_page)
    assert browser.post(
        "/login", data={**form, "csrf_token": other_token.group(1)}
    ).status_code == (400)
    assert session_rows() == 0
    assert browser.post("/login", data={**form, "csrf_token": token}).status_code == 302
    assert session_rows() == 1
    # The logged-in session has a CSRF token of its own: the login page's no longer fits.
    page = browser.get("/account/").get_data(as_text=True)
    assert token.split(".")[0] not in page
    assert browser.post("/logout", data={"csrf_token": token}).status_code == 400


# -- rate limits ------------------------------------------------------------------------


def test_the_default_limits_are_the_documented_ones():
    assert DEFAULT_LIMITS == {
        "LOGIN_RATE_LIMIT_ADDRESS": "10 per minute;100 per hour",
        "LOGIN_RATE_LIMIT_ACCOUNT": "5 per minute",
        "API_RATE_LIMIT": "300 per minute",
        "API_ANONYMOUS_RATE_LIMIT": "30 per minute",
    }
    assert Config.RATELIMIT_STORAGE_URI == "memory://"
    with open("docs/configuration.md", encoding="utf-8") as readme:
        text = readme.read()
    for value in DEFAULT_LIMITS.values():
        assert f"`{value}`" in text


def test_password_spraying_from_one_address_is_stopped(limited, users):
    """4 wrong passwords on each of many accounts (below the lockout at 5) from one
    address: the 11th attempt in a minute is refused, the right password too."""
    server = limited().test_client()
    start = datetime.now(UTC).replace(second=0, microsecond=0)
    names = ["coordinator", "surgeon", "viewer", "admin", "coordinator2", "surgeon2"]
    statuses = []
    with time_machine.travel(start, tick=False):
        for name in names:
            for _ in range(4):
                statuses.append(log_in(server, name, "wrong password!").status_code)
    assert statuses[:10] == [401] * 10
    assert set(statuses[10:]) == {429}
    with time_machine.travel(start + timedelta(seconds=20), tick=False):
        response = log_in(server, "coordinator")
        assert response.status_code == 429
        seconds = int(response.headers["Retry-After"])
        # Memory counts in the (travelled) clock of the app (the window's end rounded up
        # to a whole second); Redis in its own.
        if storage_kind(server) == "memory":
            assert seconds in (40, 41)
        else:
            assert 0 < seconds <= 60
        body = response.get_data(as_text=True)
        assert "Too many login attempts from your computer" in body
        assert f"try again in {seconds} seconds" in body
        # Another address is not held back.
        assert log_in(server, "viewer", address="10.0.0.2").status_code == 302
    # 15 stopped attempts, two audit entries: the window's 1st and 10th, with the count.
    first, tenth = entries("rate_limited")
    assert '"count_in_window": 1,' in first.detail and '"count_in_window": 10,' in tenth.detail
    assert first.address == tenth.address == "10.0.0.1"
    assert "Too many login attempts from your computer" in first.detail
    # Stopped attempts never reached the accounts: no lockout came of them.
    assert all(u.failed_logins <= 4 for u in db.session.scalars(select(type(users["admin"]))))


def test_the_address_limit_lifts_after_its_minute(app, users, session):
    session.commit()
    server = make_app(app.config["SQLALCHEMY_DATABASE_URI"], **DEFAULT_LIMITS).test_client()
    start = datetime.now(UTC).replace(second=0, microsecond=0)
    with time_machine.travel(start, tick=False):
        for _ in range(10):
            log_in(server, "ghost", "wrong", address="10.0.0.3")
        assert log_in(server, "coordinator", address="10.0.0.3").status_code == 429
    with time_machine.travel(start + timedelta(seconds=61), tick=False):
        assert log_in(server, "coordinator", address="10.0.0.3").status_code == 302


def test_the_address_allows_100_login_posts_an_hour(app, users, session):
    """10 a minute for 10 minutes, then the hour's 100 are spent (every POST counts, a
    form with no password too)."""
    session.commit()
    server = make_app(app.config["SQLALCHEMY_DATABASE_URI"], **DEFAULT_LIMITS).test_client()
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    for minute in range(10):
        with time_machine.travel(start + timedelta(seconds=61 * minute), tick=False):
            statuses = {
                log_in(server, f"user{minute}-{i}", "", address="10.0.0.4").status_code
                for i in range(10)
            }
            assert statuses == {422}
    with time_machine.travel(start + timedelta(seconds=61 * 10), tick=False):
        response = log_in(server, "coordinator", address="10.0.0.4")
        assert response.status_code == 429
        assert int(response.headers["Retry-After"]) in (2990, 2991)
        assert "try again in 50 minutes" in response.get_data(as_text=True)


def test_one_account_from_many_addresses_is_stopped(limited, users):
    """5 attempts a minute on one username typed, whatever the address (an unknown
    name: no lockout to do it instead)."""
    server = limited().test_client()
    statuses = [
        log_in(server, " Ghost" if i % 2 else "ghost", "wrong", address=f"10.1.0.{i}").status_code
        for i in range(6)
    ]
    assert statuses == [401] * 5 + [429]
    response = log_in(server, "ghost", "wrong", address="10.1.0.99")
    assert "Too many login attempts for this username" in response.get_data(as_text=True)
    assert log_in(server, "viewer", address="10.1.0.99").status_code == 302


def test_two_servers_share_the_counts_on_redis(app, users, session):
    """Several app servers: the limits count across them when they share Redis."""
    session.commit()
    prefix = f"test-ratelimit-{uuid.uuid4().hex}"
    settings = {
        **DEFAULT_LIMITS,
        "RATELIMIT_STORAGE_URI": REDIS_URL,
        "RATELIMIT_KEY_PREFIX": prefix,
    }
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    servers = [make_app(url, **settings).test_client() for _ in range(2)]
    try:
        statuses = [log_in(servers[i % 2], "ghost", "wrong").status_code for i in range(11)]
        assert statuses == [401] * 5 + [429] * 6  # the account's 5, over both servers
        counted = [e for e in entries("rate_limited")]
        # 6 stops: the 1st audited (with the count), the others only counted.
        assert len(counted) == 1 and '"count_in_window": 1' in counted[0].detail
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(match=f"*{prefix}*"):
            client.delete(key)
        client.close()


def test_api_calls_without_a_valid_token_are_limited_per_address(limited, users):
    server = limited().test_client()
    address = {"REMOTE_ADDR": "10.2.0.1"}
    for i in range(30):
        response = server.get(
            "/api/v1/definition",
            headers={"Authorization": f"Bearer trk_random{i}"},
            environ_base=address,
        )
        assert response.status_code == 401
    response = server.get(
        "/api/v1/definition", headers={"Authorization": "Bearer trk_more"}, environ_base=address
    )
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    body = response.get_json()
    assert body["error"] == "too_many_requests" and body["errors"] == {}
    assert "valid 'Authorization: Bearer <token>'" in body["message"]
    assert body["retry_after_seconds"] == int(response.headers["Retry-After"])
    # A valid token from the same address is not held back by the anonymous limit.
    _, plain = create_token(users["viewer"], "test")
    db.session.commit()
    headers = {"Authorization": f"Bearer {plain}"}
    assert (
        server.get("/api/v1/definition", headers=headers, environ_base=address).status_code == 200
    )


def test_api_calls_are_limited_per_token(limited, users):
    server = limited(API_RATE_LIMIT="3 per minute").test_client()
    tokens = {}
    for name in ("viewer", "surgeon"):
        _, plain = create_token(users[name], "test")
        tokens[name] = {"Authorization": f"Bearer {plain}"}
    db.session.commit()
    statuses = [
        server.get("/api/v1/definition", headers=tokens["viewer"]).status_code for _ in range(4)
    ]
    assert statuses == [200, 200, 200, 429]
    assert server.get("/api/v1/definition", headers=tokens["surgeon"]).status_code == 200


# -- failures audited in aggregate ---------------------------------------------------------


def test_bad_bearer_tokens_are_audited_per_address_and_window_not_per_call(limited, users):
    server = limited(API_ANONYMOUS_RATE_LIMIT="1000 per minute").test_client()
    before = len(entries("refused"))
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    # One travel throughout: back in real time between the windows, the memory storage's
    # expiry would drop the first window's count (it expires at its fake time + 30 min).
    with time_machine.travel(start + timedelta(minutes=1), tick=False) as traveller:
        for i in range(120):
            response = server.get(
                "/api/v1/definition",
                headers={"Authorization": f"Bearer trk_{i}"},
                environ_base={"REMOTE_ADDR": "10.3.0.1"},
            )
            assert response.status_code == 401
        failed = entries("api_token_failed")
        # The next window's first entry gives the previous window's total.
        traveller.shift(timedelta(minutes=15))
        server.get(
            "/api/v1/definition",
            headers={"Authorization": "Bearer trk_late"},
            environ_base={"REMOTE_ADDR": "10.3.0.1"},
        )
    assert len(entries("refused")) == before  # no row per call
    assert [e.detail.split('"count_in_window": ')[1].split(",")[0] for e in failed] == [
        "1",
        "10",
        "100",
    ]
    assert all(e.address == "10.3.0.1" and e.outcome == "refused" for e in failed)
    assert '"previous_window_count": 0' in failed[0].detail
    latest = entries("api_token_failed")[-1]
    assert '"count_in_window": 1' in latest.detail
    assert '"previous_window_count": 120' in latest.detail


def test_with_redis_unreachable_logins_go_on_and_failures_are_audited_one_by_one(
    app, users, session
):
    session.commit()
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    dead = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    server = make_app(url, **{**DEFAULT_LIMITS, "RATELIMIT_STORAGE_URI": dead}).test_client()
    assert log_in(server, "coordinator").status_code == 302
    for i in range(3):
        response = server.get("/api/v1/definition", headers={"Authorization": f"Bearer trk_{i}"})
        assert response.status_code == 401
    failed = entries("api_token_failed")
    assert len(failed) == 3
    assert all("the rate-limit storage is unreachable" in e.detail for e in failed)
