"""Sending an MDT meeting's list to its team by email: who receives it, what it says (and
never says: no patient name, MRN or diagnosis), the audit entry and the meeting page's
line, who may send it, the refusals, and one message end to end over SMTP."""

from __future__ import annotations

import email
import html
import json
from email import policy

import pytest
from aiosmtpd.controller import Controller

from tests.test_alerts import Keep, free_port, mail_backend
from tests.test_mdt_meetings import TEAM, _audited, _in_review, _list, _meeting
from tracker.core.db import utcnow
from tracker.engine.errors import InvalidData
from tracker.mdt import mailing
from tracker.teams.services import set_teams

BASE_URL = "https://tracker.hospital.example"


def shown(response) -> str:
    return html.unescape(response.get_data(as_text=True))


@pytest.fixture
def outbox(app):
    state = app.extensions["mailman"]
    state.outbox = []
    yield state.outbox
    state.outbox = []


def _team(users, *names):
    for name in names:
        set_teams(users[name], [TEAM])
        users[name].email = f"{name}@hospital.example"


def _listed(users, session):
    """A meeting with two cases (one full discussion, one standard of care)."""
    meeting = _meeting(users, days=3, video_link="https://video.example/mdt")
    first, second = _in_review(users), _in_review(users)
    _list(first, meeting)
    _list(second, meeting, triage="standard_of_care")
    session.commit()
    return meeting, [first.pathway, second.pathway]


def _forbidden(body: str, pathways) -> list[str]:
    words = ["Jane", "Doe", "metastatic_spinal", "Metastatic spinal tumour", "Stabilise T8"]
    for pathway in pathways:
        words += [pathway.patient.mrn, pathway.patient.name]
    return [w for w in words if w.lower() in body.lower()]


def test_the_list_goes_to_the_teams_members_with_an_address(
    app, client, login, users, session, outbox, monkeypatch
):
    meeting, pathways = _listed(users, session)
    _team(users, "coordinator", "surgeon", "viewer", "surgeon2")
    users["surgeon2"].active = False  # left the hospital: not sent
    set_teams(users["coordinator2"], [TEAM])  # no address: not sent
    set_teams(users["admin"], ["spine"])
    users["admin"].email = "admin@hospital.example"  # another team: not sent
    session.commit()
    login("coordinator")
    monkeypatch.setitem(app.config, "BASE_URL", BASE_URL)
    response = client.post(f"/mdt/meetings/{meeting.id}/send-list")
    assert response.status_code == 302
    (message,) = outbox
    assert sorted(message.to) == [
        "coordinator@hospital.example",
        "surgeon@hospital.example",
        "viewer@hospital.example",
    ]
    day = f"{meeting.meeting_date:%A %d %B %Y}"
    assert message.subject == f"Metastatic spine MDT, {day} 08:00: the list (2 cases)"
    body = message.body
    assert f"When: {day}, 08:00" in body
    assert "Where: Seminar room 2" in body and "Video link: https://video.example/mdt" in body
    assert "Cases: 2" in body
    assert "Full discussion: 1\n" in body, body
    assert "Standard of care (confirmed without discussion): 1\n" in body
    assert f"{BASE_URL}/mdt/meetings/{meeting.id}/agenda" in body
    assert _forbidden(message.subject + body, pathways) == []
    (entry,) = _audited(session, "mdt_list_sent")
    assert entry.user_id == users["coordinator"].id
    assert json.loads(entry.detail) == {"meeting": meeting.id, "recipients": 3}
    page = shown(client.get(f"/mdt/meetings/{meeting.id}"))
    assert "List sent to 3 people of the team." in page  # the flash
    assert "List sent to 3 people on " in page and " by Coordinator." in page


def test_a_case_taken_off_or_rolled_over_is_not_counted(users, session, outbox):
    meeting, _ = _listed(users, session)
    later = _meeting(users, days=10)
    third = _in_review(users)
    _list(third, meeting)
    for case in meeting.cases:
        if case.pathway_id == third.pathway.id:
            case.rolled_to_id = later.id
    _team(users, "coordinator")
    session.commit()
    assert mailing.case_counts(meeting) == {"full_discussion": 1, "standard_of_care": 1}


def test_a_viewer_or_surgeon_cannot_send_it(client, login, users, session, outbox):
    meeting, _ = _listed(users, session)
    _team(users, "coordinator", "viewer")
    session.commit()
    for who in ("viewer", "surgeon"):
        login(who)
        page = shown(client.get(f"/mdt/meetings/{meeting.id}"))
        assert "Send the list to the team" not in page
        assert client.post(f"/mdt/meetings/{meeting.id}/send-list").status_code == 403
        client.post("/logout")
    assert outbox == [] and _audited(session, "mdt_list_sent") == []
    login("coordinator")
    assert "Send the list to the team" in shown(client.get(f"/mdt/meetings/{meeting.id}"))


def test_nobody_with_an_address_sends_nothing_and_says_so(client, login, users, session, outbox):
    meeting, _ = _listed(users, session)
    set_teams(users["surgeon"], [TEAM])  # a member, but no address
    session.commit()
    login("coordinator")
    response = client.post(f"/mdt/meetings/{meeting.id}/send-list")
    assert response.status_code == 303
    page = shown(client.get(f"/mdt/meetings/{meeting.id}"))
    assert "No active member of Metastatic spine has an email address: nothing was sent" in page
    assert outbox == [] and _audited(session, "mdt_list_sent") == []
    assert "List sent to" not in page


def test_a_cancelled_meeting_is_refused(client, login, users, session, outbox):
    meeting, _ = _listed(users, session)
    _team(users, "coordinator", "surgeon")
    meeting.status = "cancelled"
    session.commit()
    with pytest.raises(InvalidData) as refused:
        mailing.send_list(meeting, users["coordinator"], utcnow())
    assert refused.value.errors["meeting"] == ["This meeting is cancelled: its list is not sent"]
    session.rollback()
    login("coordinator")
    assert "Send the list to the team" not in shown(client.get(f"/mdt/meetings/{meeting.id}"))
    assert client.post(f"/mdt/meetings/{meeting.id}/send-list").status_code == 303
    assert outbox == [] and _audited(session, "mdt_list_sent") == []


def test_the_list_arrives_by_smtp_with_its_link_and_no_patient_detail(
    app, client, login, users, session
):
    meeting, pathways = _listed(users, session)
    _team(users, "coordinator", "surgeon")
    session.commit()
    handler = Keep()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with mail_backend(
            app, MAIL_BACKEND="smtp", MAIL_SERVER="127.0.0.1", MAIL_PORT=port, BASE_URL=BASE_URL
        ):
            login("coordinator")
            assert client.post(f"/mdt/meetings/{meeting.id}/send-list").status_code == 302
    finally:
        controller.stop()
    (envelope,) = handler.envelopes
    assert sorted(envelope.rcpt_tos) == ["coordinator@hospital.example", "surgeon@hospital.example"]
    message = email.message_from_bytes(envelope.content, policy=policy.default)
    assert message["Subject"].startswith("Metastatic spine MDT, ")
    body = message.get_content()
    assert f"{BASE_URL}/mdt/meetings/{meeting.id}/agenda" in body
    assert _forbidden(message["Subject"] + body, pathways) == []
    assert len(_audited(session, "mdt_list_sent")) == 1


def test_a_mail_server_that_refuses_leaves_nothing_recorded(app, client, login, users, session):
    meeting, _ = _listed(users, session)
    _team(users, "coordinator")
    session.commit()
    port = free_port()  # nothing listens there
    with mail_backend(
        app, MAIL_BACKEND="smtp", MAIL_SERVER="127.0.0.1", MAIL_PORT=port, MAIL_TIMEOUT=5
    ):
        login("coordinator")
        assert client.post(f"/mdt/meetings/{meeting.id}/send-list").status_code == 303
        page = shown(client.get(f"/mdt/meetings/{meeting.id}"))
    assert "Nothing was sent: the mail server did not take the message" in page
    assert _audited(session, "mdt_list_sent") == []
