"""The access matrix (tracker.web.access) walked exhaustively, with real records.

Every endpoint of the url_map x every role and anonymous, each request carrying the
ids of records that exist; the trigger dimension of pathway.record and the API's
events; ids changed in URLs (tokens, accounts, another's step); and extra form or JSON
fields that try to set protected columns (state, version, recorded_by, ids).
"""

from __future__ import annotations

import html
import re
import uuid
from datetime import UTC, date, datetime, timedelta
from functools import cache
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from flask import url_for
from sqlalchemy import func, select
from werkzeug.routing import IntegerConverter
from werkzeug.security import generate_password_hash

from tests.conftest import PASSWORD, make_app
from tests.helpers import REFERRAL, driver, new_patient
from tests.helpers import log_in as full_login
from tracker.alerts.models import Notification
from tracker.api.models import ApiToken
from tracker.api.services import create_token
from tracker.engine import steps as d
from tracker.engine.models import Event, Pathway
from tracker.extensions import db
from tracker.mdt import services as mdt
from tracker.mdt.models import GeneratedDocument
from tracker.patients.models import Patient
from tracker.saved_views import services as saved_views
from tracker.users.models import PasswordReset, User
from tracker.users.resets import issue as issue_reset
from tracker.users.roles import ROLES
from tracker.web.access import ACCESS, ANONYMOUS, PENDING, allowed, refusal

WHO = (*ROLES, ANONYMOUS)
LONDON = ZoneInfo("Europe/London")  # config TIMEZONE: forms are typed in local time
# The trigger put in a URL (pathway.record) or a body (api.record_event) by the walk.
WALK_TRIGGER = "add_note"
STEP_TRIGGERS = (*d.recordable(), d.AMEND_TRIGGER, d.VOID_TRIGGER)
_APP = make_app("sqlite://")  # the url_map only; no database is touched
RULES = sorted(_APP.url_map.iter_rules(), key=lambda r: (r.endpoint, r.rule))
METHODS = ("GET", "POST", "PATCH")
CASES = [
    (rule.endpoint, method, rule.rule)
    for rule in RULES
    for method in METHODS
    if method in rule.methods
]


# -- helpers ------------------------------------------------------------------------------


def shown(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def local_now_input(minutes_ago: int = 5) -> str:
    at = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return at.astimezone(LONDON).strftime("%Y-%m-%dT%H:%M")


def bearer(plain: str) -> dict:
    return {"Authorization": f"Bearer {plain}"}


def is_login_redirect(response, path: str | None = None) -> bool:
    """A redirect to the login page that asks to come back (the refusal of anonymous)."""
    if response.status_code != 302:
        return False
    location = urlsplit(response.headers["Location"])
    if location.path != "/login":
        return False
    back = parse_qs(location.query).get("next")
    return back is not None if path is None else back == [path]


def fresh(model, ident):
    """The row as now stored (the requests ran in their own sessions)."""
    db.session.expire_all()
    return db.session.get(model, ident)


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


# -- the world: records that exist, and one client per role ---------------------------------


@cache
def quick_hash() -> str:
    # The login below is real; only the key stretching is cut, to keep ~100 logins fast.
    return generate_password_hash(PASSWORD, method="pbkdf2:sha256:1")


@pytest.fixture
def world(users, session):
    for user in users.values():
        user.password_hash = quick_hash()
    drv = driver(users)  # opened by the coordinator
    imaging = drv.do("request_imaging")  # a state change: voidable by its recorder / admin
    note = drv.do("add_note")  # has data: amendable; a note does not block the void
    task = drv.do(d.ADD_TASK_TRIGGER)  # an open task (api.change_task); no block either
    tokens = {}
    for role in ROLES:
        token, plain = create_token(users[role], f"{role}'s token")
        tokens[role] = SimpleNamespace(id=token.id, plain=plain)
    other, other_plain = create_token(users["coordinator2"], "coordinator2's token")
    # A password reset link that works (the walk posts it empty: nothing is used).
    _, reset_plain = issue_reset(users["coordinator2"], users["admin"])
    # An MDT meeting ahead with one case on its list.
    meeting = mdt.create_meeting(
        {
            "team": drv.pathway.team,
            "meeting_date": (date.today() + timedelta(days=7)).isoformat(),
            "start_time": "08:00",
            "location": "Room 1",
            "chair": "surgeon",
        },
        users["coordinator"],
    )
    listed = driver(users).walk_to("mdt_review")
    listed.do(
        "schedule_mdt",
        {
            "meeting_id": meeting.id,
            "question": "Q",
            "presenter": "surgeon",
            "triage": "full_discussion",
        },
        occurred_at=datetime.now(UTC),
    )
    # A generated letter of the pathway, to download.
    document = GeneratedDocument(
        pathway=drv.pathway,
        kind="gp",
        filename="letter.pdf",
        content=b"%PDF-1.7",
        sha256="0" * 64,
        generated_by_id=users["coordinator"].id,
    )
    session.add(document)
    # A saved view of each role's own (the walk may delete it: each deletes its own).
    views = {
        role: saved_views.save(
            users[role], f"{role}'s view", "worklist", {"state": "imaging"}, True
        )
        for role in ROLES
    }
    session.commit()
    return SimpleNamespace(
        view_ids={role: view.id for role, view in views.items()},
        meeting_id=meeting.id,
        listed_pathway_id=listed.pathway.id,
        document_id=document.id,
        case_id=meeting.cases[0].id,
        task_id=drv.pathway.tasks[0].id if task.event else None,
        users=users,
        pathway_id=drv.pathway.id,
        patient_id=drv.pathway.patient_id,
        voidable_seq=imaging.event.seq,
        amend_seq=note.event.seq,
        tokens=tokens,
        other_token=SimpleNamespace(id=other.id, plain=other_plain),
        other_user_id=users["coordinator2"].id,
        reset_token=reset_plain,
    )


def log_in(app, username: str):
    client = app.test_client()
    response = full_login(client, username, PASSWORD)
    assert response.status_code == 302 and not is_login_redirect(response), response.text
    return client


@pytest.fixture
def clients(app, world):
    """One client per role (each keeps its own session cookie), and one never logged in."""
    out = {role: log_in(app, role) for role in ROLES}
    out[ANONYMOUS] = app.test_client()
    return out


def view_args(world, who: str, rule) -> dict:
    """Real values for the rule's variables, as the role ``who`` would use them."""
    values = {
        "pathway_id": world.pathway_id,
        "patient_id": world.patient_id,
        "meeting_id": world.meeting_id,
        "case_id": world.case_id,
        "view_id": world.view_ids.get(who, world.view_ids["coordinator"]),
        "task_id": world.task_id,
        "seq": world.amend_seq,
        "trigger": WALK_TRIGGER,
        # One's own token (the others' are the IDOR tests' business).
        "token_id": world.tokens[who].id if who in world.tokens else world.other_token.id,
        "user_id": world.other_user_id,
        "token": world.reset_token,
        "name": "referrals",
        "filename": "css/bootstrap.min.css"
        if rule.endpoint == "bootstrap.static"
        else "tracker.css",
    }
    if rule.endpoint in ("mdt.live_case", "mdt.generate_letter"):
        values["pathway_id"] = world.listed_pathway_id  # the pathway of the case listed
    values["kind"] = "gp"
    values["document_id"] = world.document_id
    return {name: values[name] for name in rule.arguments}


def api_body(endpoint: str, version: int) -> dict:
    if endpoint == "api.record_event":
        # An old version: a role that may fire the trigger is answered 409, never 403.
        return {
            "trigger": WALK_TRIGGER,
            "expected_version": version - 1,
            "request_id": uuid.uuid4().hex,
            "data": {"note": "walk"},
        }
    return {}


def assert_web_refusal(response, who: str, endpoint: str, args: dict, path: str) -> None:
    if who == ANONYMOUS:
        assert is_login_redirect(response, path), (who, response.status_code, response.headers)
        return
    assert response.status_code == 403, (who, response.status_code)
    reason = refusal(who, endpoint, args)
    assert reason, (who, endpoint)
    assert reason in shown(response), (who, endpoint)


def assert_api_refusal(response, who: str, endpoint: str) -> None:
    assert response.is_json, (who, response.status_code)
    if who == ANONYMOUS:
        assert response.status_code == 401, (who, response.status_code)
        assert response.json["error"] == "unauthorized"
        return
    assert response.status_code == 403, (who, response.status_code, response.json)
    assert response.json["error"] == "forbidden"
    assert response.json["message"].strip()
    reason = refusal(who, endpoint)
    if reason:  # refused by the matrix; otherwise by the trigger in the body
        assert response.json["message"] == reason


def assert_let_through(response, who: str, real_ids: bool = False) -> None:
    """Whatever the business answer, it is not a refusal of access (nor a crash)."""
    status = response.status_code
    assert status not in (401, 403) and status < 500, (who, status, response.text[:300])
    assert not is_login_redirect(response), (who, response.headers.get("Location"))
    if real_ids:  # the ids in the URL name records that exist
        assert status != 404, (who, response.text[:300])


def url_for_path(app, endpoint: str, args: dict) -> str:
    with app.test_request_context():
        return url_for(endpoint, **args)


# -- 1. the matrix is the app --------------------------------------------------------------


def test_the_matrix_lists_exactly_the_endpoints_of_the_app(app):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert endpoints - set(ACCESS) == set(), "endpoints without a rule (refused to everyone)"
    assert set(ACCESS) - endpoints == set(), "stale rules for endpoints that no longer exist"


def test_the_matrix_names_only_known_roles_and_trigger_sources():
    known = set(ROLES) | {ANONYMOUS, PENDING}
    for endpoint, rule in ACCESS.items():
        assert rule.roles <= known, (endpoint, rule.roles - known)
        assert rule.trigger in (None, "url", "body"), endpoint
        assert rule.shows in (None, "patient", "pathway", "list", "export"), endpoint
    for trigger, roles in d.trigger_roles().items():
        assert roles <= set(ROLES), trigger
    assert set(d.trigger_roles()) == set(STEP_TRIGGERS)


def test_the_matrix_keeps_its_security_invariants():
    """Independent of the matrix's own data: a widened row fails here, not silently."""
    public = {e for e, rule in ACCESS.items() if ANONYMOUS in rule.roles}
    assert public == {
        "static",
        "bootstrap.static",
        "healthz",
        "auth.login",
        "auth.reset_password",  # the link's token is the credential
        "sso.start",
        "sso.callback",
        "api.openapi",
    }
    assert all(ACCESS[e].shows is None for e in public)  # no patient data without a login
    # Half logged in (the password without the second factor): the second step, logout
    # and the static files; nothing that shows or changes anything else.
    halfway = {e for e, rule in ACCESS.items() if PENDING in rule.roles}
    assert halfway == {
        "static",
        "bootstrap.static",
        "healthz",
        "auth.second_factor",
        "auth.enrol",
        "auth.logout",
    }
    assert {e for e, rule in ACCESS.items() if rule.roles == {PENDING}} == {
        "auth.second_factor",
        "auth.enrol",
    }
    admin_only = {e for e, rule in ACCESS.items() if rule.roles == {"admin"}}
    assert admin_only == {
        "users.index",
        "users.create",
        "users.edit",
        "users.unlock",
        "users.reset_link",
        "users.reset_two_factor",
        "audit.index",
        "audit.export",
        "teams.report",
        "mdt.letter_templates",  # the outcome letters' templates
        "mdt.edit_letter_template",
    }
    writes = {rule.endpoint for rule in RULES if rule.methods & {"POST", "PATCH"}}
    own_account = {
        "auth.login",
        "auth.logout",
        "auth.reset_password",
        "auth.second_factor",
        "auth.enrol",
    } | {e for e in ACCESS if e.startswith("account.")}
    # Asking for emergency access to another team's patient writes only the request.
    own_account |= {"teams.emergency_access"}
    # Marking one's own notifications read.
    own_account |= {e for e in ACCESS if e.startswith("notifications.")}
    # Saved views are one's own filters (a shared one: one's own, seen by everyone).
    own_account |= {"views.save", "views.edit", "views.delete"}
    # A viewer reads; the only things it may post are its own login, logout and account.
    assert {e for e in writes if "viewer" in ACCESS[e].roles} <= own_account
    # An administrator manages accounts and may void a step; it records nothing clinical.
    assert {e for e in writes if "admin" in ACCESS[e].roles} - own_account == {
        "users.create",
        "users.edit",
        "users.unlock",
        "users.reset_link",
        "users.reset_two_factor",
        "mdt.edit_letter_template",  # the outcome letters' wording, not a record
        "pathway.void",
        "pathway.record",  # let through to the trigger check, which refuses every trigger
        "api.record_event",  # idem, in the body: only void_last_step is the admin's
    }
    assert {t for t in STEP_TRIGGERS if d.role_may("admin", t)} == {d.VOID_TRIGGER}
    assert {t for t in STEP_TRIGGERS if d.role_may("viewer", t)} == set()


def test_the_walk_covers_every_rule_and_method():
    assert {endpoint for endpoint, _, _ in CASES} == set(ACCESS)
    assert len(CASES) == len({(endpoint, method) for endpoint, method, _ in CASES})


# -- 2. every endpoint x every role, with real ids -----------------------------------------


@pytest.mark.parametrize(("endpoint", "method", "rule_text"), CASES)
def test_every_endpoint_for_every_role(app, world, clients, endpoint, method, rule_text):
    (rule,) = [r for r in app.url_map.iter_rules() if (r.endpoint, r.rule) == (endpoint, rule_text)]
    trigger = WALK_TRIGGER if ACCESS[endpoint].trigger else None
    api = endpoint.startswith("api.")
    for who in WHO:
        args = view_args(world, who, rule)
        path = url_for_path(app, endpoint, args)
        client = clients[who]
        if api:
            headers = bearer(world.tokens[who].plain) if who in world.tokens else {}
            body = api_body(endpoint, fresh(Pathway, world.pathway_id).version)
            response = client.open(
                path, method=method, headers=headers, json=body if method != "GET" else None
            )
        else:
            response = client.open(path, method=method, data={} if method == "POST" else None)
        with response:
            if (endpoint, method, who) == ("pathway.void", "GET", "surgeon"):
                # The matrix lets a surgeon through; the step's own rule (its recorder, the
                # coordinator, or an administrator) refuses this one person (section 4).
                assert response.status_code == 403, (who, response.status_code)
                assert "Only the person who recorded this step" in shown(response)
            elif allowed(who, endpoint, trigger):
                assert_let_through(response, who, real_ids=True)
            elif api:
                assert_api_refusal(response, who, endpoint)
            else:
                assert_web_refusal(response, who, endpoint, args, path)
    if api and ANONYMOUS not in ACCESS[endpoint].roles:
        # The API reads no session cookie: a logged-in browser without a token is refused.
        path = url_for_path(app, endpoint, view_args(world, "admin", rule))
        response = clients["admin"].open(path, method=method, json={})
        assert response.status_code == 401 and response.json["error"] == "unauthorized"
        wrong = bearer("trk_" + "x" * 43)
        assert clients[ANONYMOUS].open(path, method=method, headers=wrong).status_code == 401


# -- 3. the trigger dimension ---------------------------------------------------------------


def test_the_record_page_for_every_trigger_and_role(app, world, clients):
    """pathway.record: 403 iff the role may not record the trigger in the URL."""
    checked = 0
    for trigger in STEP_TRIGGERS:
        path = f"/pathways/{world.pathway_id}/record/{trigger}"
        args = {"pathway_id": world.pathway_id, "trigger": trigger}
        for who in WHO:
            for method in ("GET", "POST"):
                response = clients[who].open(path, method=method, data={})
                checked += 1
                if who == ANONYMOUS or not d.role_may(who, trigger):
                    assert allowed(who, "pathway.record", trigger) is False
                    assert_web_refusal(response, who, "pathway.record", args, path)
                    continue
                assert allowed(who, "pathway.record", trigger) is True
                assert_let_through(response, who)
                if trigger in d.CORRECTION_TRIGGERS:
                    expected = {404}  # corrections have pages of their own
                elif method == "POST":
                    expected = {422}  # an empty form
                else:
                    expected = {200, 409}  # the form, or why the step does not apply now
                assert response.status_code in expected, (trigger, who, method)
    assert checked == len(STEP_TRIGGERS) * len(WHO) * 2


def test_the_api_answers_403_iff_the_role_may_not_fire_the_trigger(app, world, clients):
    """The trigger is in the body: the services refuse it before anything else.

    An old expected_version makes the answer exact: a role that may fire the trigger
    passes the role check and is then stopped by the version (409), never by 403.
    """
    path = f"/api/v1/pathways/{world.pathway_id}/events"
    before = (count(Event), fresh(Pathway, world.pathway_id).version)
    for trigger in STEP_TRIGGERS:
        for who in WHO:
            body = {
                "trigger": trigger,
                "expected_version": before[1] - 1,
                "request_id": uuid.uuid4().hex,
                "data": {},
            }
            headers = bearer(world.tokens[who].plain) if who in world.tokens else {}
            response = clients[ANONYMOUS].post(path, json=body, headers=headers)
            if who == ANONYMOUS or not d.role_may(who, trigger):
                assert allowed(who, "api.record_event", trigger) is False
                assert_api_refusal(response, who, "api.record_event")
                if who != ANONYMOUS and refusal(who, "api.record_event") is None:
                    # Past the matrix (the role fires other triggers): the services say which.
                    assert f"'{d.label(trigger)}'" in response.json["message"]
            else:
                assert allowed(who, "api.record_event", trigger) is True
                assert response.status_code == 409, (trigger, who, response.json)
                assert response.json["error"] == "stale_version"
    assert (count(Event), fresh(Pathway, world.pathway_id).version) == before


def test_a_surgeon_only_step_with_valid_data(app, world, clients):
    """sign_off, sent complete and at the current version: only a surgeon records it."""
    path = f"/api/v1/pathways/{world.pathway_id}/events"
    version = fresh(Pathway, world.pathway_id).version
    for who in ("coordinator", "viewer", "admin", "surgeon"):
        body = {
            "trigger": "sign_off",
            "expected_version": version,
            "request_id": uuid.uuid4().hex,
            "data": {"note": "Reviewed."},
            "occurred_at": datetime.now(UTC).isoformat(),
        }
        response = clients[ANONYMOUS].post(path, json=body, headers=bearer(world.tokens[who].plain))
        if who != "surgeon":
            assert response.status_code == 403, (who, response.json)
            assert fresh(Pathway, world.pathway_id).version == version
            continue
        assert response.status_code == 201, response.json
        assert response.json["event"]["recorded_by"] == "surgeon"
        assert response.json["version"] == version + 1


def test_replaying_a_request_id_does_not_bypass_the_trigger_roles(app, world, clients):
    path = f"/api/v1/pathways/{world.pathway_id}/events"
    version = fresh(Pathway, world.pathway_id).version
    body = {
        "trigger": "sign_off",
        "expected_version": version,
        "request_id": uuid.uuid4().hex,
        "data": {"note": "Reviewed."},
        "occurred_at": datetime.now(UTC).isoformat(),
    }
    surgeon = bearer(world.tokens["surgeon"].plain)
    assert clients[ANONYMOUS].post(path, json=body, headers=surgeon).status_code == 201
    for who in ("coordinator", "admin"):
        response = clients[ANONYMOUS].post(path, json=body, headers=bearer(world.tokens[who].plain))
        assert response.status_code == 403, (who, response.status_code, response.json)


# -- 4. ids changed in URLs -----------------------------------------------------------------


def test_a_token_is_revoked_only_by_its_owner_or_an_administrator(app, world, clients):
    other = world.other_token  # coordinator2's
    path = f"/account/tokens/{other.id}/revoke"
    still_works = {"Authorization": f"Bearer {other.plain}"}
    for who in ("coordinator", "surgeon", "viewer"):
        response = clients[who].post(path)
        assert response.status_code == 403, who
        assert "You do not have permission to do this." in shown(response)
        assert "coordinator2's token" not in shown(response)
        assert fresh(ApiToken, other.id).revoked_at is None
        assert clients[ANONYMOUS].get("/api/v1/definition", headers=still_works).status_code == 200
    # The account page lists one's own tokens only.
    page = shown(clients["coordinator"].get("/account/"))
    assert "coordinator's token" in page and "coordinator2's token" not in page
    # One's own token, and anyone's for an administrator.
    own = world.tokens["coordinator"]
    assert clients["coordinator"].post(f"/account/tokens/{own.id}/revoke").status_code == 302
    assert fresh(ApiToken, own.id).revoked_at is not None
    assert clients["admin"].post(path).status_code == 302
    assert fresh(ApiToken, other.id).revoked_at is not None
    assert clients[ANONYMOUS].get("/api/v1/definition", headers=still_works).status_code == 401


def test_a_notification_is_read_only_by_its_owner(app, world, clients, users):
    """Another user's notification id in the form is not found (404, as a made-up one),
    stays unread, and never shows on anyone else's list."""
    theirs = Notification(
        user_id=users["coordinator2"].id,
        kind="breached",
        pathway_id=world.pathway_id,
        dedupe_key="walk:coordinator2",
        detail="coordinator2's alert",
    )
    db.session.add(theirs)
    db.session.commit()
    for who in ("coordinator", "surgeon", "viewer", "admin"):
        response = clients[who].post("/notifications/read", data={"notification": theirs.id})
        assert response.status_code == 404, who
        assert "coordinator2's alert" not in shown(clients[who].get("/notifications/"))
        response = clients[who].post("/notifications/read-all")
        assert response.status_code == 302, who
        assert fresh(Notification, theirs.id).read_at is None
    response = clients[ANONYMOUS].post("/notifications/read", data={"notification": theirs.id})
    assert is_login_redirect(response)
    assert fresh(Notification, theirs.id).read_at is None


def test_only_an_administrator_reaches_an_account(app, world, clients, users):
    target = users["coordinator2"]
    target.failed_logins, target.locked_until = 5, datetime.now(UTC) + timedelta(hours=1)
    db.session.commit()
    edit, unlock = f"/users/{target.id}", f"/users/{target.id}/unlock"
    promote = {"role": "admin", "active": "y"}
    for who in ("coordinator", "surgeon", "viewer"):
        me = users[who]
        for path, method, data in (
            (edit, "GET", None),
            (edit, "POST", promote),
            (unlock, "POST", {}),
            (f"/users/{me.id}", "GET", None),
            (f"/users/{me.id}", "POST", promote),  # promoting oneself
            (f"/users/{me.id}/unlock", "POST", {}),
            (f"/users/{target.id}/reset-link", "POST", {}),
            (f"/users/{me.id}/reset-link", "POST", {}),  # a link to reset one's own
        ):
            response = clients[who].open(path, method=method, data=data)
            assert response.status_code == 403, (who, method, path)
            text = shown(response)
            assert refusal(who, "users.edit") in text or refusal(who, "users.unlock") in text
            assert "Coordinator2" not in text and "failed" not in text.lower()
        assert fresh(User, me.id).role == who
    stored = fresh(User, target.id)
    assert (stored.role, stored.active, stored.failed_logins) == ("coordinator", True, 5)
    assert stored.locked_until is not None
    assert count(PasswordReset) == 1  # the world's, and no other
    # The administrator may.
    response = clients["admin"].get(edit)
    assert response.status_code == 200 and "coordinator2" in shown(response)
    assert clients["admin"].post(unlock).status_code == 302
    assert fresh(User, target.id).locked_until is None
    response = clients["admin"].post(edit, data={"role": "surgeon", "active": "y"})
    assert response.status_code == 302
    assert fresh(User, target.id).role == "surgeon"


def test_a_step_is_voided_only_by_its_recorder_or_an_administrator(app, world, clients, users):
    """The voidable step was recorded by the coordinator: another clinician cannot void it."""
    path = f"/pathways/{world.pathway_id}/void"
    before = fresh(Pathway, world.pathway_id)
    state, version = before.state, before.version
    form = {
        "reason": "Wrong patient.",
        "expected_version": str(version),
    }
    others = {"coordinator2": log_in(app, "coordinator2"), "surgeon": clients["surgeon"]}
    for name, client in others.items():
        response = client.get(path)
        assert response.status_code == 403, name  # why (as the POST), and no form
        assert "Only the person who recorded this step" in shown(response)
        assert 'name="reason"' not in shown(response)
        response = client.post(path, data={**form, "request_id": uuid.uuid4().hex})
        assert response.status_code == 403, name
        assert "Only the person who recorded this step" in shown(response)
        after = fresh(Pathway, world.pathway_id)
        assert (after.state, after.version) == (state, version)
    response = clients["admin"].post(path, data={**form, "request_id": uuid.uuid4().hex})
    assert response.status_code == 302
    after = fresh(Pathway, world.pathway_id)
    assert (after.state, after.version) == ("referred", version + 1)
    void = db.session.scalar(
        select(Event).where(Event.seq == version + 1, Event.pathway_id == after.id)
    )
    assert void.trigger == d.VOID_TRIGGER and void.recorded_by_id == users["admin"].id
    assert void.data["event_seq"] == world.voidable_seq


def test_a_step_number_of_another_pathway_is_not_found(app, world, clients, users):
    """seq counts per pathway: a seq that exists only on another pathway is a 404 here."""
    other = driver(users)
    for trigger in ("request_imaging", "record_imaging", "refer_to_mdt", "add_note"):
        other.fire(trigger)
    db.session.commit()
    seq = other.pathway.last_seq
    assert seq > fresh(Pathway, world.pathway_id).last_seq
    for who in ("coordinator", "surgeon"):
        for method in ("GET", "POST"):
            path = f"/pathways/{world.pathway_id}/amend/{seq}"
            response = clients[who].open(path, method=method, data={"reason": "x"})
            assert response.status_code == 404, (who, method)
            assert "Spoke to the patient." not in shown(response)


def test_a_replayed_request_id_does_not_open_another_patients_pathway(app, world, clients, users):
    other = new_patient(users["coordinator"])
    db.session.commit()
    headers = bearer(world.tokens["coordinator"].plain)
    events = clients[ANONYMOUS].get(f"/api/v1/pathways/{world.pathway_id}/events", headers=headers)
    opened = events.json["items"][0]
    assert opened["trigger"] == d.OPEN_TRIGGER
    body = {
        "patient_id": other.id,
        "request_id": opened["request_id"],
        "referral_received_at": datetime.now(UTC).isoformat(),
        **REFERRAL,
    }
    response = clients[ANONYMOUS].post("/api/v1/pathways", json=body, headers=headers)
    assert response.json.get("patient_id") != world.patient_id, response.json
    assert response.status_code == 422, response.json


def test_ids_that_do_not_exist_are_404_for_an_allowed_role_only(app, world, clients):
    """A made-up id does not tell a refused role whether the record exists."""
    missing = 987654
    for who in WHO:
        for path in (f"/users/{missing}", f"/users/{world.other_user_id}"):
            response = clients[who].get(path)
            if who == "admin":
                assert response.status_code == (404 if str(missing) in path else 200)
            elif who == ANONYMOUS:
                assert is_login_redirect(response, path)
            else:
                assert response.status_code == 403
        api = f"/api/v1/patients/{missing}"
        headers = bearer(world.tokens[who].plain) if who in world.tokens else {}
        status = clients[ANONYMOUS].get(api, headers=headers).status_code
        assert status == (401 if who == ANONYMOUS else 404)


# Other scripts' digits: Arabic-Indic, Devanagari, fullwidth (int() takes all three).
FOREIGN_DIGITS = [
    str.maketrans("0123456789", "".join(chr(z + n) for n in range(10)))
    for z in (0x660, 0x966, 0xFF10)
]


def test_ids_are_ascii_digits_only_in_every_url(app, world, clients):
    """An id written in another script's digits (U+0661 for 1) names no record: 404 on
    every rule that takes an id, for a role that may see the record; JSON on the API."""
    checked = 0
    for rule in RULES:
        numeric = sorted(
            name
            for name, converter in rule._converters.items()
            if isinstance(converter, IntegerConverter)
        )
        if not numeric:
            continue
        who = "admin" if rule.endpoint.startswith("users.") else "coordinator"
        method = "GET" if "GET" in rule.methods else sorted(rule.methods & set(METHODS))[0]
        args = view_args(world, who, rule)
        # Placeholders no other part of a path holds, replaced by the real ids.
        marks = {name: str(900_000_001 + n) for n, name in enumerate(numeric)}
        template = url_for_path(app, rule.endpoint, {**args, **marks})
        for digits in FOREIGN_DIGITS:
            path = template
            for name, mark in marks.items():
                path = path.replace(mark, str(args[name]).translate(digits))
            assert not path.isascii() and not any(m in path for m in marks.values())
            if rule.endpoint.startswith("api."):
                response = clients[ANONYMOUS].open(
                    path, method=method, headers=bearer(world.tokens[who].plain), json={}
                )
                assert response.status_code == 404, (path, response.status_code)
                assert response.json["error"] == "not_found"
            else:
                response = clients[who].open(path, method=method)
                assert response.status_code == 404, (path, response.status_code)
                assert "Not Found" in shown(response)
            checked += 1
    assert checked >= 3 * 15


# -- 5. extra fields cannot set protected columns -----------------------------------------


def protected_extras(admin_id: int) -> dict:
    return {
        "state": "discharged",
        "to_state": "discharged",
        "from_state": "discharged",
        "version": "999",
        "recorded_by_id": str(admin_id),
        "recorded_by": str(admin_id),
        "seq": "50",
        "chain_seq": "1",
        "prev_hash": "x",
        "hash": "x",
        "trigger": "discharge",
        "closed_at": "2020-01-01T00:00",
    }


def test_extra_step_form_fields_set_nothing(app, world, clients, users):
    other = driver(users)  # a new pathway, in 'referred'
    db.session.commit()
    pathway_id, seq, version = other.pathway.id, other.pathway.last_seq, other.pathway.version
    chain_before = db.session.scalar(select(func.max(Event.chain_seq)))
    path = f"/pathways/{pathway_id}/record/request_imaging"
    form_page = shown(clients["surgeon"].get(path))
    fields = set(re.findall(r'name="([^"]+)"', form_page))
    assert {"occurred_at", "expected_version", "request_id", "note"} <= fields
    assert not fields & set(protected_extras(0)), "the form itself offers a protected column"
    data = {
        "occurred_at": local_now_input(),
        "expected_version": str(version),
        "request_id": uuid.uuid4().hex,
        "note": "Imaging requested.",
        **protected_extras(users["admin"].id),
    }
    response = clients["surgeon"].post(path, data=data)
    assert response.status_code == 302, shown(response)[:500]
    stored = fresh(Pathway, pathway_id)
    assert (stored.state, stored.version, stored.last_seq) == ("imaging", version + 1, seq + 1)
    assert stored.closed_at is None
    event = db.session.scalar(
        select(Event).where(Event.pathway_id == pathway_id, Event.seq == seq + 1)
    )
    assert event.trigger == "request_imaging"
    assert (event.from_state, event.to_state) == ("referred", "imaging")
    assert event.recorded_by_id == users["surgeon"].id
    assert event.chain_seq == chain_before + 1 and event.hash != "x" and event.prev_hash != "x"
    assert event.data == {"note": "Imaging requested."}


def test_extra_event_keys_in_the_api_set_nothing(app, world, clients, users):
    other = driver(users)
    db.session.commit()
    pathway_id, version = other.pathway.id, other.pathway.version
    path = f"/api/v1/pathways/{pathway_id}/events"
    coordinator = bearer(world.tokens["coordinator"].plain)
    admin_id = users["admin"].id

    def body(**extra) -> dict:
        return {
            "trigger": "request_imaging",
            "expected_version": version,
            "request_id": uuid.uuid4().hex,
            "occurred_at": datetime.now(UTC).isoformat(),
            "data": {"note": "Imaging requested."},
            **extra,
        }

    events = count(Event)
    top = {
        "state": "discharged",
        "version": 999,
        "recorded_by": admin_id,
        "recorded_by_id": admin_id,
    }
    response = clients[ANONYMOUS].post(path, json=body(**top), headers=coordinator)
    assert response.status_code == 422 and set(response.json["errors"]) == set(top)
    nested = {"note": "x", "state": "discharged", "version": 999, "recorded_by_id": admin_id}
    response = clients[ANONYMOUS].post(path, json=body(data=nested), headers=coordinator)
    assert response.status_code == 422, response.json
    assert {"state", "version", "recorded_by_id"} <= set(response.json["errors"])
    stored = fresh(Pathway, pathway_id)
    assert (stored.state, stored.version, count(Event)) == ("referred", version, events)
    # The same call without them is recorded, by the token's user.
    response = clients[ANONYMOUS].post(path, json=body(), headers=coordinator)
    assert response.status_code == 201, response.json
    assert response.json["event"]["recorded_by"] == "coordinator"
    assert (response.json["state"], response.json["version"]) == ("imaging", version + 1)


def test_extra_patient_fields_set_nothing(app, world, clients, users):
    taken = 999_999
    extras = {"id": str(taken), "created_by_id": str(users["admin"].id), "created_at": "2001-01-01"}
    patient = {
        "mrn": "RX7654321",
        "family_name": "Smith",
        "given_name": "Ann",
        "birth_date": "1958-11-30",
        "sex": "female",
    }
    response = clients["coordinator"].post(
        "/patients/new", data={"request_id": uuid.uuid4().hex, **patient, **extras}
    )
    assert response.status_code == 302
    stored = db.session.scalar(select(Patient).where(Patient.mrn == "RX7654321"))
    assert stored.id != taken and stored.created_by_id == users["coordinator"].id
    assert stored.created_at.year != 2001
    # The API refuses unknown fields outright.
    patients = count(Patient)
    api = {**patient, "mrn": "RX7654322", "id": taken, "created_by_id": users["admin"].id}
    headers = bearer(world.tokens["surgeon"].plain)
    response = clients[ANONYMOUS].post("/api/v1/patients", json=api, headers=headers)
    assert response.status_code == 422
    assert set(response.json["errors"]) == {"id", "created_by_id"}
    assert count(Patient) == patients and db.session.get(Patient, taken) is None


def test_extra_pathway_fields_set_nothing(app, world, clients, users):
    patient = new_patient(users["coordinator"])
    db.session.commit()
    referral = {
        "request_id": uuid.uuid4().hex,
        "referral_received_at": local_now_input(60),
        "referral_source": "gp",
        "urgency": "urgent",
        "diagnosis_category": "metastatic_spinal",
        "tumour_site": "T10",
        "primary_cancer_site": "prostate",
        "presenting_symptoms": ["back_pain"],
        "lead_surgeon": "surgeon",
        "coordinator": "coordinator",
    }
    extras = {
        "state": "discharged",
        "version": "999",
        "patient_id": str(world.patient_id),  # another patient than the URL's
        "last_seq": "50",
        "closed_at": "2020-01-01T00:00",
        "recurrence_count": "7",
        "recorded_by_id": str(users["admin"].id),
    }
    response = clients["coordinator"].post(
        f"/patients/{patient.id}/pathways/new", data={**referral, **extras}
    )
    assert response.status_code == 302
    (pathway,) = db.session.scalars(select(Pathway).where(Pathway.patient_id == patient.id))
    assert (pathway.state, pathway.version, pathway.last_seq) == ("referred", 1, 1)
    assert (pathway.closed_at, pathway.recurrence_count) == (None, 0)
    (event,) = db.session.scalars(select(Event).where(Event.pathway_id == pathway.id))
    assert event.recorded_by_id == users["coordinator"].id
    # The API: unknown fields are refused and nothing is opened.
    pathways = count(Pathway)
    body = {
        **referral,
        "request_id": uuid.uuid4().hex,
        "referral_received_at": datetime.now(UTC).isoformat(),
        "patient_id": patient.id,
        "state": "discharged",
        "version": 999,
        "recorded_by": users["admin"].id,
    }
    headers = bearer(world.tokens["coordinator"].plain)
    response = clients[ANONYMOUS].post("/api/v1/pathways", json=body, headers=headers)
    assert response.status_code == 422, response.json
    assert {"state", "version", "recorded_by"} <= set(response.json["errors"])
    assert count(Pathway) == pathways
