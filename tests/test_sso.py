"""Single sign-on against a real OpenID Connect provider (node-oidc-provider, OpenID
Certified), started here on 127.0.0.1 from tests/oidc/provider.js.

No browser: the app's test client plays the tracker, a requests.Session plays the
browser at the provider (its login form), and the app itself calls the provider's token,
JWKS and userinfo endpoints, as in production.
"""

from __future__ import annotations

import html
import json
import os
import re
import select
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import pytest
import requests
import time_machine
from flask.json.tag import TaggedJSONSerializer
from sqlalchemy import select as sql_select

from tests.conftest import PASSWORD, make_app
from tests.helpers import log_in, make_user
from tracker.audit.models import AuditEntry
from tracker.extensions import db
from tracker.users.models import User, WebSession
from tracker.users.sessions import session_hash
from tracker.web.sessions import _anonymous_signer

OIDC_DIR = Path(__file__).parent / "oidc"
APP_BASE = "http://localhost"
CALLBACK = f"{APP_BASE}/login/sso/callback"
CLIENT_ID, CLIENT_SECRET = "tracker", "tracker-test-secret-0123456789"
IDP = "Hospital IdP"
COOKIE = "tracker_session"
ROLE_MAP = (
    "spine-admins=admin,spine-surgeons=surgeon,spine-coordinators=coordinator,spine-viewers=viewer"
)
IDP_PASSWORD = "idp-password-1"


# -- the provider --------------------------------------------------------------------------


def _node_or_fail() -> tuple[str, str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node and npm:
        return node, npm
    reason = "the OpenID Connect tests need Node.js and npm (Debian: apt-get install nodejs npm)"
    if os.environ.get("REQUIRE_ALL_BACKENDS"):
        pytest.fail(reason)  # CI must not skip them
    pytest.skip(reason)


def _accounts() -> dict:
    """The provider's accounts, by the name typed on its login form; ``sub`` is opaque."""

    def account(sub: str, username: str, groups: list[str], name: str) -> dict:
        return {
            "sub": sub,
            "password": IDP_PASSWORD,
            "claims": {
                "preferred_username": username,
                "name": name,
                "email": f"{username}@hospital.example",
                "email_verified": True,
                "groups": groups,
            },
        }

    return {
        "alice": account("idp-0001", "alice", ["staff", "spine-surgeons"], "Alice Surgeon"),
        "bob": account("idp-0002", "bob", ["staff", "radiology"], "Bob Unmapped"),
        "carol": account("idp-0003", "carol", ["spine-coordinators"], "Carol New"),
        "dora": account("idp-0004", "dora", ["spine-viewers"], "Dora Viewer"),
    }


@pytest.fixture(scope="session")
def provider(tmp_path_factory):
    node, npm = _node_or_fail()
    if not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        subprocess.run(  # the npm registry only, pinned by package-lock.json
            [npm, "ci", "--no-audit", "--no-fund"], cwd=OIDC_DIR, check=True, timeout=600
        )
    folder = tmp_path_factory.mktemp("oidc")
    accounts_file = folder / "accounts.json"
    accounts_file.write_text(json.dumps(_accounts()))
    env = {
        **os.environ,
        "CLIENT_ID": CLIENT_ID,
        "CLIENT_SECRET": CLIENT_SECRET,
        "REDIRECT_URIS": CALLBACK,
        "ACCOUNTS_FILE": str(accounts_file),
    }
    with (folder / "provider.log").open("wb") as log:
        process = subprocess.Popen(
            [node, "provider.js"], cwd=OIDC_DIR, env=env, stdout=subprocess.PIPE, stderr=log
        )
    try:
        ready, _, _ = select.select([process.stdout], [], [], 30)
        line = process.stdout.readline().decode() if ready else ""
        if not line.startswith("issuer "):
            raise RuntimeError(
                f"the OpenID provider did not start: {(folder / 'provider.log').read_text()}"
            )
        issuer = line.split()[1]
        deadline = time.monotonic() + 30
        while True:  # discovery answers: the provider is ready
            try:
                discovery = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=5)
                if discovery.ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the OpenID provider's discovery never answered")
            time.sleep(0.1)
        assert discovery.json()["issuer"] == issuer
        assert "S256" in discovery.json()["code_challenge_methods_supported"]
        yield SimpleNamespace(issuer=issuer, accounts_file=accounts_file)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


@pytest.fixture
def idp(provider):
    """The provider's accounts, changeable by a test and restored after it."""

    def change(login: str, **claims) -> None:
        accounts = json.loads(provider.accounts_file.read_text())
        accounts[login]["claims"].update(claims)
        provider.accounts_file.write_text(json.dumps(accounts))

    yield SimpleNamespace(issuer=provider.issuer, change=change)
    provider.accounts_file.write_text(json.dumps(_accounts()))


@pytest.fixture(scope="session")
def sso_app(app, provider):
    """The tracker with single sign-on, on the same database as ``app``."""
    made = make_app(
        app.config["SQLALCHEMY_DATABASE_URI"],
        OIDC_ISSUER=provider.issuer,
        OIDC_CLIENT_ID=CLIENT_ID,
        OIDC_CLIENT_SECRET=CLIENT_SECRET,
        OIDC_PROVIDER_NAME=IDP,
        OIDC_SCOPES="openid profile email groups",
        OIDC_ROLE_CLAIM="groups",
        OIDC_ROLE_MAP=ROLE_MAP,
        OIDC_CREATE_USERS=False,
        OIDC_ONLY=False,
    )
    yield made
    with made.app_context():
        db.engine.dispose()


@pytest.fixture
def sso(sso_app, session, idp, monkeypatch):
    """A browser's view: ``sso.client`` (the tracker) and helpers to sign in through the
    provider. ``sso.config(...)`` changes a setting for this test only."""

    def config(**values):
        for name, value in values.items():
            monkeypatch.setitem(sso_app.config, name, value)

    sso_app.extensions["tracker_limiter"].reset()  # counted refusals start at 1
    return SimpleNamespace(client=sso_app.test_client(), app=sso_app, config=config, idp=idp)


def start(client, next_page: str | None = None) -> str:
    """Press 'Sign in with ...': the tracker's redirect to the authorization endpoint."""
    path = "/login/sso/" + (f"?{urlencode({'next': next_page})}" if next_page else "")
    response = client.get(path)
    assert response.status_code == 302, response.text
    return response.headers["Location"]


def at_provider(authorize_url: str, login: str, password: str = IDP_PASSWORD) -> str:
    """The browser at the provider: its login form, until it sends the browser back to the
    tracker; returns that callback URL (with code, state and iss)."""
    with requests.Session() as browser:
        return _follow(
            browser, browser.get(authorize_url, allow_redirects=False, timeout=10), login, password
        )


def _follow(browser, response, login: str, password: str) -> str:
    for _ in range(10):
        if response.is_redirect:
            url = urljoin(response.url, response.headers["Location"])
            if url.startswith(APP_BASE):
                return url
            response = browser.get(url, allow_redirects=False, timeout=10)
            continue
        assert response.status_code == 200, (response.status_code, response.text)
        action = re.search(r'<form method="post" action="([^"]+)"', response.text)
        assert action, response.text
        response = browser.post(
            urljoin(response.url, action.group(1)),
            data={"login": login, "password": password},
            allow_redirects=False,
            timeout=10,
        )
    raise AssertionError("the provider never sent the browser back")


def back_at_tracker(client, callback_url: str):
    parts = urlsplit(callback_url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == CALLBACK
    return client.get(f"{parts.path}?{parts.query}")


def sign_in(client, login: str, next_page: str | None = None):
    return back_at_tracker(client, at_provider(start(client, next_page), login))


def user(username: str) -> User | None:
    db.session.expire_all()
    return db.session.scalar(sql_select(User).where(User.username == username))


def entries(action: str) -> list[AuditEntry]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            sql_select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
        )
    )


def session_row(client) -> WebSession | None:
    cookie = client.get_cookie(COOKIE)
    if cookie is None:
        return None
    db.session.expire_all()
    return db.session.get(WebSession, session_hash(cookie.value))


ANON = COOKIE + "_anon"


def anonymous_data(app, client) -> dict:
    """What the browser's signed anonymous cookie holds (readable by its holder)."""
    return _anonymous_signer(app).loads(client.get_cookie(ANON).value)


def _session_data(client) -> dict:
    return TaggedJSONSerializer().loads(session_row(client).data)


def logged_in_as(client) -> str | None:
    row = session_row(client)
    if row is None or row.user_id is None:
        return None
    return db.session.get(User, row.user_id).username


def shown(response) -> str:
    return re.sub(r"\s+", " ", html.unescape(response.get_data(as_text=True)))


# -- the login page ------------------------------------------------------------------------


def test_the_login_page_offers_the_provider_only_when_configured(sso, client):
    page = shown(sso.client.get("/login"))
    assert f"Sign in with {IDP}" in page and 'href="/login/sso/"' in page
    assert "Sign in with" not in shown(client.get("/login"))
    # Without OIDC_ISSUER the SSO addresses say so and send the browser to the password form.
    response = client.get("/login/sso/", follow_redirects=True)
    assert "Single sign-on is not set up on this server" in shown(response)
    assert client.get("/login/sso/callback?code=x&state=y").headers["Location"] == "/login"


def test_sso_settings_are_checked_at_start(app):
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    with pytest.raises(RuntimeError, match="OIDC_CLIENT_SECRET"):
        make_app(url, OIDC_ISSUER="http://127.0.0.1:1", OIDC_CLIENT_ID="x", OIDC_ROLE_MAP=ROLE_MAP)
    with pytest.raises(ValueError, match="the role must be one of"):
        make_app(
            url,
            OIDC_ISSUER="http://127.0.0.1:1",
            OIDC_CLIENT_ID="x",
            OIDC_CLIENT_SECRET="y",
            OIDC_ROLE_MAP="spine-surgeons=chief",
        )


# -- signing in ----------------------------------------------------------------------------


def test_sso_login_gives_a_new_server_session_with_the_mapped_role(sso, session):
    make_user("alice", "viewer")  # created by an administrator; not linked yet
    session.commit()
    client = sso.client
    authorize = start(client, next_page="/patients/")
    # The authorization request: the code flow, PKCE S256, a state and a nonce.
    query = parse_qs(urlsplit(authorize).query)
    assert authorize.startswith(f"{sso.idp.issuer}/")
    assert query["response_type"] == ["code"] and query["client_id"] == [CLIENT_ID]
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"][0]
    assert query["state"][0] and query["nonce"][0] and query["redirect_uri"] == [CALLBACK]
    # Not logged in yet: the state is in the signed anonymous cookie, no server row.
    assert client.get_cookie(COOKIE) is None
    assert any(k.startswith("_state_sso_") for k in anonymous_data(sso.app, client))

    response = back_at_tracker(client, at_provider(authorize, "alice"))

    assert response.status_code == 302 and response.headers["Location"] == "/patients/"
    # A fresh server-side session, as a password login gets; the anonymous cookie is gone.
    assert client.get_cookie(COOKIE) is not None and client.get_cookie(ANON) is None
    assert logged_in_as(client) == "alice"
    assert _session_data(client)["login_method"] == "sso"
    alice = user("alice")
    assert alice.role == "surgeon"  # from the groups claim, not what the admin chose
    assert alice.sso_subject == "idp-0001"  # linked at this first sign-in
    assert alice.last_login_at is not None
    assert client.get("/patients/").status_code == 200
    (login,) = entries("login")
    assert login.user_id == alice.id
    assert json.loads(login.detail) == {
        "linked": True,
        "method": "sso",
        "role": "surgeon",
        "role_was": "viewer",
        "subject": "idp-0001",
    }
    # The link and the role change are audited as the user's own, in the same transaction.
    (change,) = entries("update_user")
    assert change.user_id == alice.id
    assert json.loads(change.detail) == {
        "fields": ["role", "sso_subject"],
        "role": "surgeon",
        "username": "alice",
    }
    # Logging out ends it like any other session.
    client.post("/logout")
    assert client.get("/patients/").status_code == 302


def test_the_role_follows_the_claim_at_every_sign_in(sso, session):
    make_user("alice", "surgeon")
    session.commit()
    assert sign_in(sso.client, "alice").headers["Location"] == "/my-work/"
    assert user("alice").role == "surgeon" and len(entries("update_user")) == 1  # the link
    # The identity provider moves Alice to the coordinators, and renames her account: the
    # stored subject still finds her.
    sso.idp.change("alice", groups=["spine-coordinators"], preferred_username="alice.smith")
    again = sso_app_client(sso)
    response = sign_in(again, "alice")
    assert response.status_code == 302 and response.headers["Location"] == "/my-work/"
    assert logged_in_as(again) == "alice"
    assert user("alice").role == "coordinator"
    last = json.loads(entries("login")[-1].detail)
    assert last["role"] == "coordinator" and last["role_was"] == "surgeon"
    change = entries("update_user")[-1]
    assert change.user_id == user("alice").id
    assert json.loads(change.detail) == {
        "fields": ["role"],
        "role": "coordinator",
        "username": "alice",
    }
    # Same claims again: no change.
    sign_in(sso_app_client(sso), "alice")
    assert len(entries("update_user")) == 2


def sso_app_client(sso):
    return sso.app.test_client()


def test_claims_that_map_to_no_role_are_refused_and_audited(sso, session):
    make_user("bob", "surgeon")
    session.commit()
    response = sign_in(sso.client, "bob")
    assert response.status_code == 403
    assert f"Your {IDP} account has no group that gives a role" in shown(response)
    assert logged_in_as(sso.client) is None
    assert sso.client.get("/").status_code == 302  # still not logged in
    bob = user("bob")
    assert bob.role == "surgeon" and bob.sso_subject is None  # nothing written
    (failed,) = entries("login_failed")
    assert failed.outcome == "refused" and failed.user_id == bob.id
    assert json.loads(failed.detail) == {
        "method": "sso",
        "reason": "no role: groups = staff, radiology",
    }
    assert entries("login") == []


def test_an_unknown_user_is_refused_while_just_in_time_accounts_are_off(sso, session):
    response = sign_in(sso.client, "carol")
    assert response.status_code == 403
    assert "There is no tracker account for 'carol'" in shown(response)
    assert user("carol") is None and logged_in_as(sso.client) is None
    (failed,) = entries("login_failed")
    assert failed.username == "carol"
    assert "just-in-time creation is off" in json.loads(failed.detail)["reason"]


def test_just_in_time_creates_an_sso_only_account_with_the_mapped_role(sso, session):
    sso.config(OIDC_CREATE_USERS=True)
    response = sign_in(sso.client, "carol")
    assert response.status_code == 302
    carol = user("carol")
    assert (carol.role, carol.full_name, carol.sso_subject) == (
        "coordinator",
        "Carol New",
        "idp-0003",
    )
    assert carol.sso_only and logged_in_as(sso.client) == "carol"
    assert json.loads(entries("login")[-1].detail)["created"] is True
    assert entries("create_user")[-1].username == "carol"
    assert json.loads(entries("create_user")[-1].detail) == {
        "role": "coordinator",
        "username": "carol",
    }
    # No password opens it.
    password = sso.app.test_client().post(
        "/login", data={"username": "carol", "password": "!single-sign-on-only"}
    )
    assert password.status_code == 401
    # An unmapped user gets no account even so.
    assert sign_in(sso.app.test_client(), "bob").status_code == 403
    assert user("bob") is None


def test_an_sso_only_user_cannot_log_in_with_a_password(sso, session):
    dora = make_user("dora", "viewer")
    session.commit()
    client = sso.client
    assert client.post("/login", data={"username": "dora", "password": PASSWORD}).status_code == 302
    client.post("/logout")
    dora = user("dora")
    dora.sso_only = True
    session.commit()
    response = client.post("/login", data={"username": "dora", "password": PASSWORD})
    assert response.status_code == 401
    assert f"This account signs in with {IDP} only, not with a password" in shown(response)
    assert f"Sign in with {IDP}" in shown(response)
    assert logged_in_as(client) is None
    assert "single sign-on only" in entries("login_failed")[-1].detail
    assert sign_in(client, "dora").status_code == 302  # single sign-on still works
    assert logged_in_as(client) == "dora"


def test_oidc_only_turns_passwords_off_for_every_linked_account(sso, session):
    make_user("dora", "viewer")
    make_user("coordinator", "coordinator")  # not linked: keeps its password
    session.commit()
    sign_in(sso_app_client(sso), "dora")  # links dora
    sso.config(OIDC_ONLY=True)
    refused = sso.client.post("/login", data={"username": "dora", "password": PASSWORD})
    assert refused.status_code == 401 and "not with a password" in shown(refused)
    ok = sso.client.post("/login", data={"username": "coordinator", "password": PASSWORD})
    assert ok.status_code == 302


def test_an_administrator_sets_sso_only_and_unlinks(sso, session):
    make_user("admin", "admin")
    make_user("dora", "viewer")
    session.commit()
    sign_in(sso_app_client(sso), "dora")
    admin = sso.client
    assert log_in(admin, "admin", PASSWORD).status_code == 302  # with the admin's code
    dora = user("dora")
    page = shown(admin.get(f"/users/{dora.id}"))
    assert "Linked to the identity provider (subject <code>idp-0004</code>)" in page
    form = {"role": "viewer", "active": "y", "sso_only": "y", "sso_unlink": "y"}
    assert admin.post(f"/users/{dora.id}", data=form).status_code == 302
    dora = user("dora")
    assert dora.sso_only and dora.sso_subject is None
    fields = json.loads(entries("update_user")[-1].detail)["fields"]
    assert set(fields) == {"sso_only", "sso_subject"}


def test_a_deactivated_account_is_refused(sso, session):
    dora = make_user("dora", "viewer")
    dora.active = False
    session.commit()
    response = sign_in(sso.client, "dora")
    assert response.status_code == 403 and "deactivated" in shown(response)
    assert logged_in_as(sso.client) is None
    assert user("dora").sso_subject is None


# -- the protocol's checks -----------------------------------------------------------------


def test_a_replayed_callback_is_refused(sso, session):
    make_user("dora", "viewer")
    session.commit()
    callback = at_provider(start(sso.client), "dora")
    assert back_at_tracker(sso.client, callback).status_code == 302
    # The state was used up by the first answer: the same answer again, in the same browser
    # or in another one (a stolen URL), is refused before the code is exchanged.
    for client in (sso.client, sso_app_client(sso)):
        response = back_at_tracker(client, callback)
        assert response.status_code == 400
        assert "has been used already or was not started in this browser" in shown(response)
    # Such a refusal names no account and anyone can send it: counted per address, the
    # window's 1st, 10th, 100th, ... written (tests/test_half_login.py).
    (failed,) = entries("login_failed")
    detail = json.loads(failed.detail)
    assert detail["reason"].startswith("mismatching_state") and detail["method"] == "sso"
    assert detail["count_in_window"] == 1
    assert len(entries("login")) == 1


def test_a_tampered_state_or_issuer_is_refused(sso, session):
    make_user("dora", "viewer")
    session.commit()
    callback = at_provider(start(sso.client), "dora")
    query = parse_qs(urlsplit(callback).query)
    forged = {**{k: v[0] for k, v in query.items()}, "state": "forged-state"}
    response = sso.client.get(f"/login/sso/callback?{urlencode(forged)}")
    assert response.status_code == 400 and logged_in_as(sso.client) is None
    mixed_up = {**{k: v[0] for k, v in query.items()}, "iss": "http://127.0.0.1:9"}
    response = sso.client.get(f"/login/sso/callback?{urlencode(mixed_up)}")
    assert response.status_code == 400 and "another identity provider" in shown(response)
    assert logged_in_as(sso.client) is None
    # The genuine answer still works: the refusals did not use up its state.
    assert back_at_tracker(sso.client, callback).status_code == 302


def test_a_code_delivered_to_another_browser_fails_pkce(sso, session):
    """Code injection: Mallory's browser gets Dora's code with its own state; the verifier
    in Mallory's session is not the one Dora's code was issued for."""
    make_user("dora", "viewer")
    session.commit()
    victim, attacker = sso.client, sso_app_client(sso)
    code = parse_qs(urlsplit(at_provider(start(victim), "dora")).query)["code"][0]
    attacker_state = parse_qs(urlsplit(start(attacker)).query)["state"][0]
    response = attacker.get(
        f"/login/sso/callback?{urlencode({'code': code, 'state': attacker_state})}"
    )
    assert response.status_code == 400 and logged_in_as(attacker) is None
    assert "invalid_grant" in json.loads(entries("login_failed")[-1].detail)["reason"]


def test_a_tampered_nonce_is_refused(sso, session):
    make_user("dora", "viewer")
    session.commit()
    client = sso.client
    callback = at_provider(start(client), "dora")
    # The nonce kept in this browser's signed anonymous cookie no longer matches the ID
    # token (re-signed with the app's key: only the server could do that).
    data = anonymous_data(sso.app, client)
    (key,) = [k for k in data if k.startswith("_state_sso_")]
    data[key]["data"]["nonce"] = "another-nonce"
    client.set_cookie(ANON, _anonymous_signer(sso.app).dumps(data))
    response = back_at_tracker(client, callback)
    assert response.status_code == 400 and logged_in_as(client) is None
    assert "nonce" in json.loads(entries("login_failed")[-1].detail)["reason"]


def test_an_expired_id_token_is_refused(sso, session):
    make_user("dora", "viewer")
    session.commit()
    sso.config(SESSION_IDLE_MINUTES=600)  # the state outlives the jump; the token does not
    callback = at_provider(start(sso.client), "dora")
    with time_machine.travel(datetime.now(UTC) + timedelta(hours=3)):
        response = back_at_tracker(sso.client, callback)
    assert response.status_code == 400 and logged_in_as(sso.client) is None
    assert "exp" in json.loads(entries("login_failed")[-1].detail)["reason"]


def test_a_wrong_password_at_the_provider_never_reaches_the_tracker(sso, provider):
    with requests.Session() as browser:
        page = browser.get(start(sso.client), timeout=10)
        action = re.search(r'action="([^"]+)"', page.text).group(1)
        response = browser.post(
            urljoin(page.url, action),
            data={"login": "dora", "password": "wrong"},
            allow_redirects=False,
            timeout=10,
        )
    assert response.status_code == 401 and "Wrong username or password" in response.text


def test_the_username_can_come_from_a_verified_email_in_the_hospitals_domain(sso, session):
    make_user("dora", "viewer")
    session.commit()
    sso.config(OIDC_USERNAME_CLAIM="email", OIDC_USERNAME_DOMAIN="hospital.example")
    sso.idp.change("dora", preferred_username="someone-else", email="dora@evil.example")
    assert sign_in(sso.client, "dora").status_code == 403  # another domain names nobody
    sso.idp.change("dora", email="Dora@Hospital.example", email_verified=False)
    assert sign_in(sso.client, "dora").status_code == 403  # not verified
    assert user("dora").sso_subject is None
    sso.idp.change("dora", email_verified=True)
    assert sign_in(sso.client, "dora").status_code == 302
    assert logged_in_as(sso.client) == "dora" and user("dora").sso_subject == "idp-0004"


def test_an_administrator_creates_an_sso_only_account_without_a_password(sso, session):
    make_user("admin", "admin")
    session.commit()
    admin = sso.client
    assert log_in(admin, "admin", PASSWORD).status_code == 302  # with the admin's code
    form = {"username": "dora", "full_name": "Dora V", "role": "viewer", "password": ""}
    response = admin.post("/users/", data=form)
    assert response.status_code == 422
    assert "Enter an initial password, or tick 'Single sign-on only'" in shown(response)
    assert user("dora") is None
    assert admin.post("/users/", data={**form, "sso_only": "y"}).status_code == 302
    dora = user("dora")
    assert dora.sso_only and dora.sso_subject is None
    browser = sso_app_client(sso)
    assert sign_in(browser, "dora").status_code == 302 and logged_in_as(browser) == "dora"
    assert user("dora").sso_subject == "idp-0004"


def test_an_unreachable_provider_is_said_and_audited(app, session):
    down = make_app(
        app.config["SQLALCHEMY_DATABASE_URI"],
        OIDC_ISSUER="http://127.0.0.1:9",  # nothing listens there
        OIDC_CLIENT_ID=CLIENT_ID,
        OIDC_CLIENT_SECRET=CLIENT_SECRET,
        OIDC_PROVIDER_NAME=IDP,
        OIDC_ROLE_MAP=ROLE_MAP,
    )
    response = down.test_client().get("/login/sso/")
    assert response.status_code == 502
    assert f"{IDP} cannot be reached just now" in shown(response)
    (failed,) = entries("login_failed")
    assert json.loads(failed.detail)["reason"] == "provider unreachable: ConnectionError"


# -- the state in the anonymous cookie; single sign-on and the second factor ----------------


def test_only_the_newest_attempts_state_is_kept_so_the_cookie_stays_small(sso, session):
    """Each start used to add its state to the cookie until it passed 4 KB and every
    callback failed with mismatching_state."""
    make_user("dora", "viewer")
    session.commit()
    client = sso.client
    first = start(client)
    for _ in range(30):
        start(client)  # unfinished attempts (a double click, a tab closed)
    data = anonymous_data(sso.app, client)
    assert len([k for k in data if k.startswith("_state_sso_")]) == 1
    assert len(client.get_cookie(ANON).value) < 1500
    # An earlier attempt's answer is refused; the newest one signs in.
    assert back_at_tracker(client, at_provider(first, "dora")).status_code == 400
    assert back_at_tracker(client, at_provider(start(client), "dora")).status_code == 302
    assert logged_in_as(client) == "dora"


def test_failed_callbacks_that_name_no_account_are_counted_not_written_each(sso, session):
    window = sso.app.config["AUDIT_AGGREGATE_MINUTES"] * 60
    now = int(datetime.now(UTC).timestamp())
    with time_machine.travel(datetime.fromtimestamp(now - now % window + 5, UTC), tick=False):
        for n in range(25):
            response = sso.client.get(f"/login/sso/callback?code=c{n}&state=forged{n}")
            assert response.status_code == 400
    failed = entries("login_failed")
    assert [json.loads(e.detail)["count_in_window"] for e in failed] == [1, 10]


def test_a_single_sign_on_relies_on_the_providers_multi_factor_authentication(sso, session):
    """An administrator signing in through the provider is not asked for the tracker's
    code, and one created at their first sign-in is not made to enrol one
    (docs/security.md: two-factor login). A password login still needs the code."""
    sso.config(OIDC_CREATE_USERS=True)
    sso.idp.change("carol", groups=["spine-admins"])
    created = sso.client
    assert sign_in(created, "carol", next_page="/users/").headers["Location"] == "/users/"
    carol = user("carol")
    assert carol.role == "admin" and carol.sso_only and not carol.two_factor_enrolled
    assert created.get("/users/").status_code == 200  # not sent to /account/two-factor
    assert _session_data(created)["login_method"] == "sso"
    # An enrolled administrator: the provider's sign-in, no code.
    make_user("dora", "admin")
    session.commit()
    sso.idp.change("dora", groups=["spine-admins"])
    browser = sso_app_client(sso)
    assert sign_in(browser, "dora").status_code == 302 and logged_in_as(browser) == "dora"
    assert browser.get("/users/").status_code == 200
    # The same administrator with the password: the code is asked for.
    password = sso_app_client(sso).post("/login", data={"username": "dora", "password": PASSWORD})
    assert password.headers["Location"] == "/login/code"
