"""MDT meetings: creating and editing them, weekly series, listing pathways on them with
a question, a presenter and a triage, the list's order, its closing time, late additions,
and the meeting page with its outcomes and its cases scoped to the reader's teams."""

from __future__ import annotations

import html
import re
import uuid
from datetime import UTC, date, datetime, time, timedelta

import pytest
import time_machine
from sqlalchemy import func, select

from tests.helpers import driver
from tracker.audit.models import AuditEntry
from tracker.core.clock import local_zone
from tracker.engine import services
from tracker.engine.errors import InvalidData, RoleNotAllowed
from tracker.engine.models import Event
from tracker.mdt import services as mdt
from tracker.mdt.models import MdtCase, MdtMeeting
from tracker.teams.services import set_teams

TEAM = "metastatic"  # the team of the helpers' pathways (metastatic spinal)


def shown(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def _values(**over) -> dict:
    return {
        "team": TEAM,
        "meeting_date": (date.today() + timedelta(days=7)).isoformat(),
        "start_time": "08:00",
        "location": "Seminar room 2",
        "video_link": "",
        "chair": "surgeon",
        **over,
    }


def _meeting(users, days: int = 7, **over) -> MdtMeeting:
    day = (datetime.now(local_zone()) + timedelta(days=days)).date()
    return mdt.create_meeting(_values(meeting_date=day.isoformat(), **over), users["coordinator"])


def _listing(meeting, **over) -> dict:
    return {
        "meeting_id": meeting.id,
        "question": "Stabilise T8 before radiotherapy?",
        "presenter": "surgeon",
        "triage": "full_discussion",
        **over,
    }


def _in_review(users):
    return driver(users).walk_to("mdt_review")


def _list(drive, meeting, now=None, **over):
    return services.record(
        drive.pathway,
        "schedule_mdt",
        _listing(meeting, **over),
        now or datetime.now(UTC),
        drive.actor,
        drive.pathway.version,
        uuid.uuid4().hex,
        now=now,
    )


def _audited(session, action: str) -> list[AuditEntry]:
    return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


# -- meetings -------------------------------------------------------------------------------


def test_a_coordinator_creates_and_edits_a_meeting_each_change_audited(
    client, login, users, session
):
    session.commit()
    login("coordinator")
    response = client.post("/mdt/meetings/new", data=_values())
    assert response.status_code == 302, shown(response)
    meeting = session.scalar(select(MdtMeeting))
    assert (meeting.team, meeting.start_time, meeting.chair.username) == (
        TEAM,
        time(8, 0),
        "surgeon",
    )
    assert len(_audited(session, "mdt_meeting_created")) == 1
    listed = shown(client.get("/mdt/meetings"))
    assert f"/mdt/meetings/{meeting.id}" in listed and "Seminar room 2" in listed

    edited = _values(location="", video_link="https://video.example.nhs.uk/mdt", status="scheduled")
    response = client.post(f"/mdt/meetings/{meeting.id}/edit", data=edited)
    assert response.status_code == 302
    session.refresh(meeting)
    assert (meeting.location, meeting.video_link) == ("", "https://video.example.nhs.uk/mdt")
    (changed,) = _audited(session, "mdt_meeting_changed")
    assert "Seminar room 2" in changed.detail and "video_link" in changed.detail


def test_a_meeting_with_bad_input_is_refused_with_every_reason_and_nothing_written(
    client, login, users, session
):
    session.commit()
    login("coordinator")
    response = client.post(
        "/mdt/meetings/new",
        data=_values(team="", location="", video_link="zoom.example", chair=""),
    )
    assert response.status_code == 422
    text = shown(response)
    assert "Choose the team" in text
    assert "A video link starts with https://" in text
    assert "Choose who chairs the meeting" in text
    assert session.scalar(select(func.count()).select_from(MdtMeeting)) == 0
    # The same slot twice is refused, naming it.
    assert client.post("/mdt/meetings/new", data=_values()).status_code == 302
    response = client.post("/mdt/meetings/new", data=_values())
    assert response.status_code == 422
    assert "already meets on" in shown(response)
    assert session.scalar(select(func.count()).select_from(MdtMeeting)) == 1


def test_only_coordinators_organise_meetings(client, login, users, session):
    with pytest.raises(RoleNotAllowed):
        mdt.create_meeting(_values(), users["surgeon"])
    session.commit()
    login("surgeon")
    assert client.post("/mdt/meetings/new", data=_values()).status_code == 403
    assert client.get("/mdt/meetings").status_code == 200
    assert client.get("/mdt/calendar?view=month").status_code == 200
    assert session.scalar(select(func.count()).select_from(MdtMeeting)) == 0


def test_weekly_meetings_are_created_ahead_once_however_often_it_runs(users, session):
    today = date(2026, 12, 3)  # a Thursday
    values = _values()
    values.pop("meeting_date")
    created, existing = mdt.create_series(values, "tuesday", 8, users["coordinator"], today)
    assert (len(created), existing) == (8, 0)
    assert [m.meeting_date for m in created][:2] == [date(2026, 12, 8), date(2026, 12, 15)]
    assert all(m.meeting_date.weekday() == 1 and m.start_time == time(8) for m in created)
    created, existing = mdt.create_series(values, "tuesday", 10, users["coordinator"], today)
    assert (len(created), existing) == (2, 8)
    assert session.scalar(select(func.count()).select_from(MdtMeeting)) == 10
    with pytest.raises(InvalidData) as refused:
        mdt.create_series(values, "someday", 0, users["coordinator"], today)
    assert set(refused.value.errors) == {"weekday", "weeks"}


def test_the_command_creates_weekly_meetings_idempotently(runner, users, session):
    session.commit()
    args = [
        "tracker", "create-meetings", "--team", "spine", "--weekday", "tuesday",
        "--time", "08:00", "--weeks", "3", "--location", "Room 1", "--chair", "surgeon",
        "--user", "coordinator",
    ]  # fmt: skip
    result = runner.invoke(args=args)
    assert result.exit_code == 0, result.output
    assert "Created 3 meeting(s); 0 already existed." in result.output
    result = runner.invoke(args=args)
    assert "Created 0 meeting(s); 3 already existed." in result.output
    refused = runner.invoke(args=[*args[:-1], "viewer"])
    assert refused.exit_code != 0 and "care coordinators" in refused.output


def test_the_calendar_shows_the_weeks_meetings(client, login, users, session):
    meeting = _meeting(users, days=1)
    session.commit()
    login("viewer")
    week = shown(client.get(f"/mdt/calendar?day={meeting.meeting_date.isoformat()}"))
    assert f"/mdt/meetings/{meeting.id}" in week and "08:00 Metastatic spine" in week
    later = meeting.meeting_date + timedelta(days=14)
    assert f"/mdt/meetings/{meeting.id}" not in shown(
        client.get(f"/mdt/calendar?day={later.isoformat()}")
    )
    month = shown(client.get(f"/mdt/calendar?view=month&day={meeting.meeting_date.isoformat()}"))
    assert f"/mdt/meetings/{meeting.id}" in month


# -- the case list --------------------------------------------------------------------------


def test_listing_names_a_meeting_and_is_a_step_on_the_timeline(users, session):
    meeting = _meeting(users)
    drive = _in_review(users)
    recorded = _list(drive, meeting)
    event = recorded.event
    assert event.trigger == "schedule_mdt"
    # The meeting's date is the date, for the old readers of meeting_date (the API, FHIR).
    assert event.data["meeting_date"] == meeting.meeting_date.isoformat()
    assert event.data["meeting_id"] == meeting.id
    (case,) = meeting.cases
    assert (case.pathway_id, case.event_id, case.position) == (drive.pathway.id, event.id, 1)
    assert (case.presenter.username, case.triage) == ("surgeon", "full_discussion")
    (entry,) = _audited(session, "mdt_case_listed")
    assert entry.pathway_id == drive.pathway.id
    assert _audited(session, "record_event")  # and the step itself


def test_a_listing_by_date_alone_still_works(users, session):
    drive = _in_review(users)
    day = (date.today() + timedelta(days=3)).isoformat()
    event = drive.do("schedule_mdt", {"meeting_date": day}).event
    assert event.data == {"meeting_date": day}
    assert session.scalar(select(func.count()).select_from(MdtCase)) == 0


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"question": ""}, "question", "Give the clinical question"),
        ({"presenter": ""}, "presenter", "Choose who presents"),
        ({"triage": "maybe"}, "triage", "Triage"),
        ({"meeting_id": 999999}, "meeting_id", "There is no MDT meeting 999999"),
        ({"meeting_date": "2020-01-01"}, "meeting_date", "leave the date out"),
    ],
)
def test_a_listing_with_bad_input_says_why_and_writes_nothing(users, session, change, field, words):
    meeting = _meeting(users)
    drive = _in_review(users)
    before = session.scalar(select(func.count()).select_from(Event))
    with pytest.raises(InvalidData) as refused:
        _list(drive, meeting, **change)
    assert words in " ".join(refused.value.errors[field])
    assert session.scalar(select(func.count()).select_from(Event)) == before
    assert session.scalar(select(func.count()).select_from(MdtCase)) == 0


def test_a_case_is_listed_once_on_a_meeting_of_its_team_that_is_ahead(users, session):
    drive = _in_review(users)
    meeting = _meeting(users)
    _list(drive, meeting)
    with pytest.raises(InvalidData) as twice:
        _list(drive, meeting)
    assert twice.value.errors["meeting_id"] == ["This pathway is already listed on that meeting"]
    other_team = _meeting(users, team="spine")
    with pytest.raises(InvalidData) as wrong_team:
        _list(drive, other_team)
    assert "list it on a meeting of that team" in wrong_team.value.errors["meeting_id"][0]
    started = _meeting(users, days=0, start_time="00:00")
    with pytest.raises(InvalidData) as past:
        _list(drive, started)
    assert "choose one ahead" in past.value.errors["meeting_id"][0]
    cancelled = _meeting(users, days=14)
    mdt.update_meeting(cancelled, _values(
        meeting_date=cancelled.meeting_date.isoformat(), status="cancelled"
    ), users["coordinator"])  # fmt: skip
    with pytest.raises(InvalidData) as off:
        _list(drive, cancelled)
    assert "That meeting is cancelled" in off.value.errors["meeting_id"][0]
    assert len(meeting.cases) == 1


def test_the_list_closes_a_day_before_and_a_late_addition_needs_a_reason(
    client, login, users, session
):
    meeting = _meeting(users, days=3)
    start = mdt.starts_at(meeting)
    drive = _in_review(users)
    late = start - timedelta(hours=23)
    with time_machine.travel(late, tick=False):
        with pytest.raises(InvalidData) as refused:
            _list(drive, meeting, now=late)
        assert "give the reason for this late addition" in refused.value.errors["late_reason"][0]
        _list(drive, meeting, now=late, late_reason="Cord compression on last night's MRI")
    (case,) = meeting.cases
    assert case.late_reason == "Cord compression on last night's MRI"
    session.commit()
    login("coordinator")
    page = shown(client.get(f"/mdt/meetings/{meeting.id}"))
    assert "Late addition" in page and "Cord compression on last night's MRI" in page


def test_the_list_closing_time_is_configurable(app, users, session):
    meeting = _meeting(users, days=3)
    drive = _in_review(users)
    early = mdt.starts_at(meeting) - timedelta(hours=30)
    app.config["MDT_LIST_CLOSES_HOURS"] = 48
    try:
        with pytest.raises(InvalidData) as refused:
            _list(drive, meeting, now=early)
        assert "late_reason" in refused.value.errors
    finally:
        app.config["MDT_LIST_CLOSES_HOURS"] = 24
    _list(drive, meeting, now=early)  # a day's notice: on time
    assert meeting.cases[0].late_reason == ""


def test_the_order_changes_with_up_and_down_each_move_audited(client, login, users, session):
    meeting = _meeting(users)
    drives = [_in_review(users) for _ in range(3)]
    for drive in drives:
        _list(drive, meeting)
    session.commit()
    first, second, third = (c.id for c in meeting.cases)
    login("coordinator")
    move = f"/mdt/meetings/{meeting.id}/cases/{third}/move"
    assert client.post(move, data={"direction": "up"}).status_code == 302
    session.expire_all()
    assert [c.id for c in meeting.cases] == [first, third, second]
    assert client.post(move, data={"direction": "up"}).status_code == 302
    assert client.post(move, data={"direction": "up"}).status_code == 302  # at the top
    session.expire_all()
    assert [c.id for c in meeting.cases] == [third, first, second]
    page = shown(client.get(f"/mdt/meetings/{meeting.id}"))
    assert [int(i) for i in re.findall(r'data-case="(\d+)"', page)] == [third, first, second]
    assert len(_audited(session, "mdt_case_moved")) == 4  # two swaps, two rows each
    client.post("/logout")
    login("surgeon")
    assert client.post(move, data={"direction": "down"}).status_code == 403


def test_listing_from_the_pathway_page(client, login, users, session):
    meeting = _meeting(users)
    drive = _in_review(users)
    session.commit()
    login("coordinator")
    page = shown(client.get(f"/pathways/{drive.pathway.id}"))
    assert f"/mdt/pathways/{drive.pathway.id}/list" in page
    form = shown(client.get(f"/mdt/pathways/{drive.pathway.id}/list"))
    assert f'value="{meeting.id}"' in form
    post = {
        "meeting_id": str(meeting.id),
        "question": "",
        "presenter": "surgeon",
        "triage": "standard_of_care",
        "expected_version": str(drive.pathway.version),
        "request_id": uuid.uuid4().hex,
    }
    refused = client.post(f"/mdt/pathways/{drive.pathway.id}/list", data=post)
    assert refused.status_code == 422
    assert "Give the clinical question" in shown(refused)
    post["question"] = "Confirm standard radiotherapy"
    response = client.post(f"/mdt/pathways/{drive.pathway.id}/list", data=post)
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/mdt/meetings/{meeting.id}")
    page = shown(client.get(f"/mdt/meetings/{meeting.id}"))
    assert "Confirm standard radiotherapy" in page and "Standard of care" in page
    timeline = shown(client.get(f"/pathways/{drive.pathway.id}"))
    assert "MDT meeting scheduled" in timeline


# -- the meeting page -----------------------------------------------------------------------


def test_a_past_meeting_flags_cases_without_an_outcome(client, login, users, session):
    meeting = _meeting(users, days=2)
    decided, waiting = _in_review(users), _in_review(users)
    for drive in (decided, waiting):
        _list(drive, meeting)
    session.commit()
    after = mdt.starts_at(meeting) + timedelta(hours=2)
    with time_machine.travel(after, tick=False):
        decided.t = after - timedelta(minutes=90)
        decided.do("plan_surgery")
        session.commit()
        login("coordinator")
        page = shown(client.get(f"/mdt/meetings/{meeting.id}"))
        rows = dict(re.findall(r'data-case="(\d+)">(.*?)</tr>', page, re.S))
        by_pathway = {c.pathway_id: rows[str(c.id)] for c in meeting.cases}
        assert "Recorded" in by_pathway[decided.pathway.id]
        assert "Outcome outstanding" in by_pathway[waiting.pathway.id]
        listed = shown(client.get("/mdt/meetings"))
        assert "outcome outstanding: 1" in listed


def test_another_teams_cases_are_shown_without_who_they_are(client, login, users, session):
    meeting = _meeting(users)
    drive = _in_review(users)
    _list(drive, meeting)
    set_teams(users["viewer"], ["spine"])
    session.commit()
    login("viewer")
    page = shown(client.get(f"/mdt/meetings/{meeting.id}"))
    patient = drive.pathway.patient
    assert "A patient of another team" in page
    assert patient.mrn not in page and f"/pathways/{drive.pathway.id}" not in page
    assert "Stabilise T8" not in page
    set_teams(users["viewer"], [TEAM])
    session.commit()
    page = shown(client.get(f"/mdt/meetings/{meeting.id}"))
    assert patient.mrn in page and "Stabilise T8" in page


# -- attendance -----------------------------------------------------------------------------


def test_attendance_makes_the_meeting_quorate_once_every_core_specialty_is_there(
    client, login, users, session
):
    meeting = _meeting(users)  # metastatic: spinal surgery, clinical oncology, radiology
    session.commit()
    login("coordinator")
    page = f"/mdt/meetings/{meeting.id}"
    assert 'data-quorate="no"' in shown(client.get(page))
    for username, specialty in (
        ("surgeon", "spinal_surgery"),
        ("viewer", "clinical_oncology"),
        ("coordinator2", "nursing"),
    ):
        response = client.post(
            f"{page}/attendance", data={"user": username, "specialty": specialty}
        )
        assert response.status_code == 302
    text = shown(client.get(page))
    assert 'data-quorate="no"' in text
    assert re.search(r'class="missing">\s*Radiology\s*<', text)
    assert client.post(
        f"{page}/attendance", data={"user": "surgeon2", "specialty": "radiology"}
    ).status_code == 302  # fmt: skip
    text = shown(client.get(page))
    assert 'data-quorate="yes"' in text and "Missing" not in text
    assert len(_audited(session, "mdt_attendance")) == 4


def test_the_core_specialties_are_configurable(app, users, session):
    meeting = _meeting(users)
    mdt.record_attendance(meeting, "surgeon", "spinal_surgery", users["coordinator"])
    assert not mdt.quorum(meeting).quorate
    configured = app.config["MDT_CORE_SPECIALTIES"]
    app.config["MDT_CORE_SPECIALTIES"] = "metastatic=spinal_surgery"
    try:
        assert mdt.quorum(meeting).quorate
    finally:
        app.config["MDT_CORE_SPECIALTIES"] = configured
    assert mdt.quorum(meeting).missing == ("clinical_oncology", "radiology")


def test_bad_attendance_is_refused_with_why_and_nothing_written(client, login, users, session):
    meeting = _meeting(users)
    mdt.record_attendance(meeting, "surgeon", "spinal_surgery", users["coordinator"])
    with pytest.raises(InvalidData) as unknown:
        mdt.record_attendance(meeting, "viewer", "astrology", users["coordinator"])
    assert "Unknown specialty 'astrology'" in unknown.value.errors["specialty"][0]
    with pytest.raises(InvalidData) as twice:
        mdt.record_attendance(meeting, "surgeon", "radiology", users["coordinator"])
    assert "already on the attendance" in twice.value.errors["user"][0]
    with pytest.raises(RoleNotAllowed):
        mdt.record_attendance(meeting, "viewer", "radiology", users["surgeon"])
    session.commit()
    login("coordinator")
    response = client.post(
        f"/mdt/meetings/{meeting.id}/attendance", data={"user": "nobody", "specialty": "x"}
    )
    assert response.status_code == 303
    text = shown(client.get(f"/mdt/meetings/{meeting.id}"))
    assert "No user is called 'nobody'" in text and "Unknown specialty 'x'" in text
    session.expire_all()
    assert len(meeting.attendance) == 1


def test_verify_names_a_case_that_disagrees_with_its_listing_step(runner, users, session):
    from sqlalchemy import text

    meeting, other = _meeting(users), _meeting(users, days=14)
    drive = _in_review(users)
    _list(drive, meeting)
    (case,) = meeting.cases
    case_id, meeting_id, other_id = case.id, meeting.id, other.id
    session.commit()
    result = runner.invoke(args=["tracker", "verify"])
    assert "Every MDT case agrees with its listing step." in result.output
    # Moved to another meeting behind the app's back.
    session.execute(
        text("UPDATE mdt_case SET meeting_id = :m, triage = 'standard_of_care' WHERE id = :id"),
        {"m": other_id, "id": case_id},
    )
    session.commit()
    result = runner.invoke(args=["tracker", "verify"])
    assert result.exit_code == 1
    assert (
        f"MDT case {case_id} (meeting {other_id}): the step names meeting {meeting_id}; "
        "its triage differs from the step's" in result.output
    )


def _correct(drive, event, changes):
    pathway = drive.pathway
    return services.amend(
        pathway,
        event.seq,
        changes,
        "Listed wrongly",
        drive.actor,
        pathway.version,
        uuid.uuid4().hex,
    )


def test_a_corrected_listing_moves_its_case_with_it(users, session):
    """A correction of a listing is the way to fix one: the case on the meeting follows
    it (question, presenter, triage, and the meeting itself, onto the end of its list),
    and verify compares the case with the listing as corrected."""
    meeting, later = _meeting(users), _meeting(users, days=14)
    already = _in_review(users)
    _list(already, later)  # the later meeting has one case already
    drive = _in_review(users)
    listing = _list(drive, meeting).event
    _correct(drive, listing, {"question": "Radiotherapy first?", "presenter": "surgeon2"})
    session.flush()
    (case,) = meeting.cases
    assert (case.question, case.presenter.username) == ("Radiotherapy first?", "surgeon2")
    assert mdt.case_problems() == []

    _correct(drive, listing, {"meeting_id": later.id})
    session.flush()
    session.expire_all()
    assert meeting.cases == []
    assert [(c.pathway_id, c.position) for c in later.cases] == [
        (already.pathway.id, 1),
        (drive.pathway.id, 2),
    ]
    step = services.load_history(drive.pathway).by_seq[listing.seq]
    assert step.data["meeting_date"] == later.meeting_date.isoformat()  # the date follows
    assert mdt.case_problems() == []
    moved = _audited(session, "mdt_case_moved")
    assert moved and moved[-1].pathway_id == drive.pathway.id


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"question": ""}, "changes.question", "Give the clinical question"),
        ({"meeting_id": "other team"}, "changes.meeting_id", "list it on a meeting of that team"),
        ({"meeting_id": "started"}, "changes.meeting_id", "choose one ahead"),
        ({"meeting_id": "listed"}, "changes.meeting_id", "already listed on that meeting"),
    ],
)
def test_a_correction_of_a_listing_is_held_to_the_rules_of_a_listing(
    users, session, change, field, words
):
    meeting = _meeting(users)
    drive = _in_review(users)
    listing = _list(drive, meeting).event
    targets = {
        "other team": lambda: _meeting(users, team="spine"),
        "started": lambda: _meeting(users, days=0, start_time="00:00"),
        "listed": lambda: _listed_elsewhere(users, drive),
    }
    if change.get("meeting_id") in targets:
        change = {"meeting_id": targets[change["meeting_id"]]().id}
    before = session.scalar(select(func.count()).select_from(Event))
    with pytest.raises(InvalidData) as refused:
        _correct(drive, listing, change)
    assert words in " ".join(refused.value.errors[field])
    assert session.scalar(select(func.count()).select_from(Event)) == before
    (case,) = meeting.cases  # unmoved, unchanged
    assert case.question == "Stabilise T8 before radiotherapy?"


def _listed_elsewhere(users, drive):
    other = _meeting(users, days=21)
    _list(drive, other)
    return other


def test_a_case_does_not_leave_a_meeting_that_has_started(users, session):
    meeting, later = _meeting(users), _meeting(users, days=14)
    drive = _in_review(users)
    listing = _list(drive, meeting).event
    during = mdt.starts_at(meeting) + timedelta(minutes=30)
    with pytest.raises(InvalidData) as refused:
        services.amend(
            drive.pathway,
            listing.seq,
            {"meeting_id": later.id},
            "Wrong meeting",
            drive.actor,
            drive.pathway.version,
            uuid.uuid4().hex,
            now=during,
        )
    assert "has started: its cases stay on it" in refused.value.errors["changes.meeting_id"][0]
