"""Sessions kept on the server, passwords and the lockout, and the security headers.

Each test names the requirement of the security issue (ASVS level 2 / HIPAA) it proves.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import func, select

from tests.conftest import PASSWORD, make_app
from tests.helpers import driver
from tests.helpers import log_in as full_login
from tracker.audit.models import AuditEntry
from tracker.extensions import db
from tracker.users.models import User, WebSession
from tracker.users.passwords import check_password
from tracker.users.services import UserError, check_password_rules, create_user

COOKIE = "tracker_session"


def cookie_of(client) -> str | None:
    cookie = client.get_cookie(COOKIE)
    return cookie.value if cookie else None


def log_in(client, username: str, password: str = PASSWORD):
    return full_login(client, username, password)


def audit(action: str, **where) -> list[AuditEntry]:
    query = select(AuditEntry).where(AuditEntry.action == action)
    for name, value in where.items():
        query = query.where(getattr(AuditEntry, name) == value)
    return list(db.session.scalars(query.order_by(AuditEntry.id)))


# -- sessions -----------------------------------------------------------------------------


def test_the_cookie_holds_only_an_id_and_the_server_keeps_the_session(client, users, session):
    session.commit()
    assert log_in(client, "coordinator").status_code == 302
    sid = cookie_of(client)
    assert sid and len(sid) >= 40
    rows = session.scalars(select(WebSession).where(WebSession.user_id == users["coordinator"].id))
    rows = list(rows)
    assert len(rows) == 1
    # Stored as its hash: reading the table gives no cookie that works.
    assert rows[0].id_hash != sid and sid not in rows[0].data
    assert "coordinator" not in sid


def test_the_cookie_is_httponly_samesite_lax_and_secure_when_configured(app, users, session):
    session.commit()
    plain = app.test_client()
    header = log_in(plain, "coordinator").headers["Set-Cookie"]
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Secure" not in header
    secure_app = make_app(app.config["SQLALCHEMY_DATABASE_URI"], SESSION_COOKIE_SECURE=True)
    secure = secure_app.test_client()
    response = secure.post(
        "/login",
        data={"username": "surgeon", "password": PASSWORD},
        base_url="https://localhost",
    )
    assert response.status_code == 302
    header = response.headers["Set-Cookie"]
    assert "Secure" in header and "HttpOnly" in header
    # __Host-: the browser keeps it to this host (no Domain), path / and HTTPS only.
    assert header.startswith("__Host-tracker_session=")
    assert "Path=/;" in header + ";" and "Domain" not in header
    assert secure.get_cookie("tracker_session") is None
    assert secure.get("/", base_url="https://localhost").status_code == 200  # logged in


def test_a_login_starts_a_new_session_id(client, users, session):
    session.commit()
    # An id planted before the login (another user's browser, a crafted link) is never
    # adopted: the login makes its own.
    planted = "planted-" + "x" * 40
    client.set_cookie(COOKIE, planted)
    client.get("/")  # anonymous: sent to log in, with a message
    assert log_in(client, "coordinator").status_code == 302
    first = cookie_of(client)
    assert first and first != planted
    # Logging in again (after a logout) gives another id; the old one is worthless.
    client.post("/logout")
    assert log_in(client, "coordinator").status_code == 302
    second = cookie_of(client)
    assert second and second not in (first, planted)
    other = client.application.test_client()
    other.set_cookie(COOKIE, first)
    assert other.get("/").status_code == 302


def test_logout_ends_the_session_everywhere_a_copied_cookie_stops(client, users, session):
    session.commit()
    log_in(client, "coordinator")
    thief = client.application.test_client()
    thief.set_cookie(COOKIE, cookie_of(client))
    assert thief.get("/").status_code == 200  # the copy works while the session lives
    assert client.post("/logout").status_code == 302
    response = thief.get("/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert audit("logout", user_id=users["coordinator"].id)


def test_deactivating_an_account_ends_its_sessions_on_every_client(client, users, session):
    session.commit()
    log_in(client, "coordinator")
    laptop = client.application.test_client()
    log_in(laptop, "coordinator")
    admin = client.application.test_client()
    log_in(admin, "admin")
    coordinator = users["coordinator"]
    response = admin.post(f"/users/{coordinator.id}", data={"role": "coordinator"})  # active off
    assert response.status_code == 302
    assert (
        session.scalar(
            select(func.count()).select_from(WebSession).where(WebSession.user_id == coordinator.id)
        )
        == 0
    )
    for device in (client, laptop):
        assert device.get("/").status_code == 302
    assert audit("update_user")[-1].detail.count('"active": false') == 1


def test_the_session_ends_after_30_idle_minutes(client, users, session):
    session.commit()
    start = datetime.now(UTC)
    with time_machine.travel(start, tick=False):
        log_in(client, "coordinator")
    with time_machine.travel(start + timedelta(minutes=29), tick=False):
        assert client.get("/").status_code == 200  # activity moves the idle clock on
    with time_machine.travel(start + timedelta(minutes=58), tick=False):
        assert client.get("/").status_code == 200
    with time_machine.travel(start + timedelta(minutes=89), tick=False):
        response = client.get("/")
        assert response.status_code == 302
        page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "logged off after 30 minutes without activity" in page
    (expired,) = audit("session_expired", user_id=users["coordinator"].id)
    assert "30 minutes" in expired.detail


def test_the_session_ends_12_hours_after_login_however_active(client, users, session):
    session.commit()
    start = datetime.now(UTC)
    with time_machine.travel(start, tick=False):
        log_in(client, "coordinator")
    moment = start
    while moment < start + timedelta(hours=11, minutes=50):
        moment += timedelta(minutes=20)
        with time_machine.travel(moment, tick=False):
            assert client.get("/mdt/").status_code == 200
    with time_machine.travel(start + timedelta(hours=12, minutes=5), tick=False):
        response = client.get("/mdt/")
        assert response.status_code == 302
        page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "12 hours after you logged in" in page


def test_the_time_limits_are_configuration(app, users, session):
    session.commit()
    short = make_app(app.config["SQLALCHEMY_DATABASE_URI"], SESSION_IDLE_MINUTES=5)
    client = short.test_client()
    start = datetime.now(UTC)
    with time_machine.travel(start, tick=False):
        log_in(client, "viewer")
    with time_machine.travel(start + timedelta(minutes=6), tick=False):
        assert client.get("/").status_code == 302


def test_changing_the_password_ends_the_other_sessions(client, users, session):
    session.commit()
    log_in(client, "surgeon")
    other = client.application.test_client()
    log_in(other, "surgeon")
    new = "a much longer passphrase here"
    response = client.post(
        "/account/password", data={"current": PASSWORD, "new": new, "confirm": new}
    )
    assert response.status_code == 302
    assert client.get("/").status_code == 200  # this session stays
    assert other.get("/").status_code == 302  # the other ended
    assert log_in(client.application.test_client(), "surgeon", new).status_code == 302
    (changed,) = audit("password_changed", user_id=users["surgeon"].id)  # once, not twice
    assert changed.detail == '{"username": "surgeon"}' and not audit("update_user")


def test_password_change_refusals_say_what_to_do(client, users, session):
    session.commit()
    log_in(client, "surgeon")
    cases = [
        ({"current": "wrong", "new": "x" * 20, "confirm": "x" * 20}, "current password is wrong"),
        ({"current": PASSWORD, "new": "short", "confirm": "short"}, "12 to 128 characters"),
        (
            {"current": PASSWORD, "new": "long enough words", "confirm": "long enough wordz"},
            "differ",
        ),
        ({"current": PASSWORD, "new": "password1234", "confirm": "password1234"}, "commonest"),
    ]
    for data, message in cases:
        response = client.post("/account/password", data=data)
        assert response.status_code == 422
        assert message in response.get_data(as_text=True)
    assert check_password(users["surgeon"], PASSWORD)


def test_end_other_sessions(client, users, session):
    session.commit()
    log_in(client, "viewer")
    other = client.application.test_client()
    log_in(other, "viewer")
    assert "Log out everywhere else" in client.get("/account/").get_data(as_text=True)
    assert client.post("/account/sessions/end-others").status_code == 302
    assert client.get("/").status_code == 200
    assert other.get("/").status_code == 302


# -- passwords and the lockout -------------------------------------------------------------


def test_passwords_are_hashed_with_scrypt(users, session):
    user = create_user(username="newbie", role="viewer", password="plum orchard lantern")
    assert user.password_hash.startswith("scrypt:")
    assert "plum" not in user.password_hash


@pytest.mark.parametrize(
    ("password", "accepted"),
    [
        ("x7#kP9!mQ2$w"[:11], False),  # 11 characters
        ("plum orchard", True),  # 12
        ("q" * 20 + "plum orchard lantern" * 6, False),  # 140 > 128
        ("plum orchard lantern river stone " * 3 + "z" * 29, True),  # 128
        ("password1234", False),
        ("qwertyuiop12", False),
        ("123456789012", False),
        ("aaaaaaaaaaaa", False),
        ("newbie123456", False),  # the username and digits
    ],
)
def test_password_rules(password, accepted, session, app):
    with app.app_context():
        if accepted:
            check_password_rules(password, "newbie")
        else:
            with pytest.raises(UserError) as refused:
                check_password_rules(password, "newbie")
            assert refused.value.field == "password" and len(str(refused.value)) > 20


def test_five_failures_lock_the_account_for_15_minutes(client, users, session):
    session.commit()
    start = datetime.now(UTC)
    with time_machine.travel(start, tick=False):
        for _ in range(4):
            assert log_in(client, "coordinator", "wrong password!").status_code == 401
        response = log_in(client, "coordinator", "wrong password!")
        assert response.status_code == 429
        assert "locked until" in response.get_data(as_text=True)
        # Locked: even the right password is refused, and says why.
        response = log_in(client, "coordinator")
        assert response.status_code == 429
        assert "ask an administrator to unlock it" in response.get_data(as_text=True)
    with time_machine.travel(start + timedelta(minutes=14), tick=False):
        assert log_in(client, "coordinator").status_code == 429
    with time_machine.travel(start + timedelta(minutes=16), tick=False):
        assert log_in(client, "coordinator").status_code == 302
    session.refresh(users["coordinator"])
    assert users["coordinator"].failed_logins == 0
    # Every attempt is in the audit log, with its reason.
    uid = users["coordinator"].id
    failures = audit("login_failed", user_id=uid)
    assert [f.detail for f in failures] == ["wrong password"] * 5 + ["account locked"] * 2
    assert all(f.outcome == "refused" and f.address == "127.0.0.1" for f in failures)
    assert len(audit("login_locked", user_id=uid)) == 1
    assert len(audit("login", user_id=uid)) == 1


def test_a_success_resets_the_count(client, users, session):
    session.commit()
    for _ in range(4):
        log_in(client, "viewer", "wrong password!")
    assert log_in(client, "viewer").status_code == 302
    client.post("/logout")
    for _ in range(4):
        assert log_in(client, "viewer", "wrong password!").status_code == 401
    session.refresh(users["viewer"])
    assert users["viewer"].failed_logins == 4 and users["viewer"].locked_until is None


def test_the_count_lives_in_the_database_across_app_servers(app, users, session):
    """Two app processes (two apps, one database): failures on either add up."""
    session.commit()
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    servers = [make_app(url).test_client(), make_app(url).test_client()]
    statuses = [log_in(servers[i % 2], "surgeon", "wrong password!").status_code for i in range(5)]
    assert statuses == [401, 401, 401, 401, 429]
    assert log_in(servers[0], "surgeon").status_code == 429


def test_unknown_usernames_are_audited_and_answered_like_wrong_passwords(client, users, session):
    session.commit()
    unknown = log_in(client, "nobody-here", "whatever password")
    wrong = log_in(client, "admin", "whatever password")
    assert unknown.status_code == wrong.status_code == 401
    message = "Unknown username or wrong password, or the account is deactivated."
    assert message in unknown.get_data(as_text=True) and message in wrong.get_data(as_text=True)
    (entry,) = audit("login_failed", user_id=None)
    assert entry.detail == "unknown username"
    # What was typed is not kept (it may be a password typed in the wrong box): its
    # length and a keyed hash, the same for the same text.
    assert entry.username.startswith("unknown:") and entry.username.endswith(":11")
    assert "nobody" not in entry.username
    log_in(client, "Nobody-Here ", "another password")
    again = audit("login_failed", user_id=None)[-1]
    assert again.username == entry.username


def test_a_password_typed_as_the_username_never_reaches_the_audit_log(client, users, session):
    session.commit()
    secret = "my-real-Passw0rd-typed-here"
    log_in(client, secret, "whatever")
    for entry in session.scalars(select(AuditEntry)):
        for value in (entry.username, entry.detail, entry.path):
            assert secret.lower()[:6] not in (value or "").lower()


def test_an_administrator_unlocks_an_account(client, users, session):
    session.commit()
    for _ in range(5):
        log_in(client, "viewer", "wrong password!")
    admin = client.application.test_client()
    log_in(admin, "admin")
    page = admin.get(f"/users/{users['viewer'].id}").get_data(as_text=True)
    assert "Unlock now" in page
    assert admin.post(f"/users/{users['viewer'].id}/unlock").status_code == 302
    assert log_in(client, "viewer").status_code == 302


def test_a_deactivated_account_cannot_log_in(client, users, session):
    users["viewer"].active = False
    session.commit()
    assert log_in(client, "viewer").status_code == 401
    (entry,) = audit("login_failed", user_id=users["viewer"].id)
    assert entry.detail == "account deactivated"


# -- headers -------------------------------------------------------------------------------

PAGES = [
    "/",
    "/mdt/",
    "/patients/",
    "/reports/",
    "/this-week",
    "/account/",
    "/users/",
    "/audit/",
    "/worklist.csv",
]


def test_security_headers_on_every_kind_of_response(client, users, session):
    pathway = driver(users).pathway
    session.commit()
    responses = {"login page": client.get("/login"), "static": client.get("/static/tracker.css")}
    responses["healthz"] = client.get("/healthz")
    responses["api 401"] = client.get("/api/v1/definition")
    log_in(client, "admin")
    for path in [*PAGES, f"/pathways/{pathway.id}", f"/patients/{pathway.patient_id}"]:
        responses[path] = client.get(path)
    responses["404"] = client.get("/no/such/page")
    for name, response in responses.items():
        h = response.headers
        csp = h["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp, name
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp, name
        assert h["X-Content-Type-Options"] == "nosniff", name
        assert h["Referrer-Policy"] == "no-referrer", name
        assert "Strict-Transport-Security" not in h, name  # plain HTTP: no HSTS
        response.close()
    for name, response in responses.items():
        if name != "static":
            assert response.headers["Cache-Control"] == "no-store", name


def test_hsts_over_https(client, users, session):
    response = client.get("/login", base_url="https://localhost")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_forwarded_headers_are_believed_only_from_a_trusted_proxy(app, users, session):
    """Security issue, fault 7: X-Forwarded-* only from TRUSTED_PROXIES' addresses."""
    session.commit()
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    proxied = make_app(url, TRUSTED_PROXIES="10.0.0.0/24, 192.0.2.1")
    viewer = users["viewer"].id
    forwarded = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}

    def fail_login(client, peer, headers):
        return client.post(
            "/login",
            data={"username": "viewer", "password": "wrong password!"},
            headers=headers,
            environ_base={"REMOTE_ADDR": peer},
        )

    # From the proxy: the client's address and HTTPS are believed.
    response = fail_login(proxied.test_client(), "10.0.0.9", forwarded)
    assert "Strict-Transport-Security" in response.headers
    assert audit("login_failed", user_id=viewer)[-1].address == "203.0.113.7"
    # The proxy seen through a server bound to [::] (an IPv4-mapped address) is the proxy.
    fail_login(proxied.test_client(), "::ffff:10.0.0.9", {"X-Forwarded-For": "203.0.113.8"})
    assert audit("login_failed", user_id=viewer)[-1].address == "203.0.113.8"
    # Straight from a client that is not a proxy: neither is.
    response = fail_login(proxied.test_client(), "198.51.100.4", forwarded)
    assert "Strict-Transport-Security" not in response.headers
    assert audit("login_failed", user_id=viewer)[-1].address == "198.51.100.4"
    # A client's own X-Forwarded-For entry, passed on by the proxy, is not believed: the
    # address is the right-most one that is not a trusted proxy.
    chain = {"X-Forwarded-For": "10.0.0.1, 198.51.100.20, 192.0.2.1"}
    fail_login(proxied.test_client(), "10.0.0.9", chain)
    assert audit("login_failed", user_id=viewer)[-1].address == "198.51.100.20"
    # Without TRUSTED_PROXIES nobody is believed, the local machine included.
    fail_login(app.test_client(), "127.0.0.1", forwarded)
    assert audit("login_failed", user_id=viewer)[-1].address == "127.0.0.1"


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)
INLINE_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.I)


def test_no_page_carries_inline_script(client, users, session):
    """The CSP forbids inline script; no page may need it (it would silently break)."""
    run = driver(users, actor="surgeon")
    run.walk_to("mdt_review")
    pathway = run.pathway
    session.commit()
    log_in(client, "surgeon")
    paths = [
        *PAGES[:6],
        f"/pathways/{pathway.id}",
        f"/pathways/{pathway.id}/print",
        f"/pathways/{pathway.id}/mdt-outcome",
        f"/pathways/{pathway.id}/void",
        f"/pathways/{pathway.id}/amend/1",
        f"/patients/{pathway.patient_id}",
        "/patients/new",
        "/login",
    ]
    for path in paths:
        response = client.get(path)
        body = response.get_data(as_text=True)
        if response.mimetype != "text/html":
            continue
        assert not INLINE_SCRIPT.search(body), path
        assert not INLINE_HANDLER.search(body), path
        assert "javascript:" not in body.lower(), path


def test_user_count_unchanged_by_login_attempts(client, users, session):
    session.commit()
    before = session.scalar(select(func.count(User.id)))
    for name in ("x", "' OR 1=1 --", "<script>", "admin"):
        log_in(client, name, "' OR '1'='1")
    assert session.scalar(select(func.count(User.id))) == before


def test_a_session_deleted_while_its_request_runs_is_no_error(client, users, session, monkeypatch):
    """Another server logs the user out between this request's read of the session and
    its write of the last activity: the request ends normally, the session stays ended."""
    from sqlalchemy import text

    from tracker.web.sessions import ServerSessionInterface

    session.commit()
    start = datetime.now(UTC)
    with time_machine.travel(start, tick=False):
        log_in(client, "coordinator")
    original = ServerSessionInterface.open_session

    def open_then_lose(self, app, request):
        opened = original(self, app, request)
        if getattr(opened, "sid", None):
            # As another server would: a plain statement this session's objects know
            # nothing of.
            db.session.execute(text("DELETE FROM web_session"))
            db.session.commit()
        return opened

    monkeypatch.setattr(ServerSessionInterface, "open_session", open_then_lose)
    with time_machine.travel(start + timedelta(minutes=5), tick=False):
        assert client.get("/account/").status_code == 200  # read before it was lost
    monkeypatch.setattr(ServerSessionInterface, "open_session", original)
    assert client.get("/").status_code == 302


# -- password reset links ------------------------------------------------------------------

NEW_PASSWORD = "a much longer passphrase here"


def issue_link(client, user) -> str:
    """An administrator's link for ``user`` (the client is logged in as one): its path."""
    page = client.post(f"/users/{user.id}/reset-link")
    assert page.status_code == 200, page.text
    text = page.get_data(as_text=True)
    assert "will not be shown again" in text
    link = re.search(r'id="reset-link">([^<]+)<', text).group(1)
    assert link.startswith("http://localhost/password-reset/")
    return link.removeprefix("http://localhost")


def set_through(client, path: str, password: str = NEW_PASSWORD):
    return client.post(path, data={"new": password, "confirm": password})


@pytest.fixture
def admin_client(app, users, session):
    session.commit()
    admin = app.test_client()
    assert log_in(admin, "admin").status_code == 302
    return admin


def test_a_reset_link_sets_a_new_password_once(app, admin_client, users, session):
    from tracker.api.services import create_token
    from tracker.users.models import PasswordReset

    target = users["coordinator2"]
    _, plain = create_token(target, "feed")
    session.commit()
    logged_in = app.test_client()
    assert log_in(logged_in, "coordinator2").status_code == 302
    target.failed_logins, target.locked_until = 3, datetime.now(UTC) + timedelta(minutes=10)
    session.commit()

    path = issue_link(admin_client, target)
    secret = path.rsplit("/", 1)[1]
    # Only the hash is stored, and nowhere the token itself.
    (row,) = session.scalars(select(PasswordReset).where(PasswordReset.user_id == target.id))
    assert row.token_hash != secret and len(row.token_hash) == 64
    anonymous = app.test_client()
    form = anonymous.get(path)
    assert form.status_code == 200 and "Set a new password" in form.get_data(as_text=True)
    # The same rules as a password change; a refused password leaves the link usable.
    weak = set_through(anonymous, path, "password1234")
    assert weak.status_code == 422 and "commonest" in weak.get_data(as_text=True)
    done = set_through(anonymous, path)
    assert done.status_code == 302 and done.headers["Location"].endswith("/login")
    db.session.expire_all()
    stored = db.session.get(User, target.id)
    assert check_password(stored, NEW_PASSWORD) and not check_password(stored, PASSWORD)
    assert (stored.failed_logins, stored.locked_until) == (0, None)  # the lockout cleared
    assert logged_in.get("/").status_code == 302  # every session ended
    assert not session.scalars(select(WebSession).where(WebSession.user_id == target.id)).all()
    response = anonymous.get("/api/v1/definition", headers={"Authorization": f"Bearer {plain}"})
    assert response.status_code == 401  # every token revoked
    assert log_in(app.test_client(), "coordinator2", NEW_PASSWORD).status_code == 302
    # Once only.
    again = anonymous.get(path)
    text = again.get_data(as_text=True)
    assert again.status_code == 410 and "used already" in text and "Ask an administrator" in text
    assert set_through(anonymous, path, "another long passphrase too").status_code == 410
    db.session.expire_all()
    assert check_password(db.session.get(User, target.id), NEW_PASSWORD)
    # Audited: issued, used (with the password change), refused; never the token itself.
    (issued,) = audit("password_reset_issued", user_id=users["admin"].id)
    assert '"username": "coordinator2"' in issued.detail
    (used,) = audit("password_reset_used")
    assert '"username": "coordinator2"' in used.detail
    assert len(audit("password_changed")) == 1
    assert len(audit("password_reset_refused", outcome="refused")) == 2
    assert len(audit("revoke_token")) == 1
    entries = session.scalars(select(AuditEntry)).all()
    assert all(secret not in (e.path + e.detail) for e in entries)
    assert any("/password-reset/" in e.path for e in entries)


def test_a_reset_link_expires(app, admin_client, users, session, monkeypatch):
    target = users["viewer"]
    path = issue_link(admin_client, target)
    issued = datetime.now(UTC)
    with time_machine.travel(issued + timedelta(hours=23, minutes=59), tick=False):
        assert app.test_client().get(path).status_code == 200
    with time_machine.travel(issued + timedelta(hours=24, minutes=1), tick=False):
        anonymous = app.test_client()
        response = anonymous.get(path)
        assert set_through(anonymous, path).status_code == 410
    text = response.get_data(as_text=True)
    assert response.status_code == 410 and "expired" in text and "Ask an administrator" in text
    db.session.expire_all()
    assert check_password(db.session.get(User, target.id), PASSWORD)
    # The lifetime is configuration.
    monkeypatch.setitem(app.config, "PASSWORD_RESET_HOURS", 1)
    path = issue_link(admin_client, target)
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=61), tick=False):
        assert app.test_client().get(path).status_code == 410


def test_a_newer_reset_link_voids_the_older(app, admin_client, users, session):
    target = users["surgeon"]
    older = issue_link(admin_client, target)
    newer = issue_link(admin_client, target)
    anonymous = app.test_client()
    response = anonymous.get(older)
    assert response.status_code == 410 and "newer" in response.get_data(as_text=True)
    assert set_through(anonymous, older).status_code == 410
    assert set_through(anonymous, newer).status_code == 302


def test_an_unknown_reset_link_is_refused_and_links_need_an_active_account(
    app, admin_client, users, session
):
    from tracker.users.models import PasswordReset

    response = app.test_client().get("/password-reset/" + "x" * 43)
    text = response.get_data(as_text=True)
    assert response.status_code == 410 and "not valid" in text and "Ask an administrator" in text
    target = users["coordinator2"]
    target.active = False
    session.commit()
    refused = admin_client.post(f"/users/{target.id}/reset-link")
    assert refused.status_code == 422 and "activate the account first" in refused.text
    assert not session.scalars(select(PasswordReset)).all()


def test_a_reset_link_is_shown_once_to_the_administrator(app, admin_client, users, session):
    """The link is in the issuing response only; the edit page afterwards does not show it."""
    target = users["viewer"]
    path = issue_link(admin_client, target)
    page = admin_client.get(f"/users/{target.id}").get_data(as_text=True)
    assert path not in page and "Issue a password reset link" in page
    # The account form beside a shown link still saves the account (it issues no link).
    issued = admin_client.post(f"/users/{target.id}/reset-link").get_data(as_text=True)
    assert f'action="/users/{target.id}"' in issued
