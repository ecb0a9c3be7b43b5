"""A request sent many times at once (a client's retries racing each other) is answered
as a request sent again later is: the original's answer, and nothing written twice."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from flask_migrate import upgrade
from sqlalchemy import func, select
from sqlalchemy.pool import NullPool

from tests.conftest import make_app
from tests.helpers import REFERRAL, make_users, new_patient
from tracker.api.services import create_token
from tracker.engine import services
from tracker.engine.models import Event, Pathway
from tracker.extensions import db

CLIENTS = 16


@pytest.fixture
def served(scratch_url):
    """An app as it runs (pysqlite begins a transaction at its first write; a connection
    per request), a patient with an open pathway, and a coordinator's token."""
    app = make_app(
        scratch_url,
        SQLITE_EXPLICIT_TRANSACTIONS=False,
        SQLALCHEMY_ENGINE_OPTIONS={"poolclass": NullPool},
    )
    with app.app_context():
        upgrade()
        users = make_users()
        patient = new_patient(users["coordinator"], mrn="RACE1")
        pathway = services.open_pathway(
            users["coordinator"],
            patient,
            referral_received_at=datetime.now(UTC) - timedelta(days=3),
            lead_surgeon="surgeon",
            coordinator="coordinator",
            **REFERRAL,
        )
        _, token = create_token(users["coordinator"], "replays")
        db.session.commit()
        setup = {"patient": patient.id, "pathway": pathway.id, "token": token}
        db.session.remove()
    yield app, setup
    with app.app_context():
        db.engine.dispose()


def all_at_once(app, method: str, url: str, body: dict, token: str) -> list:
    """``CLIENTS`` clients, each with its own test client (and so its own app context and
    connection), sending the same request the moment all are ready."""
    barrier = threading.Barrier(CLIENTS)
    answers: list = [None] * CLIENTS
    failures: list[BaseException] = []

    def send(n: int) -> None:
        try:
            client = app.test_client()
            barrier.wait(timeout=30)
            answers[n] = client.open(
                url, method=method, json=body, headers={"Authorization": f"Bearer {token}"}
            )
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures[:3]
    return answers


def assert_one_original_and_replays(answers, replay, created: int) -> None:
    statuses = sorted(a.status_code for a in answers)
    bodies = [a.json for a in answers if a.status_code != created]
    assert statuses == sorted([created] + [replay.status_code] * (CLIENTS - 1)), [
        (a.status_code, a.json) for a in answers if a.status_code not in (200, 201)
    ][:3]
    assert all(body == replay.json for body in bodies), [b for b in bodies if b != replay.json][:1]


def test_sixteen_copies_of_one_step_at_once_are_one_step_and_fifteen_replays(served):
    app, setup = served
    url = f"/api/v1/pathways/{setup['pathway']}/events"
    body = {
        "trigger": "request_imaging",
        "occurred_at": (datetime.now(UTC) - timedelta(days=2)).isoformat(),
        "expected_version": 1,
        "request_id": "one-step-sent-16-times",
        "data": {},
    }
    answers = all_at_once(app, "POST", url, body, setup["token"])
    replay = app.test_client().post(
        url, json=body, headers={"Authorization": f"Bearer {setup['token']}"}
    )
    assert replay.status_code == 200 and replay.json["version"] == 2
    assert_one_original_and_replays(answers, replay, created=201)
    original = next(a for a in answers if a.status_code == 201)
    assert original.json["event"] == replay.json["event"]
    with app.app_context():
        steps = select(func.count(Event.id)).where(Event.pathway_id == setup["pathway"])
        assert db.session.scalar(steps) == 2
        db.session.remove()


def test_sixteen_copies_of_one_referral_at_once_open_one_pathway(served):
    app, setup = served
    body = {
        "patient_id": setup["patient"],
        "request_id": "one-referral-sent-16-times",
        "referral_received_at": (datetime.now(UTC) - timedelta(days=1)).isoformat(),
        "confirm_another_pathway": True,
        **REFERRAL,
    }
    answers = all_at_once(app, "POST", "/api/v1/pathways", body, setup["token"])
    replay = app.test_client().post(
        "/api/v1/pathways", json=body, headers={"Authorization": f"Bearer {setup['token']}"}
    )
    # A referral sent again answers 201 with the pathway it opened the first time.
    assert replay.status_code == 201, replay.json
    assert_one_original_and_replays(answers, replay, created=201)
    assert {a.json["id"] for a in answers} == {replay.json["id"]}
    with app.app_context():
        pathways = select(func.count(Pathway.id)).where(Pathway.patient_id == setup["patient"])
        assert db.session.scalar(pathways) == 2
        db.session.remove()
