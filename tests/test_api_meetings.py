"""/api/v1/mdt-meetings: listing, creating, one meeting with cases, attendance and
quoracy, and listing a pathway on a meeting; tokens, roles and teams as the rest of the
API; bad input refused with why and nothing written."""

from __future__ import annotations

import uuid

import pytest
import time_machine
from sqlalchemy import func, select

from tests.test_api import auth  # noqa: F401 - the fixture
from tests.test_mdt_meetings import TEAM, _in_review, _list, _meeting, _values
from tests.test_mdt_running import _after, _decide
from tracker.api.services import create_token
from tracker.engine.models import Event
from tracker.extensions import db
from tracker.mdt import services as mdt
from tracker.mdt.models import MdtCase, MdtMeeting
from tracker.teams.services import set_teams


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_a_coordinator_creates_a_meeting_and_anyone_lists_them(client, users, auth, session):  # noqa: F811
    body = _values()
    response = client.post("/api/v1/mdt-meetings", json=body, headers=auth["coordinator"])
    assert response.status_code == 201, response.json
    created = response.json
    assert (created["team"], created["start_time"], created["chair"]) == (TEAM, "08:00", "surgeon")
    assert created["items"] == [] and created["quorum"]["quorate"] is False
    listed = client.get(f"/api/v1/mdt-meetings?team={TEAM}", headers=auth["viewer"]).json
    assert [m["id"] for m in listed["items"]] == [created["id"]]
    assert listed["items"][0]["cases"] == 0
    assert client.get("/api/v1/mdt-meetings?team=other", headers=auth["viewer"]).status_code == 422
    assert (
        client.get("/api/v1/mdt-meetings?from=20261201", headers=auth["viewer"]).status_code == 422
    )
    # A surgeon may not create one; the same slot twice is refused; nothing written.
    refused = client.post("/api/v1/mdt-meetings", json=body, headers=auth["surgeon"])
    assert refused.status_code == 403 and refused.json["error"] == "forbidden"
    twice = client.post("/api/v1/mdt-meetings", json=body, headers=auth["coordinator"])
    assert (
        twice.status_code == 422 and "already meets on" in twice.json["errors"]["meeting_date"][0]
    )
    assert _count(MdtMeeting) == 1


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"meeting_date": "01/12/2026"}, "meeting_date", "YYYY-MM-DD"),
        ({"start_time": "8am"}, "start_time", "HH:MM"),
        ({"team": 3}, "team", "must be text"),
        ({"colour": "red"}, "colour", "is not a field"),
        ({"location": "", "video_link": ""}, "location", "Give a location"),
        ({"meeting_date": "0001-01-01"}, "meeting_date", "from 2000 to 2999"),
    ],
)
def test_a_bad_meeting_is_refused_with_why(client, users, auth, change, field, words):  # noqa: F811
    response = client.post(
        "/api/v1/mdt-meetings", json={**_values(), **change}, headers=auth["coordinator"]
    )
    assert response.status_code == 422
    assert words in " ".join(response.json["errors"][field])
    assert _count(MdtMeeting) == 0


def test_one_meeting_with_its_cases_attendance_and_quoracy(client, users, auth, session):  # noqa: F811
    meeting = _meeting(users)
    drive = _in_review(users)
    _list(drive, meeting)
    mdt.record_attendance(meeting, "surgeon", "spinal_surgery", users["coordinator"])
    session.commit()
    body = client.get(f"/api/v1/mdt-meetings/{meeting.id}", headers=auth["viewer"]).json
    (case,) = body["items"]
    assert case["pathway_id"] == drive.pathway.id and case["position"] == 1
    assert case["question"] == "Stabilise T8 before radiotherapy?"
    assert case["outcome"] is None and case["outcome_outstanding"] is False
    assert body["attendance"] == [
        {"user": "surgeon", "name": users["surgeon"].display_name, "specialty": "spinal_surgery"}
    ]
    assert body["quorum"] == {
        "quorate": False,
        "needed": ["spinal_surgery", "clinical_oncology", "radiology"],
        "missing": ["clinical_oncology", "radiology"],
    }
    # Another team's reader sees the place on the list, nothing of the patient.
    set_teams(users["viewer"], ["spine"])
    session.commit()
    body = client.get(f"/api/v1/mdt-meetings/{meeting.id}", headers=auth["viewer"]).json
    assert body["items"] == [{"id": case["id"], "position": 1, "other_team": True}]
    assert client.get("/api/v1/mdt-meetings/999999", headers=auth["viewer"]).status_code == 404


def test_listing_a_pathway_through_the_api_is_its_listing_step(client, users, auth, session):  # noqa: F811
    meeting = _meeting(users)
    drive = _in_review(users)
    session.commit()
    request_id = uuid.uuid4().hex
    body = {
        "pathway_id": drive.pathway.id,
        "question": "Radiotherapy or surgery first?",
        "presenter": "surgeon",
        "triage": "full_discussion",
        "expected_version": drive.pathway.version,
        "request_id": request_id,
    }
    url = f"/api/v1/mdt-meetings/{meeting.id}/cases"
    response = client.post(url, json=body, headers=auth["coordinator"])
    assert response.status_code == 201, response.json
    assert response.json["case"]["question"] == "Radiotherapy or surgery first?"
    event = session.scalar(select(Event).where(Event.request_id == request_id))
    assert event.trigger == "schedule_mdt" and event.data["meeting_id"] == meeting.id
    # The same request again: the same answer, nothing new.
    again = client.post(url, json=body, headers=auth["coordinator"])
    assert again.status_code == 200 and again.json["case"]["id"] == response.json["case"]["id"]
    # Twice on one meeting: refused with why, nothing written.
    events = _count(Event)
    twice = client.post(
        url,
        json={**body, "request_id": uuid.uuid4().hex, "expected_version": again.json["version"]},
        headers=auth["coordinator"],
    )
    assert twice.status_code == 422
    assert twice.json["errors"]["meeting_id"] == ["This pathway is already listed on that meeting"]
    assert _count(Event) == events and _count(MdtCase) == 1
    # A read-only token, a viewer, another team: refused.
    _, read = create_token(users["coordinator"], "reader", scope="read")
    session.commit()
    fresh = {**body, "request_id": uuid.uuid4().hex}
    assert (
        client.post(url, json=fresh, headers={"Authorization": f"Bearer {read}"}).status_code == 403
    )
    assert client.post(url, json=fresh, headers=auth["viewer"]).status_code == 403
    set_teams(users["surgeon"], ["spine"])
    session.commit()
    other = client.post(url, json=fresh, headers=auth["surgeon"])
    assert other.status_code == 403 and other.json["error"] == "other_team"


def test_a_listing_on_a_meeting_in_the_past_is_refused(client, users, auth, session):  # noqa: F811
    started = _meeting(users, days=0, start_time="00:00")
    drive = _in_review(users)
    session.commit()
    response = client.post(
        f"/api/v1/mdt-meetings/{started.id}/cases",
        json={
            "pathway_id": drive.pathway.id,
            "question": "Q",
            "presenter": "surgeon",
            "triage": "full_discussion",
            "expected_version": drive.pathway.version,
            "request_id": uuid.uuid4().hex,
        },
        headers=auth["coordinator"],
    )
    assert response.status_code == 422
    assert "choose one ahead" in response.json["errors"]["meeting_id"][0]
    assert _count(MdtCase) == 0


def test_the_openapi_document_describes_the_meetings(client):
    paths = client.get("/api/openapi.json").json["paths"]
    assert set(paths["/api/v1/mdt-meetings"]) == {"get", "post"}
    assert "get" in paths["/api/v1/mdt-meetings/{meeting_id}"]
    assert "post" in paths["/api/v1/mdt-meetings/{meeting_id}/cases"]


def test_an_outcome_is_shown_with_its_inquorate_flag(client, users, auth, session):  # noqa: F811
    meeting = _meeting(users, days=2)
    drive = _in_review(users)
    _list(drive, meeting)
    session.commit()
    with time_machine.travel(_after(meeting, 3), tick=False):
        _decide(drive, meeting)
        session.commit()
        (case,) = client.get(f"/api/v1/mdt-meetings/{meeting.id}", headers=auth["viewer"]).json[
            "items"
        ]
        assert case["outcome"]["decision"] == "Surgery" and case["outcome"]["inquorate"] is True
        assert case["outcome_outstanding"] is False
