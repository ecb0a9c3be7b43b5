"""Two-factor login (TOTP, RFC 6238): enrolment, the second step of a login, replay,
recovery codes, the half-logged-in session, roles that require it, an administrator's
reset and the lockout. Times are moved with time_machine, never slept through."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pyotp
import pytest
import time_machine
from flask import url_for
from sqlalchemy import func, select

from tests.conftest import PASSWORD
from tests.helpers import log_in, make_user, totp_code
from tracker.audit.models import AuditEntry
from tracker.extensions import db
from tracker.users import two_factor
from tracker.users.models import RecoveryCode, User
from tracker.web.access import ACCESS, PENDING
from tracker.web.headers import CSP

STEP = 30


def shown(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def where(response) -> str:
    return urlsplit(response.headers.get("Location", "")).path


def audit(action: str, username: str | None = None) -> list[AuditEntry]:
    query = select(AuditEntry).where(AuditEntry.action == action)
    if username:
        query = query.where(AuditEntry.username == username)
    return list(db.session.scalars(query.order_by(AuditEntry.id)))


def fresh(user: User) -> User:
    db.session.expire_all()
    return db.session.get(User, user.id)


def password(client, username: str, secret: str = PASSWORD):
    return client.post("/login", data={"username": username, "password": secret})


def code(client, value: str):
    return client.post("/login/code", data={"code": value})


def step_start(offset_seconds: int = 3) -> datetime:
    """A moment just after a 30-second step began: the test has the step to itself."""
    now = int(datetime.now(UTC).timestamp())
    return datetime.fromtimestamp(now - now % STEP + STEP + offset_seconds, UTC)


def secret_on(page: str) -> str:
    match = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page)
    assert match, page[:2000]
    return match.group(1).replace(" ", "")


# -- enrolment -------------------------------------------------------------------------------


def test_enrolment_refuses_a_wrong_code_then_shows_ten_recovery_codes_once(
    client, users, login, session
):
    login("coordinator")  # not required for a coordinator by default: enrolled by choice
    assert "Set up two-factor login" in shown(client.get("/account/"))
    page = client.get("/account/two-factor")
    assert page.status_code == 200
    # The QR code is an image from a data: URI, which the CSP's img-src allows (no script).
    assert re.search(r'<img src="data:image/svg\+xml[^"]+"', page.get_data(as_text=True))
    assert "img-src 'self' data:" in CSP and page.headers["Content-Security-Policy"] == CSP
    secret = secret_on(shown(page))
    coordinator = fresh(users["coordinator"])
    # Kept encrypted: the database does not hold the secret in plain sight.
    assert coordinator.totp_secret and secret not in coordinator.totp_secret
    assert two_factor.pending_secret(coordinator, client.application.extensions["audit_key"]) == (
        secret
    )
    with pytest.raises(two_factor.TwoFactorError, match="cannot be read"):
        two_factor._secret_of(coordinator, b"another key" * 4)

    wrong = pyotp.TOTP(secret).at(datetime.now(UTC) - timedelta(minutes=10))
    refused = client.post("/account/two-factor", data={"code": wrong})
    assert refused.status_code == 422
    assert "That code does not match" in shown(refused)
    assert not fresh(users["coordinator"]).two_factor_enrolled
    assert secret_on(shown(refused)) == secret  # the same key, to try again

    done = client.post("/account/two-factor", data={"code": pyotp.TOTP(secret).now()})
    assert done.status_code == 200
    codes = re.findall(r"<li>([a-z2-9]{5}-[a-z2-9]{5})</li>", done.get_data(as_text=True))
    assert len(set(codes)) == 10
    assert "will not be shown again" in shown(done)
    assert fresh(users["coordinator"]).two_factor_enrolled
    stored = set(session.scalars(select(RecoveryCode.code_hash)))
    assert len(stored) == 10 and not stored & set(codes)  # hashed
    assert audit("two_factor_enrolled", "coordinator")
    account = shown(client.get("/account/"))
    assert "10 of 10 recovery codes left" in account
    assert not any(c in account for c in codes)  # shown once only
    # Already set up: the setup page sends back to the account page.
    assert where(client.get("/account/two-factor")) == "/account/"


# -- logging in --------------------------------------------------------------------------------


def test_login_with_a_code_and_a_replayed_code_is_refused(app, users, session):
    session.commit()
    at = step_start()
    with time_machine.travel(at, tick=False):
        client = app.test_client()
        first = password(client, "admin")
        assert first.status_code == 302 and where(first) == "/login/code"
        assert where(client.get("/")) == "/login/code"  # not logged in yet
        admin_code = totp_code(at)
        done = code(client, admin_code)
        assert done.status_code == 302 and where(done) == "/"
        assert client.get("/").status_code == 200
        (entry,) = audit("login", "admin")
        assert "authenticator" in entry.detail
        assert fresh(users["admin"]).totp_last_step == int(at.timestamp()) // STEP
        client.post("/logout")

        # The same code again, within its step (seen over a shoulder): refused.
        thief = app.test_client()
        assert where(password(thief, "admin")) == "/login/code"
        replay = code(thief, admin_code)
        assert replay.status_code == 401
        assert "was used already" in shown(replay)
        assert where(thief.get("/")) == "/login/code"
        assert audit("two_factor_failed", "admin")
        assert fresh(users["admin"]).failed_logins == 1

    with time_machine.travel(at + timedelta(seconds=STEP), tick=False):
        # Half a minute later the old code is one step back: still refused (it was used).
        assert code(thief, admin_code).status_code == 401
        assert code(thief, totp_code(at + timedelta(seconds=STEP))).status_code == 302
        assert thief.get("/").status_code == 200
        assert fresh(users["admin"]).failed_logins == 0  # a whole login resets the count


def test_a_recovery_code_logs_in_once(app, users, session):
    codes = two_factor.new_recovery_codes(users["admin"], datetime.now(UTC))
    session.commit()
    client = app.test_client()
    assert where(password(client, "admin")) == "/login/code"
    done = code(client, codes[0].upper())  # as typed from paper: case and spaces forgiven
    assert done.status_code == 302 and where(done) == "/"
    assert client.get("/").status_code == 200
    (used,) = audit("recovery_code_used", "admin")
    assert '"left": 9' in used.detail
    assert "9 of 10 recovery codes left" in shown(client.get("/account/"))
    client.post("/logout")

    again = app.test_client()
    assert where(password(again, "admin")) == "/login/code"
    assert code(again, codes[0]).status_code == 401
    assert where(again.get("/")) == "/login/code"
    assert code(again, codes[1]).status_code == 302


def test_new_recovery_codes_need_a_fresh_code_and_replace_the_old(app, users, session):
    old = two_factor.new_recovery_codes(users["admin"], datetime.now(UTC))
    session.commit()
    at = step_start()
    with time_machine.travel(at, tick=False):
        client = app.test_client()
        log_in(client, "admin", PASSWORD)  # uses the current step's code
        refused = client.post("/account/two-factor/recovery-codes", data={"code": "123456"})
        assert refused.status_code == 422 and "does not match" in shown(refused)
        assert audit("two_factor_failed", "admin")  # the refusal is kept in the log
        # The code just used to log in is not "fresh": it was used.
        reused = client.post("/account/two-factor/recovery-codes", data={"code": totp_code(at)})
        assert reused.status_code == 422
    with time_machine.travel(at + timedelta(seconds=STEP), tick=False):
        renewed = client.post(
            "/account/two-factor/recovery-codes",
            data={"code": totp_code(at + timedelta(seconds=STEP))},
        )
        assert renewed.status_code == 200
        new = re.findall(r"<li>([a-z2-9]{5}-[a-z2-9]{5})</li>", renewed.get_data(as_text=True))
        assert len(new) == 10 and not set(new) & set(old)
        assert audit("recovery_codes_renewed", "admin")
        assert not two_factor.use_recovery_code(users["admin"], old[0], datetime.now(UTC))
        assert two_factor.recovery_codes_left(users["admin"]) == 10


# -- the half-logged-in session ---------------------------------------------------------------


def _urls(app) -> list[tuple[str, str, str]]:
    values = {"trigger": "add_note", "filename": "tracker.css", "name": "referrals"}
    out = []
    for rule in app.url_map.iter_rules():
        args = {name: values.get(name, 1) for name in rule.arguments}
        if rule.endpoint == "bootstrap.static":
            args["filename"] = "css/bootstrap.min.css"
        with app.test_request_context():
            path = url_for(rule.endpoint, **args)
        for method in sorted(rule.methods & {"GET", "POST", "PATCH"}):
            out.append((rule.endpoint, method, path))
    return out


@pytest.mark.parametrize("enrolled", [True, False], ids=["code", "enrolment"])
def test_the_password_alone_reaches_nothing_but_the_second_step_and_logout(
    app, users, session, enrolled
):
    """Every endpoint of the url_map, with a session that passed the password only."""
    if not enrolled:
        users["admin"].totp_enabled_at = None
        users["admin"].totp_secret = None
    session.commit()
    client = app.test_client()
    step = "/login/code" if enrolled else "/login/enrol"
    assert where(password(client, "admin")) == step
    allowed = {e for e, rule in ACCESS.items() if PENDING in rule.roles}
    walked = 0
    for endpoint, method, path in _urls(app):
        if endpoint in ("auth.logout", "auth.reset_password"):
            continue  # they end the half login (below, and test_half_login.py)
        response = client.open(path, method=method, data={} if method != "GET" else None)
        response.close()  # a static file is streamed
        walked += 1
        if endpoint.startswith("api."):
            # The API reads no session: a half login is no login there.
            assert response.status_code in (200, 401), (endpoint, response.status_code)
            if response.status_code == 200:
                assert endpoint == "api.openapi"
        elif endpoint in allowed and not endpoint.startswith("auth."):
            assert response.status_code == 200, endpoint  # static files, healthz
        elif endpoint in allowed:
            # The step this login is at answers (an empty form: 422); the other sends there.
            if response.status_code == 302:
                assert where(response) == step, (endpoint, where(response))
            else:
                assert urlsplit(path).path == step, endpoint
                assert response.status_code == (200 if method == "GET" else 422), endpoint
        else:
            assert response.status_code == 302, (endpoint, method, response.status_code)
            assert where(response) == step, (endpoint, method, where(response))
    assert walked > 60
    admin = fresh(users["admin"])
    # The password alone changed nothing of the second factor (no new secret, no use).
    assert admin.two_factor_enrolled is enrolled and admin.totp_last_step is None
    if enrolled:
        assert two_factor.verify(admin, totp_code(), app.extensions["audit_key"], datetime.now(UTC))
    assert not session.scalar(
        select(func.count())
        .select_from(AuditEntry)
        .where(AuditEntry.action == "login", AuditEntry.username == "admin")
    )
    out = client.post("/logout")
    assert where(out) == "/login"
    assert where(client.get("/")) == "/login"  # cancelled: back to the start


# -- roles that require it ---------------------------------------------------------------------


def test_a_required_role_without_a_second_factor_is_taken_to_enrolment(app, users, session):
    admin2 = User(username="admin2", role="admin", full_name="Second Admin", active=True)
    admin2.password_hash = users["admin"].password_hash
    session.add(admin2)
    session.commit()
    client = app.test_client()
    first = password(client, "admin2")
    assert where(first) == "/login/enrol"
    assert where(client.get("/users/")) == "/login/enrol"
    assert where(client.get("/login/code")) == "/login/enrol"
    page = client.get("/login/enrol")
    assert page.status_code == 200 and 'src="data:image/svg+xml' in page.get_data(as_text=True)
    secret = secret_on(shown(page))
    assert client.post("/login/enrol", data={"code": "000000"}).status_code == 422
    assert where(client.get("/")) == "/login/enrol"
    done = client.post("/login/enrol", data={"code": pyotp.TOTP(secret).now()})
    assert done.status_code == 200
    assert len(re.findall(r"<li>[a-z2-9]{5}-[a-z2-9]{5}</li>", done.get_data(as_text=True))) == 10
    assert client.get("/users/").status_code == 200
    assert audit("two_factor_enrolled", "admin2")
    (entry,) = audit("login", "admin2")
    assert "setting up" in entry.detail


def test_required_roles_are_configurable(app, client, users, session, monkeypatch):
    session.commit()
    assert where(password(client, "coordinator")) == "/my-work/"  # default: administrators only
    client.post("/logout")
    monkeypatch.setitem(app.config, "TOTP_REQUIRED_ROLES", "admin,surgeon,coordinator,viewer")
    for username in ("coordinator", "surgeon", "viewer"):
        other = app.test_client()
        assert where(password(other, username)) == "/login/enrol", username
    # Logged in before the rule: set it up before anything else.
    monkeypatch.setitem(app.config, "TOTP_REQUIRED_ROLES", "admin")
    assert where(password(client, "coordinator")) == "/my-work/"
    monkeypatch.setitem(app.config, "TOTP_REQUIRED_ROLES", "admin,coordinator")
    assert where(client.get("/")) == "/account/two-factor"
    assert client.get("/account/two-factor").status_code == 200


# -- an administrator's reset ------------------------------------------------------------------


def test_an_administrators_reset_is_audited_and_forces_enrolment_again(app, users, session):
    admin2 = make_user("admin2", "admin")  # enrolled with the test secret
    session.flush()
    two_factor.new_recovery_codes(admin2, datetime.now(UTC))
    session.commit()
    theirs = app.test_client()
    assert log_in(theirs, "admin2", PASSWORD).status_code == 302
    assert theirs.get("/users/").status_code == 200
    mine = app.test_client()
    assert log_in(mine, "admin", PASSWORD).status_code == 302
    assert "Reset two-factor login" in shown(mine.get(f"/users/{admin2.id}"))
    done = mine.post(f"/users/{admin2.id}/two-factor/reset")
    assert done.status_code == 302 and where(done) == f"/users/{admin2.id}"
    (entry,) = audit("two_factor_reset")
    assert entry.username == "admin" and '"username": "admin2"' in entry.detail
    reset = fresh(admin2)
    assert (reset.totp_secret, reset.totp_enabled_at, reset.totp_last_step) == (None, None, None)
    assert two_factor.recovery_codes_left(reset) == 0
    assert where(theirs.get("/users/")) == "/login"  # their sessions ended
    assert where(password(theirs, "admin2")) == "/login/enrol"


# -- the lockout -------------------------------------------------------------------------------


def test_wrong_codes_count_toward_the_lockout_with_wrong_passwords(app, users, session):
    session.commit()
    lock_after = app.config["LOGIN_LOCK_AFTER"]
    client = app.test_client()
    for _ in range(2):
        assert password(client, "admin", "not the password").status_code == 401
    # The right password does not clear the count: only a whole login does.
    assert where(password(client, "admin")) == "/login/code"
    assert fresh(users["admin"]).failed_logins == 2
    for n in range(3, lock_after):
        assert code(client, "000000").status_code == 401
        assert fresh(users["admin"]).failed_logins == n
    locked = code(client, "000000")
    assert locked.status_code == 302 and where(locked) == "/login"
    assert "this account is locked" in shown(client.get("/login"))
    assert fresh(users["admin"]).locked_until is not None
    assert audit("login_locked", "admin") and len(audit("two_factor_failed", "admin")) == 3
    # Locked: neither the password nor the right code gets in.
    assert password(client, "admin").status_code == 429
    assert where(client.get("/")) == "/login"


def test_a_code_in_other_scripts_digits_is_a_wrong_code_not_a_crash(app, users, session):
    session.commit()
    client = app.test_client()
    assert where(password(client, "admin")) == "/login/code"
    arabic_indic, fullwidth = "\u0661\u0662\u0663\u0664\u0665\u0666", "\uff11" * 6
    for typed in (arabic_indic, fullwidth, "12 34 56x", "x" * 32):
        answer = code(client, typed)
        assert answer.status_code == 401, (typed, answer.status_code)
        assert "That code is wrong" in shown(answer)


def test_the_command_line_resets_a_second_factor_audited(runner, users, session):
    """The last administrator who lost their phone and codes: reset from the server."""
    two_factor.new_recovery_codes(users["admin"], datetime.now(UTC))
    result = runner.invoke(args=["tracker", "reset-two-factor", "admin"])
    assert result.exit_code == 0, result.output
    assert "Reset admin's two-factor login" in result.output
    admin = fresh(users["admin"])
    assert not admin.two_factor_enrolled and admin.totp_secret is None
    assert two_factor.recovery_codes_left(admin) == 0
    (entry,) = audit("two_factor_reset")
    assert entry.address.startswith("cli:") and '"username": "admin"' in entry.detail
    unknown = runner.invoke(args=["tracker", "reset-two-factor", "nobody"])
    assert unknown.exit_code != 0 and "No user is called 'nobody'" in unknown.output


def test_a_secret_the_server_can_no_longer_read_says_to_ask_for_a_reset(
    app, users, session, monkeypatch
):
    session.commit()
    client = app.test_client()
    assert where(password(client, "admin")) == "/login/code"
    monkeypatch.setitem(app.extensions, "audit_key", b"a rotated audit key, 32 chars or more")
    answer = code(client, totp_code())
    assert answer.status_code == 302 and where(answer) == "/login"
    assert "ask an administrator to reset your second factor" in shown(client.get("/login"))
    assert where(client.get("/")) == "/login"  # not logged in, not half logged in
