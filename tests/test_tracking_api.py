"""/api/v1/pathways/{id}/tasks: list, add, complete, cancel and update tasks, with the
API's token scopes and team access."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers import driver
from tracker.api.services import create_token
from tracker.engine import steps as d
from tracker.engine.models import Pathway
from tracker.extensions import db
from tracker.teams.models import UserTeam


@pytest.fixture
def auth(users, session):
    headers = {}
    for name in ("coordinator", "surgeon", "viewer"):
        _, plain = create_token(users[name], "test")
        headers[name] = {"Authorization": f"Bearer {plain}"}
    _, plain = create_token(users["coordinator"], "reader", scope="read")
    headers["reader"] = {"Authorization": f"Bearer {plain}"}
    session.commit()
    return headers


@pytest.fixture
def pathway(users, session):
    run = driver(users).walk_to("imaging")
    session.commit()
    return run.pathway


def _due(days: int = 3) -> str:
    return (datetime.now(UTC).date() + timedelta(days=days)).isoformat()


def _add(client, pathway, headers, **body):
    version = db.session.get(Pathway, pathway.id).version
    payload = {
        "what": "Chase MRI report",
        "owner": "surgeon",
        "due_on": _due(),
        "expected_version": version,
        "request_id": uuid.uuid4().hex,
        **body,
    }
    return client.post(f"/api/v1/pathways/{pathway.id}/tasks", json=payload, headers=headers)


def _change(client, pathway, task_id, headers, **body):
    db.session.expire_all()
    version = db.session.get(Pathway, pathway.id).version
    payload = {"expected_version": version, "request_id": uuid.uuid4().hex, **body}
    return client.post(
        f"/api/v1/pathways/{pathway.id}/tasks/{task_id}", json=payload, headers=headers
    )


def test_a_task_is_added_listed_and_completed(client, auth, pathway):
    listed = client.get(f"/api/v1/pathways/{pathway.id}/tasks", headers=auth["viewer"])
    assert listed.status_code == 200 and listed.json["items"] == []

    added = _add(client, pathway, auth["coordinator"])
    assert added.status_code == 201, added.json
    task = added.json["task"]
    assert (task["what"], task["owner"], task["due_on"], task["status"]) == (
        "Chase MRI report",
        "surgeon",
        _due(),
        "open",
    )
    assert task["number"] == added.json["event"]["seq"]
    assert added.json["event"]["trigger"] == d.ADD_TASK_TRIGGER

    listed = client.get(f"/api/v1/pathways/{pathway.id}/tasks", headers=auth["viewer"]).json
    assert [t["id"] for t in listed["items"]] == [task["id"]]

    done = _change(client, pathway, task["id"], auth["surgeon"], action="complete", note="Seen")
    assert done.status_code == 201, done.json
    assert done.json["task"]["status"] == "done" and done.json["task"]["close_note"] == "Seen"
    assert done.json["event"]["trigger"] == d.COMPLETE_TASK_TRIGGER

    again = _change(client, pathway, task["id"], auth["surgeon"], action="complete")
    assert again.status_code == 422
    assert "already done" in again.json["errors"]["task"][0]


def test_a_request_sent_twice_records_once(client, auth, pathway):
    request_id = uuid.uuid4().hex
    first = _add(client, pathway, auth["coordinator"], request_id=request_id)
    assert first.status_code == 201
    second = client.post(
        f"/api/v1/pathways/{pathway.id}/tasks",
        json={
            "what": "Chase MRI report",
            "owner": "surgeon",
            "due_on": _due(),
            "expected_version": first.json["version"] - 1,
            "request_id": request_id,
        },
        headers=auth["coordinator"],
    )
    assert second.status_code == 200 and second.json["task"]["id"] == first.json["task"]["id"]


def test_cancel_and_update_and_their_refusals(client, auth, pathway):
    task = _add(client, pathway, auth["coordinator"]).json["task"]
    moved = _change(
        client,
        pathway,
        task["id"],
        auth["coordinator"],
        action="update",
        owner="coordinator",
        due_on=_due(9),
    )
    assert moved.status_code == 201, moved.json
    assert (moved.json["task"]["owner"], moved.json["task"]["due_on"]) == ("coordinator", _due(9))

    no_reason = _change(client, pathway, task["id"], auth["coordinator"], action="cancel")
    assert no_reason.status_code == 422
    assert "Reason for cancelling is required" in no_reason.json["errors"]["reason"][0]
    stray = _change(
        client, pathway, task["id"], auth["coordinator"], action="complete", owner="surgeon"
    )
    assert stray.status_code == 422 and "owner" in stray.json["errors"]
    unknown = _change(client, pathway, task["id"], auth["coordinator"], action="archive")
    assert unknown.status_code == 422 and "action" in unknown.json["errors"]
    stale = client.post(
        f"/api/v1/pathways/{pathway.id}/tasks/{task['id']}",
        json={"action": "cancel", "reason": "x", "expected_version": 1, "request_id": "r1"},
        headers=auth["coordinator"],
    )
    assert stale.status_code == 409

    cancelled = _change(
        client, pathway, task["id"], auth["coordinator"], action="cancel", reason="Not needed"
    )
    assert cancelled.status_code == 201 and cancelled.json["task"]["status"] == "cancelled"


def test_bad_tasks_are_refused_with_their_reasons(client, auth, pathway):
    missing = client.post(
        f"/api/v1/pathways/{pathway.id}/tasks",
        json={"what": "Chase", "expected_version": pathway.version, "request_id": "x1"},
        headers=auth["coordinator"],
    )
    assert missing.status_code == 422
    assert {"owner", "due_on"} <= set(missing.json["errors"])
    past = _add(client, pathway, auth["coordinator"], due_on=_due(-2))
    assert past.status_code == 422 and "in the past" in past.json["errors"]["due_on"][0]
    nobody = _add(client, pathway, auth["coordinator"], owner="ghost")
    assert nobody.status_code == 422 and "no active user" in nobody.json["errors"]["owner"][0]
    extra = _add(client, pathway, auth["coordinator"], colour="red")
    assert extra.status_code == 422 and "colour" in extra.json["errors"]


def test_another_pathways_task_is_not_found(client, auth, pathway, users, session):
    other = driver(users).walk_to("imaging").pathway
    session.commit()
    task = _add(client, pathway, auth["coordinator"]).json["task"]
    response = _change(client, other, task["id"], auth["coordinator"], action="complete")
    assert response.status_code == 404
    assert response.json["error"] == "not_found"


def test_scopes_roles_and_teams(client, auth, pathway, users, session):
    read_only = _add(client, pathway, auth["reader"])
    assert read_only.status_code == 403 and read_only.json["error"] == "read_only_token"
    assert (
        client.get(f"/api/v1/pathways/{pathway.id}/tasks", headers=auth["reader"]).status_code
        == 200
    )
    viewer = _add(client, pathway, auth["viewer"])
    assert viewer.status_code == 403
    assert client.get(f"/api/v1/pathways/{pathway.id}/tasks").status_code == 401

    # A coordinator outside the pathway's team neither reads nor adds its tasks.
    session.execute(UserTeam.__table__.delete().where(UserTeam.user_id == users["coordinator2"].id))
    session.add(UserTeam(user_id=users["coordinator2"].id, team="bone"))
    _, plain = create_token(users["coordinator2"], "outsider")
    session.commit()
    outsider = {"Authorization": f"Bearer {plain}"}
    listed = client.get(f"/api/v1/pathways/{pathway.id}/tasks", headers=outsider)
    assert listed.status_code == 403 and listed.json["error"] == "other_team"
    assert _add(client, pathway, outsider).status_code == 403
    # Nor can a task be given to them.
    given = _add(client, pathway, auth["coordinator"], owner="coordinator2")
    assert given.status_code == 422 and "cannot see the pathway" in given.json["errors"]["owner"][0]


def test_the_tasks_calls_are_in_the_openapi_document(client):
    spec = client.get("/api/openapi.json").get_json()
    assert {"get", "post"} <= set(spec["paths"]["/api/v1/pathways/{pathway_id}/tasks"])
    assert "post" in spec["paths"]["/api/v1/pathways/{pathway_id}/tasks/{task_id}"]
    task_in = spec["components"]["schemas"]["TaskIn"]
    assert task_in["properties"]["what"]["maxLength"] == 200
    assert set(task_in["required"]) >= {"what", "owner", "due_on"}
    assert "tracking_note" in spec["components"]["schemas"]["Pathway"]["properties"]
