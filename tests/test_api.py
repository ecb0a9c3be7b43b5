"""/api/v1: the same rules as the web app, JSON of one shape, tokens, FHIR."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from flask import url_for
from sqlalchemy import func, select

from tests.conftest import PASSWORD
from tests.helpers import REFERRAL, driver, new_patient, valid_data
from tracker.api.fhir import VALUE_SETS
from tracker.api.services import create_token, revoke
from tracker.audit.models import AuditEntry
from tracker.engine import steps as d
from tracker.engine.models import Event
from tracker.extensions import db


@pytest.fixture
def auth(users, session):
    """Authorization headers per username."""
    headers = {}
    for name in ("coordinator", "surgeon", "viewer", "admin"):
        _, plain = create_token(users[name], "test")
        headers[name] = {"Authorization": f"Bearer {plain}"}
    session.commit()
    return headers


def events_count() -> int:
    return db.session.scalar(select(func.count(Event.id)))


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


def referral(patient_id: int, at: datetime) -> dict:
    return {
        "patient_id": patient_id,
        "referral_received_at": iso(at),
        **REFERRAL,
        "lead_surgeon": "surgeon",
        "coordinator": "coordinator",
    }


def test_no_token_no_access(client, users, auth, session):
    for headers in ({}, {"Authorization": "Bearer trk_nonsense"}, {"Authorization": "Basic x"}):
        response = client.get("/api/v1/definition", headers=headers)
        assert response.status_code == 401
        assert response.json["error"] == "unauthorized" and response.json["errors"] == {}
    users["viewer"].active = False
    session.commit()
    assert client.get("/api/v1/definition", headers=auth["viewer"]).status_code == 401
    from tracker.api.models import ApiToken

    for token in db.session.scalars(select(ApiToken)):
        revoke(token)
    session.commit()
    assert client.get("/api/v1/definition", headers=auth["coordinator"]).status_code == 401
    assert client.get("/api/v1/nowhere").json["error"] == "not_found"


def test_definition_is_the_machine(client, auth):
    from tracker.engine.machine import graph

    body = client.get("/api/v1/definition", headers=auth["viewer"]).json
    assert {s["name"] for s in body["states"]} == set(graph()[0])
    assert {(t["source"], t["dest"], t["trigger"]) for t in body["transitions"]} == set(graph()[1])
    sign_off = next(t for t in body["transitions"] if t["trigger"] == "sign_off")
    assert sign_off["roles"] == ["surgeon"]


def test_patients(client, auth):
    body = {
        "mrn": "API001",
        "family_name": "Ng",
        "given_name": "Ada",
        "birth_date": "1970-02-03",
        "sex": "female",
    }
    created = client.post("/api/v1/patients", json=body, headers=auth["coordinator"])
    assert created.status_code == 201 and created.json["mrn"] == "API001"
    again = client.post(
        "/api/v1/patients", json={**body, "mrn": "api001"}, headers=auth["coordinator"]
    )
    assert again.status_code == 409 and again.json["patient_id"] == created.json["id"]
    bad = client.post(
        "/api/v1/patients",
        json={**body, "mrn": "X2", "sex": "robot", "birth_date": "soon"},
        headers=auth["coordinator"],
    )
    assert bad.status_code == 422 and {"sex", "birth_date"} <= set(bad.json["errors"])
    assert (
        client.post(
            "/api/v1/patients", json={**body, "mrn": "X3"}, headers=auth["viewer"]
        ).status_code
        == 403
    )
    fetched = client.get(f"/api/v1/patients/{created.json['id']}", headers=auth["viewer"])
    assert fetched.json["pathway_ids"] == []
    assert client.get("/api/v1/patients/999999", headers=auth["viewer"]).status_code == 404


def test_pathways_and_events(client, users, auth, now):
    patient = new_patient(users["coordinator"])
    db.session.commit()
    opened = client.post(
        "/api/v1/pathways",
        json=referral(patient.id, now - timedelta(days=3)),
        headers=auth["coordinator"],
    )
    assert opened.status_code == 201, opened.json
    pid = opened.json["id"]
    assert (opened.json["state"], opened.json["version"]) == ("referred", 1)
    detail = client.get(f"/api/v1/pathways/{pid}", headers=auth["coordinator"]).json
    assert "request_imaging" in detail["allowed_triggers"]
    assert [t["target"] for t in detail["targets"]] == ["spinal_mets_mri", "fds_28", "rtt_62"]
    assert (
        client.get(f"/api/v1/pathways/{pid}", headers=auth["viewer"]).json["allowed_triggers"] == []
    )

    def post(headers, **body):
        base = {
            "trigger": "request_imaging",
            "occurred_at": iso(now - timedelta(days=2)),
            "expected_version": 1,
            "request_id": uuid.uuid4().hex,
            "data": {},
        }
        return client.post(f"/api/v1/pathways/{pid}/events", json={**base, **body}, headers=headers)

    assert post(auth["viewer"]).status_code == 403
    first = post(auth["coordinator"], request_id="req-1")
    assert first.status_code == 201 and first.json["state"] == "imaging"
    assert first.json["version"] == 2 and first.json["event"]["seq"] == 2
    before = events_count()
    repeat = post(auth["coordinator"], request_id="req-1")
    assert repeat.status_code == 200 and repeat.json["event"]["seq"] == 2
    assert events_count() == before
    stale = post(auth["coordinator"], trigger="withdraw", data={"reason": "declined"})
    assert stale.status_code == 409 and "changed since you opened it" in stale.json["message"]
    not_now = post(auth["coordinator"], trigger="plan_surgery", expected_version=2)
    assert not_now.status_code == 409 and not_now.json["error"] == "not_allowed_now"
    invalid = post(
        auth["coordinator"],
        trigger="record_imaging",
        expected_version=2,
        data={"modality": "sonar"},
    )
    assert invalid.status_code == 422
    assert set(invalid.json["errors"]) == {"modality", "region", "findings"}
    assert events_count() == before
    listed = client.get(
        "/api/v1/pathways?state=imaging&urgency=urgent", headers=auth["viewer"]
    ).json
    assert listed["total"] == 1 and listed["items"][0]["id"] == pid
    assert (
        client.get("/api/v1/pathways?target_status=bogus", headers=auth["viewer"]).status_code
        == 422
    )
    events = client.get(f"/api/v1/pathways/{pid}/events", headers=auth["viewer"]).json["items"]
    assert [e["trigger"] for e in events] == ["open_pathway", "request_imaging"]
    assert events[1]["occurred_at"].endswith("+00:00")
    assert events[1]["recorded_by"] == "coordinator"


def test_amend_and_void_through_the_api(client, users, auth, session):
    run = driver(users, referral=datetime.now(UTC) - timedelta(days=5)).walk_to("imaging")
    imaging = run.do("record_imaging").event
    session.commit()
    url = f"/api/v1/pathways/{run.pathway.id}/events"
    amended = client.post(
        url,
        headers=auth["coordinator"],
        json={
            "trigger": "amend_event",
            "expected_version": run.pathway.version,
            "request_id": uuid.uuid4().hex,
            "data": {"event_seq": imaging.seq, "changes": {"levels": "T9"}, "reason": "typo"},
        },
    )
    assert amended.status_code == 201, amended.json
    assert amended.json["event"]["amends_seq"] == imaging.seq
    voided = client.post(
        url,
        headers=auth["admin"],
        json={
            "trigger": "void_last_step",
            "expected_version": amended.json["version"],
            "request_id": uuid.uuid4().hex,
            "data": {"reason": "wrong patient"},
        },
    )
    assert voided.status_code == 409  # the imaging record follows the step: amend instead


def test_api_timeline_equals_the_services_timeline(client, users, auth, session, now):
    """The same steps through the API and through the services give the same story."""
    start = now - timedelta(days=200)
    plan = [
        ("request_imaging", 1),
        ("record_imaging", 2),
        ("refer_to_mdt", 3),
        ("plan_surgery", 5),
        ("record_surgery", 8),
        ("start_rehabilitation", 10),
        ("start_surveillance", 20),
        ("record_follow_up", 60),
        ("discharge", 61),
    ]
    direct = driver(users, referral=start, actor="surgeon")
    for trigger, day in plan:
        at = start + timedelta(days=day)
        direct.do(trigger, valid_data(trigger, direct.pathway.state, at), occurred_at=at)
    patient = new_patient(users["coordinator"])
    session.commit()
    opened = client.post(
        "/api/v1/pathways",
        headers=auth["surgeon"],
        json={**referral(patient.id, start), "urgency": "routine"},
    ).json
    version, state = 1, "referred"
    for trigger, day in plan:
        at = start + timedelta(days=day)
        response = client.post(
            f"/api/v1/pathways/{opened['id']}/events",
            headers=auth["surgeon"],
            json={
                "trigger": trigger,
                "occurred_at": iso(at),
                "expected_version": version,
                "request_id": uuid.uuid4().hex,
                "data": valid_data(trigger, state, at),
            },
        )
        assert response.status_code == 201, response.json
        version, state = response.json["version"], response.json["state"]
    assert state == "discharged"
    api_events = client.get(
        f"/api/v1/pathways/{opened['id']}/events", headers=auth["surgeon"]
    ).json["items"]
    session.expire_all()
    from tracker.engine.services import load_events

    direct_events = load_events(direct.pathway)

    def story(items):
        return [
            (e["trigger"], e["from_state"], e["to_state"], e["occurred_at"], e["data"])
            for e in items
        ][1:]

    from tracker.api.serialize import event as as_json

    assert story(api_events) == story([as_json(e, {}) for e in direct_events])


def _codes(resource, kind=""):
    """Every (field, code) a FHIR resource carries in a checked field.

    Nested objects inherit their resource's type (EpisodeOfCare.statusHistory.status is
    an EpisodeOfCare status)."""
    out = []
    kind = resource.get("resourceType", kind)
    if "status" in resource and isinstance(resource["status"], str):
        out.append((f"{kind}.status", resource["status"]))
    for key, value in resource.items():
        if isinstance(value, dict):
            if key in ("clinicalStatus", "verificationStatus"):
                for coding in value["coding"]:
                    out.append((f"{kind}.{key}", coding["code"]))
            elif "system" in value and value["system"] in VALUE_SETS:
                out.append((value["system"], value["code"]))
            out.extend(_codes(value, kind))
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    if "system" in item and item["system"] in VALUE_SETS:
                        out.append((item["system"], item["code"]))
                    out.extend(_codes(item, kind))
    return out


def test_fhir_bundle_of_every_demo_pathway_validates(client, users, auth, session):
    from fhir.resources.R4B.bundle import Bundle

    from tracker.demo import seed
    from tracker.engine.models import Pathway

    seed(80, seed_value=9)
    session.commit()
    kinds = set()
    for pathway_id in db.session.scalars(select(Pathway.id)):
        response = client.get(f"/api/v1/pathways/{pathway_id}/fhir", headers=auth["viewer"])
        assert response.status_code == 200
        body = response.json
        Bundle.model_validate(body)
        assert body["type"] in VALUE_SETS["Bundle.type"]
        for entry in body["entry"]:
            resource = entry["resource"]
            kinds.add(resource["resourceType"])
            if resource["resourceType"] == "Patient":
                assert resource["gender"] in VALUE_SETS["Patient.gender"]
            if resource["resourceType"] == "CarePlan":
                assert resource["intent"] in VALUE_SETS["CarePlan.intent"]
            for field, code in _codes(resource):
                assert code in VALUE_SETS[field], (field, code)
    assert kinds >= {
        "Patient",
        "EpisodeOfCare",
        "Condition",
        "ImagingStudy",
        "DiagnosticReport",
        "Procedure",
        "Observation",
        "Encounter",
        "CarePlan",
        "Provenance",
    }


def test_create_token_on_the_command_line_and_the_account_page(
    runner, client, users, login, session
):
    result = runner.invoke(args=["tracker", "create-token", "surgeon", "--name", "EHR"])
    assert result.exit_code == 0
    token = result.stdout.strip().splitlines()[0]
    assert token.startswith("trk_")
    assert (
        client.get("/api/v1/definition", headers={"Authorization": f"Bearer {token}"}).status_code
        == 200
    )
    from tracker.api.models import ApiToken

    assert token not in {t.token_hash for t in db.session.scalars(select(ApiToken))}
    login("coordinator")
    page = client.post("/account/tokens", data={"name": "Radiology feed"})
    assert page.status_code == 200 and "will not be shown again" in page.text
    import re

    shown = re.search(r'id="new-token">(trk_[^<]+)<', page.text).group(1)
    assert (
        client.get("/api/v1/definition", headers={"Authorization": f"Bearer {shown}"}).status_code
        == 200
    )
    mine = db.session.scalar(select(ApiToken).where(ApiToken.name == "Radiology feed"))
    others = db.session.scalar(select(ApiToken).where(ApiToken.name == "EHR"))
    assert client.post(f"/account/tokens/{others.id}/revoke").status_code == 403
    assert client.post(f"/account/tokens/{mine.id}/revoke").status_code == 302
    assert (
        client.get("/api/v1/definition", headers={"Authorization": f"Bearer {shown}"}).status_code
        == 401
    )


def test_openapi_document(client):
    body = client.get("/api/openapi.json").json
    assert body["openapi"] == "3.1.0"
    assert {
        "/api/v1/definition",
        "/api/v1/patients",
        "/api/v1/patients/{patient_id}",
        "/api/v1/pathways",
        "/api/v1/pathways/{pathway_id}",
        "/api/v1/pathways/{pathway_id}/events",
        "/api/v1/pathways/{pathway_id}/fhir",
        "/api/v1/pathways/{pathway_id}/tasks",
        "/api/v1/pathways/{pathway_id}/tasks/{task_id}",
        "/api/v1/ptl",
        "/api/v1/returns/cwt",
        "/api/v1/mdt-meetings",
        "/api/v1/mdt-meetings/{meeting_id}",
        "/api/v1/mdt-meetings/{meeting_id}/cases",
    } == set(body["paths"])
    schemas = body["components"]["schemas"]
    assert schemas["mdt_outcome_data"]["properties"]["sins"]["required"] == [
        "location",
        "pain",
        "bone_lesion",
        "alignment",
        "collapse",
        "posterolateral",
    ]
    assert schemas["record_surgery_data"]["required"] == [
        "lead_surgeon",
        "procedures",
        "approach",
        "levels",
    ]


# -- tokens: expiry, scope, last use, revocation ------------------------------------------


def bearer(plain: str) -> dict:
    return {"Authorization": f"Bearer {plain}"}


def stored_token(token_id: int):
    from tracker.api.models import ApiToken

    db.session.expire_all()
    return db.session.get(ApiToken, token_id)


WRITES = {"POST", "PATCH", "PUT", "DELETE"}


def write_rules(app) -> list:
    """Every rule of the API that writes: a new write endpoint is in this list unasked."""
    return sorted(
        (
            rule
            for rule in app.url_map.iter_rules()
            if rule.rule.startswith("/api/") and rule.methods & WRITES
        ),
        key=lambda rule: rule.endpoint,
    )


def test_a_read_token_is_refused_on_every_write_endpoint(app, client, users, session):
    from tracker.patients.models import Patient

    drv = driver(users)
    drv.do(d.ADD_TASK_TRIGGER)  # a task, for the calls that change one
    read, read_plain = create_token(users["coordinator"], "reader", scope="read")
    _, write_plain = create_token(users["coordinator"], "writer")
    session.commit()
    pathway = drv.pathway
    # An MDT meeting's id: a read token is refused before the meeting is looked up.
    ids = {
        "pathway_id": pathway.id,
        "patient_id": pathway.patient_id,
        "meeting_id": 1,
        "task_id": pathway.tasks[0].id,
    }
    rules = write_rules(app)
    assert {r.endpoint for r in rules} >= {
        "api.create_patient",
        "api.update_patient",
        "api.create_pathway",
        "api.record_event",
        "api.create_mdt_meeting",
        "api.list_mdt_case",
        "api.create_task",
        "api.change_task",
    }
    calls = []
    for rule in rules:
        with app.test_request_context():
            path = url_for(rule.endpoint, **{name: ids[name] for name in rule.arguments})
        calls += [(rule.endpoint, method, path) for method in sorted(rule.methods & WRITES)]

    def body():
        return {
            "trigger": "add_note",
            "expected_version": pathway.version,
            "request_id": uuid.uuid4().hex,
            "data": {"note": "from a read token"},
        }

    def stored():
        db.session.expire_all()
        return (
            events_count(),
            db.session.scalar(select(func.count(Patient.id))),
            db.session.get(type(pathway), pathway.id).version,
        )

    before = stored()
    for endpoint, method, path in calls:
        response = client.open(path, method=method, json=body(), headers=bearer(read_plain))
        assert response.status_code == 403, (endpoint, method, response.json)
        assert response.json["error"] == "read_only_token"
        message = response.json["message"]
        assert "read-only" in message and "account page" in message and "read-write" in message
        assert response.json["errors"] == {}
    assert stored() == before  # nothing written
    refused = db.session.scalars(
        select(AuditEntry).where(
            AuditEntry.action == "refused", AuditEntry.user_id == users["coordinator"].id
        )
    ).all()
    assert len(refused) == len(calls) and all("read-only" in e.detail for e in refused)
    # A read token reads.
    assert (
        client.get(f"/api/v1/pathways/{pathway.id}", headers=bearer(read_plain)).status_code == 200
    )
    # The same user with a read-write token is let through: the scope was the refusal.
    for endpoint, method, path in calls:
        response = client.open(path, method=method, json=body(), headers=bearer(write_plain))
        assert response.status_code not in (401, 403), (endpoint, method, response.json)
    assert stored_token(read.id).scope == "read"


def test_a_token_expires_after_the_days_chosen(client, users, session):
    token, plain = create_token(users["coordinator"], "short", days=2)
    session.commit()
    created = token.created_at
    assert token.expires_at - created == timedelta(days=2)
    with time_machine.travel(created + timedelta(days=2) - timedelta(minutes=1), tick=False):
        assert client.get("/api/v1/definition", headers=bearer(plain)).status_code == 200
    with time_machine.travel(created + timedelta(days=2, minutes=1), tick=False):
        response = client.get("/api/v1/definition", headers=bearer(plain))
    assert response.status_code == 401
    assert response.json["error"] == "token_expired"
    assert "expired" in response.json["message"] and "account page" in response.json["message"]


def test_the_default_and_longest_life_is_api_token_days(client, users, login, session, monkeypatch):
    session.commit()
    login("coordinator")
    page = client.post("/account/tokens", data={"name": "Feed", "scope": "read-write"})
    assert page.status_code == 200
    from tracker.api.models import ApiToken

    token = db.session.scalar(select(ApiToken).where(ApiToken.name == "Feed"))
    assert timedelta(days=90) - (token.expires_at - token.created_at) < timedelta(seconds=5)
    too_long = client.post("/account/tokens", data={"name": "Long", "days": "91"})
    assert too_long.status_code == 422 and "A token lasts 1 to 90 days." in too_long.text
    monkeypatch.setitem(client.application.config, "API_TOKEN_DAYS", 7)
    client.post("/account/tokens", data={"name": "Week", "scope": "read"})
    week = db.session.scalar(select(ApiToken).where(ApiToken.name == "Week"))
    assert timedelta(days=7) - (week.expires_at - week.created_at) < timedelta(seconds=5)
    assert week.scope == "read"
    short = client.post("/account/tokens", data={"name": "Day", "days": "1", "scope": "read"})
    assert short.status_code == 200
    unknown_scope = client.post("/account/tokens", data={"name": "X", "scope": "admin"})
    assert unknown_scope.status_code == 422
    assert db.session.scalar(select(func.count(ApiToken.id)).where(ApiToken.name == "X")) == 0


def test_the_account_page_shows_expiry_scope_last_use_and_warns(client, users, login, session):
    near, near_plain = create_token(users["coordinator"], "Nearly over", days=3, scope="read")
    create_token(users["coordinator"], "Fresh")
    session.commit()
    login("coordinator")
    page = client.get("/account/").text
    assert page.count("token-expiry-warning") == 1 and "expires in 3 days" in page
    assert "Read only" in page and "Read and write" in page
    assert "never" in page  # neither used yet
    assert client.get("/api/v1/definition", headers=bearer(near_plain)).status_code == 200
    used = stored_token(near.id).last_used_at
    assert used is not None
    from tracker.web.filters import when

    with client.application.app_context():
        assert when(used) in client.get("/account/").text


def test_the_last_use_is_written_at_most_once_a_minute(client, users, session):
    token, plain = create_token(users["viewer"], "busy")
    session.commit()
    start = datetime.now(UTC).replace(microsecond=0)
    with time_machine.travel(start, tick=False):
        assert client.get("/api/v1/definition", headers=bearer(plain)).status_code == 200
    assert stored_token(token.id).last_used_at == start
    for seconds in (1, 30, 59):
        with time_machine.travel(start + timedelta(seconds=seconds), tick=False):
            assert client.get("/api/v1/definition", headers=bearer(plain)).status_code == 200
        assert stored_token(token.id).last_used_at == start  # not written again
    later = start + timedelta(seconds=61)
    with time_machine.travel(later, tick=False):
        assert client.get("/api/v1/definition", headers=bearer(plain)).status_code == 200
    assert stored_token(token.id).last_used_at == later
    # Not an account change: no audit entry for it.
    assert not db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "update_user")
    ).all()


def test_unknown_and_revoked_tokens_get_the_same_answer(client, users, session):
    token, plain = create_token(users["coordinator"], "gone")
    session.commit()
    revoke(token)
    session.commit()
    revoked = client.get("/api/v1/definition", headers=bearer(plain))
    unknown = client.get("/api/v1/definition", headers=bearer("trk_" + "y" * 43))
    assert revoked.status_code == unknown.status_code == 401
    assert revoked.json == unknown.json
    assert "account page" in revoked.json["message"]


def test_a_password_change_revokes_every_token(client, users, login, session):
    first, first_plain = create_token(users["surgeon"], "one")
    _, second_plain = create_token(users["surgeon"], "two", scope="read")
    _, other_plain = create_token(users["coordinator"], "someone else's")
    session.commit()
    login("surgeon")
    new = "a much longer passphrase here"
    response = client.post(
        "/account/password", data={"current": PASSWORD, "new": new, "confirm": new}
    )
    assert response.status_code == 302
    for plain in (first_plain, second_plain):
        assert client.get("/api/v1/definition", headers=bearer(plain)).status_code == 401
    assert client.get("/api/v1/definition", headers=bearer(other_plain)).status_code == 200
    assert stored_token(first.id).revoked_at is not None
    revoked = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "revoke_token")
    ).all()
    assert len(revoked) == 2


def test_deactivation_revokes_tokens_and_reactivation_does_not_revive_them(
    client, users, login, session
):
    token, plain = create_token(users["coordinator2"], "feed")
    session.commit()
    login("admin")
    target = users["coordinator2"]
    assert client.post(f"/users/{target.id}", data={"role": "coordinator"}).status_code == 302
    assert client.get("/api/v1/definition", headers=bearer(plain)).status_code == 401
    revoked_at = stored_token(token.id).revoked_at
    assert revoked_at is not None
    assert (
        client.post(f"/users/{target.id}", data={"role": "coordinator", "active": "y"}).status_code
        == 302
    )
    response = client.get("/api/v1/definition", headers=bearer(plain))
    assert response.status_code == 401 and response.json["error"] == "unauthorized"
    assert stored_token(token.id).revoked_at == revoked_at  # stays revoked, as it was


def test_the_migration_gives_existing_tokens_90_days_and_read_write(scratch_url):
    import hashlib

    from flask_migrate import downgrade, upgrade
    from sqlalchemy import text

    from tests.conftest import make_app
    from tests.helpers import password_hash
    from tracker.api.models import ApiToken

    app = make_app(scratch_url)
    with app.app_context():
        upgrade(revision="5d0c7e21a9f4")
        # The user as that revision's table has it (later revisions add columns the
        # model already maps).
        at = datetime(2026, 1, 1, tzinfo=UTC)
        if db.engine.dialect.name == "sqlite":
            at = at.replace(tzinfo=None)
        user_id = db.session.execute(
            text(
                'INSERT INTO "user" (username, full_name, role, password_hash, active, '
                "created_at, failed_logins) VALUES ('coordinator', 'Coordinator', "
                "'coordinator', :hash, :yes, :at, 0) RETURNING id"
            ),
            {"hash": password_hash(), "yes": True, "at": at},
        ).scalar_one()
        db.session.commit()
        plain = "trk_" + "m" * 43
        db.session.execute(
            text(
                "INSERT INTO api_token (user_id, name, token_hash, hint, created_at) "
                "VALUES (:user, 'old feed', :hash, 'trk_mmmmmm', :at)"
            ),
            {
                "user": user_id,
                "hash": hashlib.sha256(plain.encode()).hexdigest(),
                "at": datetime(2026, 1, 1, tzinfo=UTC).replace(tzinfo=None)
                if db.engine.dialect.name == "sqlite"
                else datetime(2026, 1, 1, tzinfo=UTC),
            },
        )
        db.session.commit()
        db.session.close()
        upgrade()
        token = db.session.scalar(select(ApiToken))
        expected = datetime.now(UTC) + timedelta(days=90)
        assert abs(token.expires_at - expected) < timedelta(minutes=5)
        assert (token.scope, token.last_used_at, token.revoked_at) == ("read-write", None, None)
        response = app.test_client().post("/api/v1/patients", json={}, headers=bearer(plain))
        assert response.status_code == 422  # let through: it writes, and the body is empty
        db.session.close()
        downgrade(revision="5d0c7e21a9f4")
        db.session.remove()


# -- every error under /api is JSON of the one shape ----------------------------------------

ERROR_SHAPE = {"error", "message", "errors"}


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/api", 404, "not_found"),
        ("GET", "/api/", 404, "not_found"),
        ("GET", "/api/v1/nowhere", 404, "not_found"),
        ("GET", "/api/v2/pathways", 404, "not_found"),
        ("POST", "/api/v1/pathways/1/nowhere", 404, "not_found"),
        ("DELETE", "/api/v1/patients/1", 405, "method_not_allowed"),
        ("PUT", "/api/v1/pathways", 405, "method_not_allowed"),
        ("POST", "/api/openapi.json", 405, "method_not_allowed"),
    ],
)
def test_an_unknown_url_or_method_under_the_api_is_json(client, auth, method, path, status, code):
    for headers in ({}, auth["coordinator"]):
        response = client.open(path, method=method, headers=headers)
        assert response.status_code == status and response.is_json, response.text[:200]
        assert set(response.json) == ERROR_SHAPE and response.json["error"] == code
        assert response.json["message"] and response.json["errors"] == {}


def test_a_body_too_large_for_the_api_is_json(app, client, auth):
    too_large = b'{"mrn": "' + b"x" * app.config["MAX_CONTENT_LENGTH"] + b'"}'
    response = client.post(
        "/api/v1/patients",
        data=too_large,
        headers={**auth["coordinator"], "Content-Type": "application/json"},
    )
    assert response.status_code == 413 and response.is_json
    assert set(response.json) == ERROR_SHAPE
    assert response.json["error"] == "request_entity_too_large"


def test_an_unexpected_error_in_the_api_is_a_json_500_rolled_back_and_logged(
    client, auth, monkeypatch, caplog
):
    """Injected here, after the patient is written: the 500 keeps nothing and is logged
    with its traceback; the caller gets the JSON shape without the details."""
    from tracker.api import serialize
    from tracker.patients.services import find_by_mrn

    def fails(*args, **kwargs):
        raise RuntimeError("injected by the test")

    monkeypatch.setattr(serialize, "patient", fails)
    body = {
        "mrn": "BOOM1",
        "family_name": "Ng",
        "given_name": "Ada",
        "birth_date": "1970-02-03",
        "sex": "female",
    }
    response = client.post("/api/v1/patients", json=body, headers=auth["coordinator"])
    assert response.status_code == 500 and response.is_json
    assert response.json == {
        "error": "server_error",
        "message": "Something went wrong; nothing was saved.",
        "errors": {},
    }
    assert "injected" not in response.text
    assert find_by_mrn("BOOM1") is None
    (logged,) = [r for r in caplog.records if r.exc_info and r.levelname == "ERROR"]
    assert logged.exc_info[0] is RuntimeError and "/api/v1/patients" in logged.getMessage()
    monkeypatch.undo()
    again = client.post("/api/v1/patients", json=body, headers=auth["coordinator"])
    assert again.status_code == 201  # nothing half-written stands in the way


def test_the_web_pages_keep_their_html_error_pages(client, login, users, monkeypatch, caplog):
    from tracker.patients import routes

    login("coordinator")
    for path, method, status in (("/nowhere", "GET", 404), ("/logout", "GET", 405)):
        response = client.open(path, method=method)
        assert response.status_code == status and response.mimetype == "text/html"

    def fails(*args, **kwargs):
        raise RuntimeError("injected by the test")

    monkeypatch.setattr(routes, "patient_search", fails)
    response = client.get("/patients/?q=ada")
    assert response.status_code == 500 and response.mimetype == "text/html"
    assert "injected" not in response.text
    assert any(r.exc_info and r.exc_info[0] is RuntimeError for r in caplog.records)


# -- one MRN, however it is written ---------------------------------------------------------

# Each list is one MRN: letter case, a combining accent, fullwidth forms, outer spaces.
SAME_MRN = [
    ["ÄX1", "äx1", "A\u0308X1", " äX1 "],
    ["RX77", "\uff52\uff58\uff17\uff17", "rx77"],
    ["STRASSE9", "straße9"],
]


@pytest.mark.parametrize("spellings", SAME_MRN)
def test_an_mrn_written_another_way_is_the_same_patient_409(client, auth, spellings):
    body = {"family_name": "Ng", "given_name": "Ada", "birth_date": "1970-02-03", "sex": "female"}
    first, *others = spellings
    created = client.post(
        "/api/v1/patients", json={**body, "mrn": first}, headers=auth["coordinator"]
    )
    assert created.status_code == 201, created.json
    for mrn in others:
        again = client.post(
            "/api/v1/patients", json={**body, "mrn": mrn}, headers=auth["coordinator"]
        )
        assert again.status_code == 409, (mrn, again.status_code, again.text[:200])
        assert again.json["error"] == "duplicate_mrn"
        assert again.json["patient_id"] == created.json["id"]
        assert set(again.json["errors"]) == {"mrn"}
    other = client.post(
        "/api/v1/patients", json={**body, "mrn": "OTHER1"}, headers=auth["coordinator"]
    )
    moved = client.patch(
        f"/api/v1/patients/{other.json['id']}", json={"mrn": others[0]}, headers=auth["coordinator"]
    )
    assert moved.status_code == 409 and moved.json["patient_id"] == created.json["id"]
    # The patient's own MRN in another letter case is a correction, not a duplicate.
    own = client.patch(
        f"/api/v1/patients/{created.json['id']}",
        json={"mrn": others[-1]},
        headers=auth["coordinator"],
    )
    assert own.status_code == 200 and own.json["changed"] == ["mrn"]


@pytest.mark.parametrize(
    ("mrn", "position", "named"),
    [
        ("AB\u200bC1", 3, "U+200B ZERO WIDTH SPACE"),
        ("\u202eRX1", 1, "U+202E RIGHT-TO-LEFT OVERRIDE"),
        ("RX\u00a01", 3, "U+00A0 NO-BREAK SPACE"),
        ("RX\u20281", 3, "U+2028 LINE SEPARATOR"),
    ],
)
def test_an_mrn_holds_only_printable_characters(client, auth, mrn, position, named):
    body = {"family_name": "Ng", "given_name": "Ada", "birth_date": "1970-02-03", "sex": "female"}
    refused = client.post(
        "/api/v1/patients", json={**body, "mrn": mrn}, headers=auth["coordinator"]
    )
    assert refused.status_code == 422, refused.json
    (message,) = refused.json["errors"]["mrn"]
    assert f"position {position}" in message and named in message, message
    assert "letters, digits and punctuation" in message
    assert client.get("/api/v1/pathways", headers=auth["viewer"]).status_code == 200


def test_a_failure_after_the_view_is_a_json_500_too(scratch_url, monkeypatch):
    """The commit (here, the request's audit entry) fails after the view has answered:
    Flask turns it into a 500, which under /api is the same JSON as any other 500."""
    from flask_migrate import upgrade

    from tests.conftest import make_app
    from tests.helpers import make_users
    from tracker.web import auditing

    app = make_app(scratch_url, PROPAGATE_EXCEPTIONS=False)  # as served, not as tested
    with app.app_context():
        upgrade()
        _, token = create_token(make_users()["viewer"], "test")
        db.session.commit()
        db.session.remove()

    def fails(*args, **kwargs):
        raise RuntimeError("injected by the test")

    monkeypatch.setattr(auditing, "record_request", fails)
    client = app.test_client()
    response = client.get("/api/v1/definition", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 500 and response.json == {
        "error": "server_error",
        "message": "Something went wrong; nothing was saved.",
        "errors": {},
    }
    page = client.get("/login")
    assert page.status_code == 500 and page.mimetype == "text/html"
    with app.app_context():
        db.engine.dispose()
