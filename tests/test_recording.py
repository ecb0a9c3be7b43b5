"""Recording as it really happens: late entries, corrected times and referrals, handovers,
episodes with their own urgency, follow-up dates, pathways opened in error, and every
problem reported in one round. Each breakage of the recording issue is tried as written,
on the services, the web pages and the API.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from tests.helpers import Driver, driver, new_pathway, valid_data
from tests.test_routes_pathway import (
    field_error,
    last_event,
    local_input,
    mdt_post,
    shown,
    step_post,
)
from tracker.api.services import create_token
from tracker.engine import clocks, derive, services, timing
from tracker.engine.errors import InvalidData
from tracker.engine.models import Event, Pathway, PathwayClock
from tracker.extensions import db
from tracker.reports import figures

MINUTE = timedelta(minutes=1)
H = timedelta(hours=1)
D = timedelta(days=1)


def _now() -> datetime:
    return datetime.now(UTC).replace(second=0, microsecond=0)


@pytest.fixture
def auth(users, session):
    _, plain = create_token(users["coordinator"], "recording")
    session.commit()
    return {"Authorization": f"Bearer {plain}"}


def api_record(client, auth, pathway, trigger, data, at):
    db.session.refresh(pathway)
    return client.post(
        f"/api/v1/pathways/{pathway.id}/events",
        json={
            "trigger": trigger,
            "occurred_at": at.isoformat(),
            "expected_version": pathway.version,
            "request_id": uuid.uuid4().hex,
            "data": data,
        },
        headers=auth,
    )


def api_amend(client, auth, pathway, seq, changes, reason="Corrected from the notes"):
    return api_record(
        client,
        auth,
        pathway,
        "amend_event",
        {"event_seq": seq, "changes": changes, "reason": reason},
        _now(),
    )


def clock_rows(pathway) -> dict[tuple[int, str], str]:
    rows = db.session.scalars(select(PathwayClock).where(PathwayClock.pathway_id == pathway.id))
    return {(r.episode, r.clock): r.status for r in rows}


def replay_agrees(pathway) -> None:
    """The row and its clock rows are what a full replay gives (verify's check)."""
    db.session.expire_all()
    pathway = db.session.get(Pathway, pathway.id)
    history = services.load_history(pathway)
    derived = derive.derive_for(pathway, history, datetime.now(UTC))
    assert derive.differences(pathway, derived, pathway.clocks) == []


# -- 1. a late entry after a sign-off -----------------------------------------------------------


def _signed_off_in_mdt_review(users, session):
    """An emergency pathway in MDT review since two days ago; the surgeon signed off an hour
    ago. Returns the driver."""
    referral = _now() - 2 * D
    run = driver(users, referral=referral, urgency="emergency")
    run.walk_to("mdt_review")
    run.do("sign_off", {}, actor=users["surgeon"], occurred_at=_now() - H)
    session.commit()
    return run


def test_a_backdated_step_after_a_sign_off_is_accepted_and_not_yet_reviewed(users, session):
    run = _signed_off_in_mdt_review(users, session)
    yesterday = _now() - D
    # Before the sign-off's time, and recorded after it: both were refused before.
    run.do("record_assessment", {"pain_nrs": 4}, occurred_at=_now() - 70 * timedelta(minutes=1))
    outcome = run.do("plan_surgery", occurred_at=yesterday).event
    assert run.pathway.state == "surgery_scheduled"
    history = services.load_history(run.pathway)
    assert [s.seq for s in history.unreviewed()][-2:] == [outcome.seq - 1, outcome.seq]
    assert run.pathway.unreviewed_steps == 2
    replay_agrees(run.pathway)


def test_a_backdated_step_after_a_sign_off_on_the_web(client, login, users, session):
    run = _signed_off_in_mdt_review(users, session)
    login("surgeon")
    yesterday = _now() - D
    response = client.post(
        f"/pathways/{run.pathway.id}/mdt-outcome",
        data=mdt_post(run.pathway, occurred_at=local_input(yesterday)),
    )
    assert response.status_code == 302, shown(response)
    page = shown(client.get(f"/pathways/{run.pathway.id}"))
    assert "MDT decision: surgery" in page and "Not yet reviewed" in page
    # The step is in the surgeon's own queue, on their landing page (My work) too.
    queue = shown(client.get("/sign-off/"))
    assert "Awaiting my sign-off" in queue and f"/pathways/{run.pathway.id}" in queue
    client.post("/logout")
    assert login("surgeon").headers["Location"].endswith("/my-work/")
    assert f"/pathways/{run.pathway.id}" in shown(client.get("/my-work/"))


def test_a_backdated_step_after_a_sign_off_on_the_api(client, auth, users, session):
    run = _signed_off_in_mdt_review(users, session)
    at = _now() - D
    data = valid_data("plan_surgery", "mdt_review", at)
    response = api_record(client, auth, run.pathway, "plan_surgery", data, at)
    assert response.status_code == 201, response.get_json()
    body = client.get(f"/api/v1/pathways/{run.pathway.id}", headers=auth).get_json()
    assert body["state"] == "surgery_scheduled" and body["unreviewed_steps"] == 1


def test_a_step_still_cannot_be_dated_before_the_state_change_that_allowed_it(users):
    run = driver(users)
    entered = run.do("request_imaging").event
    with pytest.raises(InvalidData) as refused:
        run.do("record_imaging", occurred_at=entered.occurred_at - timedelta(minutes=5))
    (message,) = refused.value.errors["occurred_at"]
    assert "cannot be before 'Request imaging'" in message
    # In the hospital's local time, with its zone.
    local = entered.occurred_at.astimezone(clocks.local_zone())
    assert f"{local:%H:%M %Z}" in message
    # A record allowed in every state is bound by the referral only.
    assert run.do(
        "record_assessment", {"pain_nrs": 2}, occurred_at=entered.occurred_at - 30 * MINUTE
    ).created
    with pytest.raises(InvalidData, match="before the referral was received"):
        run.do(
            "record_assessment", {"pain_nrs": 2}, occurred_at=run.pathway.referral_received_at - H
        )


def test_a_guard_reads_what_had_happened_by_the_steps_time(users):
    """An imaging report dated after the referral to the MDT does not allow it."""
    run = driver(users)
    run.do("request_imaging")
    report = run.do("record_imaging").event
    with pytest.raises(Exception, match="no imaging study has been reported yet"):
        run.do("refer_to_mdt", occurred_at=report.occurred_at - timedelta(minutes=10))
    assert run.pathway.state == "imaging"


# -- 2. a corrected imaging time moves the MRI clock ---------------------------------------------


def _mri_reported_late(users, session):
    """Emergency referral three days ago; the MRI typed as reported 30 hours after it."""
    referral = _now() - 3 * D
    run = driver(users, referral=referral, urgency="emergency")
    run.do("request_imaging", occurred_at=referral + H)
    imaging = run.do("record_imaging", occurred_at=referral + 30 * H).event
    session.commit()
    assert clock_rows(run.pathway)[(0, "mscc_mri")] == "missed"
    return run, imaging


def test_a_corrected_imaging_time_moves_the_mri_clock_to_met(users, session):
    run, imaging = _mri_reported_late(users, session)
    referral = run.pathway.referral_received_at
    services.amend(
        run.pathway,
        imaging.seq,
        {"occurred_at": (referral + 20 * H).isoformat()},
        "Report time was typed as the entry time",
        users["coordinator"],
        run.pathway.version,
        uuid.uuid4().hex,
    )
    assert clock_rows(run.pathway)[(0, "mscc_mri")] == "met"
    history = services.load_history(run.pathway)
    assert history.by_seq[imaging.seq].occurred_at == referral + 20 * H
    assert history.by_seq[imaging.seq].original_occurred_at == referral + 30 * H
    replay_agrees(run.pathway)


def test_a_corrected_imaging_time_on_the_web(client, login, users, session):
    run, imaging = _mri_reported_late(users, session)
    login("coordinator")
    form = shown(client.get(f"/pathways/{run.pathway.id}/amend/{imaging.seq}"))
    assert 'name="occurred_at"' in form
    corrected = run.pathway.referral_received_at + 20 * H
    data = step_post(
        run.pathway,
        occurred_at=local_input(corrected),
        modality="mri",
        region="Thoracic spine",
        levels="T7-T9",
        findings="Lytic lesion T8.",
        bilsky_grade="1b",
        reason="Report time was typed as the entry time",
    )
    response = client.post(f"/pathways/{run.pathway.id}/amend/{imaging.seq}", data=data)
    assert response.status_code == 302, shown(response)
    amendment = last_event(run.pathway)
    assert amendment.data["changes"] == {"occurred_at": corrected.isoformat()}
    page = shown(client.get(f"/pathways/{run.pathway.id}"))
    assert 'data-clock="mscc_mri" data-status="met"' in page
    assert "When it happened" in page  # the amendment and the original, in words


def test_a_corrected_imaging_time_on_the_api(client, auth, users, session):
    run, imaging = _mri_reported_late(users, session)
    corrected = run.pathway.referral_received_at + 20 * H
    response = api_amend(
        client, auth, run.pathway, imaging.seq, {"occurred_at": corrected.isoformat()}
    )
    assert response.status_code == 201, response.get_json()
    targets = client.get(f"/api/v1/pathways/{run.pathway.id}", headers=auth).get_json()["targets"]
    assert {t["target"]: t["status"] for t in targets}["mscc_mri"] == "met"


def test_a_correction_that_breaks_a_later_step_is_refused_naming_it(client, auth, users, session):
    run = driver(users)
    run.do("request_imaging")
    imaging = run.do("record_imaging").event
    run.do("request_biopsy")
    session.commit()
    before = (db.session.scalar(select(func.count(Event.id))), run.pathway.version)
    late = (imaging.occurred_at + 2 * H).isoformat()  # after the biopsy was requested
    with pytest.raises(InvalidData) as refused:
        services.amend(
            run.pathway,
            imaging.seq,
            {"occurred_at": late},
            "Wrong time",
            users["coordinator"],
            run.pathway.version,
            uuid.uuid4().hex,
        )
    (message,) = refused.value.errors["changes.occurred_at"]
    assert "step 4 'Request biopsy'" in message and "no imaging study" in message
    db.session.rollback()
    response = api_amend(client, auth, run.pathway, imaging.seq, {"occurred_at": late})
    assert response.status_code == 422
    assert "Request biopsy" in str(response.get_json()["errors"])
    assert (db.session.scalar(select(func.count(Event.id))), run.pathway.version) == before


def test_a_time_correction_cannot_move_a_step_into_the_future(users):
    run = driver(users)
    step = run.do("request_imaging").event
    with pytest.raises(InvalidData, match="cannot be in the future"):
        services.amend(
            run.pathway,
            step.seq,
            {"occurred_at": (_now() + D).isoformat()},
            "x",
            users["coordinator"],
            run.pathway.version,
            uuid.uuid4().hex,
        )


# -- 3. the referral can be corrected ------------------------------------------------------------


def test_an_amended_urgency_changes_which_clocks_apply(users, session):
    run = driver(users, referral=_now() - 2 * D, urgency="routine")
    run.do("request_imaging")
    assert (0, "mscc_mri") not in clock_rows(run.pathway)
    services.amend(
        run.pathway,
        1,
        {"urgency": "emergency", "referral_priority": "emergency_presentation"},
        "Neurological signs in the referral letter",
        users["coordinator"],
        run.pathway.version,
        uuid.uuid4().hex,
    )
    rows = clock_rows(run.pathway)
    assert rows[(0, "mscc_mri")] == "running" and (0, "fds_28") not in rows
    assert (run.pathway.urgency, run.pathway.referral_priority) == (
        "emergency",
        "emergency_presentation",
    )
    replay_agrees(run.pathway)


def test_the_referral_is_amended_on_the_web(client, login, users, session):
    run = driver(users, referral=_now() - 2 * D, urgency="routine")
    run.do("request_imaging")
    session.commit()
    login("coordinator")
    form = client.get(f"/pathways/{run.pathway.id}/amend/1")
    assert form.status_code == 200  # was 409
    page = shown(form)
    assert 'name="referral_received_at"' in page and 'name="occurred_at"' not in page
    received = run.pathway.referral_received_at - 3 * H
    data = step_post(
        run.pathway,
        referral_received_at=local_input(received),
        referral_source="gp",
        urgency="emergency",
        referral_priority="emergency_presentation",
        diagnosis_category="metastatic_spinal",
        tumour_site="T8",
        primary_cancer_site="breast",
        presenting_symptoms=["back_pain"],
        lead_surgeon="surgeon2",
        coordinator="coordinator",
        reason="Referral letter re-read",
    )
    del data["occurred_at"]
    response = client.post(f"/pathways/{run.pathway.id}/amend/1", data=data)
    assert response.status_code == 302, shown(response)
    db.session.expire_all()
    pathway = db.session.get(Pathway, run.pathway.id)
    assert pathway.urgency == "emergency" and pathway.referral_received_at == received
    assert pathway.lead_surgeon.username == "surgeon2"
    page = shown(client.get(f"/pathways/{pathway.id}"))
    assert 'data-clock="mscc_mri"' in page and "Emergency presentation" in page


def test_the_referral_is_amended_on_the_api(client, auth, users, session):
    run = driver(users, referral=_now() - 2 * D, urgency="routine")
    session.commit()
    before = client.get(f"/api/v1/pathways/{run.pathway.id}", headers=auth).get_json()
    assert {t["target"] for t in before["targets"]} == {"fds_28", "rtt_62"}
    emergency = {"urgency": "emergency", "referral_priority": "emergency_presentation"}
    response = api_amend(client, auth, run.pathway, 1, emergency)
    assert response.status_code == 201, response.get_json()
    body = client.get(f"/api/v1/pathways/{run.pathway.id}", headers=auth).get_json()
    assert body["urgency"] == "emergency"
    # The emergency clocks apply now, the routine ones no longer.
    assert {t["target"] for t in body["targets"]} == {"mscc_mri"}
    # The referral cannot be moved after the first step it started.
    first = run.pathway.referral_received_at + H
    run.do("request_imaging", occurred_at=first)
    session.commit()
    later = (first + H).isoformat()
    refused = api_amend(client, auth, run.pathway, 1, {"referral_received_at": later})
    assert refused.status_code == 422
    assert "Request imaging" in str(refused.get_json()["errors"])


# -- 4. handover --------------------------------------------------------------------------------


def test_a_handover_moves_the_pathway_between_worklists(client, login, users, session):
    run = driver(users)
    run.do("reassign", {"coordinator": "coordinator2", "lead_surgeon": "surgeon2"})
    session.commit()
    assert run.pathway.coordinator.username == "coordinator2"
    assert run.pathway.lead_surgeon.username == "surgeon2"
    with pytest.raises(InvalidData, match="Name a new lead surgeon"):
        run.do("reassign", {})
    login("coordinator2")
    assert f"/pathways/{run.pathway.id}" in client.get("/?mine=1").text
    page = shown(client.get(f"/pathways/{run.pathway.id}"))
    assert "Handover" in page
    client.post("/logout")
    login("coordinator")
    assert f"/pathways/{run.pathway.id}" not in client.get("/?mine=1").text


# -- 5. episodes with their own urgency ---------------------------------------------------------


def test_a_recurrence_has_its_own_urgency_and_closes_the_follow_up_clock(users, session):
    referral = _now() - 400 * D
    run = driver(
        users,
        referral=referral,
        urgency="emergency",
    )
    run.walk_to("surveillance")
    visit = run.do(
        "record_follow_up",
        {"imaging_done": True, "status": "stable", "next_due": (run.t + 90 * D).date().isoformat()},
    ).event
    recurrence = run.do(
        "suspect_recurrence",
        {"urgency": "urgent", "referral_priority": "urgent_suspected_cancer", "findings": "Pain"},
    ).event
    rows = clock_rows(run.pathway)
    # The pain-only recurrence carries no emergency clock; it has the urgent one.
    assert (1, "mscc_mri") not in rows and (1, "mscc_plan") not in rows
    assert rows[(1, "spinal_mets_mri")] == "running"
    # The follow-up booked at the last visit is closed by the recurrence.
    follow_up = [
        r
        for r in db.session.scalars(
            select(PathwayClock).where(
                PathwayClock.pathway_id == run.pathway.id, PathwayClock.clock == "follow_up"
            )
        )
        if r.started_at == visit.occurred_at
    ]
    assert [(r.status, r.stopped_at) for r in follow_up] == [("met", recurrence.occurred_at)]
    # The reports count every episode's clocks, each once.
    report = figures.standards(
        figures.Filters((referral - D).date(), _now().date()), UTC, datetime.now(UTC)
    )
    assert sum(sum(row[1:4]) for row in report) == len(
        [k for k in rows if k[1] in {c.code for c in figures.STANDARDS}]
    )
    replay_agrees(run.pathway)


def test_a_recurrence_needs_its_urgency_and_route(users):
    run = driver(users).walk_to("surveillance")
    with pytest.raises(InvalidData) as refused:
        run.do("suspect_recurrence", {})
    assert {"urgency", "referral_priority"} <= set(refused.value.errors)


# -- 6. follow-up dates ---------------------------------------------------------------------------


def test_surveillance_needs_the_first_follow_up_date_shown_as_that_date(
    client, login, users, session
):
    run = driver(users).walk_to("post_op")
    with pytest.raises(InvalidData) as refused:
        run.do("start_surveillance", {})
    assert "next_due" in refused.value.errors
    run.do("start_surveillance", {"next_due": "2027-01-12"}, occurred_at=_now() - D)
    session.commit()
    login("coordinator")
    page = shown(client.get(f"/pathways/{run.pathway.id}"))
    assert "12 Jan 2027" in page and "13 Jan 2027 00:00" not in page
    target = next(
        t
        for t in client.get(f"/pathways/{run.pathway.id}").text.split("<tr")
        if 'data-clock="follow_up"' in t
    )
    assert "12 Jan 2027" in target


def test_the_mdt_form_asks_for_the_first_follow_up_of_surveillance(client, login, users, session):
    run = driver(users).walk_to("mdt_review")
    session.commit()
    login("surgeon")
    response = client.post(
        f"/pathways/{run.pathway.id}/mdt-outcome",
        data=mdt_post(run.pathway, decision="plan_surveillance"),
    )
    assert response.status_code == 422
    assert "First follow-up visit due is required" in field_error(response, "next_due")


# -- 7. opened in error ---------------------------------------------------------------------------


def test_a_pathway_opened_in_error_leaves_every_count_and_report(client, login, users, session):
    referral = _now() - 10 * D
    run = driver(users, referral=referral, urgency="urgent")
    run.do("request_imaging")
    run.do("withdraw", {"reason": "opened_in_error"})
    session.commit()
    assert run.pathway.in_error and clock_rows(run.pathway) == {}
    report = figures.build(
        figures.Filters((referral - D).date(), _now().date()), datetime.now(UTC), UTC
    )
    assert report.referrals == 0 and sum(n for _, n in report.states) == 0
    # It stays in the log and on the patient's record.
    login("coordinator")
    assert client.get(f"/pathways/{run.pathway.id}").status_code == 200
    assert run.pathway.state == "withdrawn"


def test_a_second_open_pathway_needs_confirmation(users, session):
    first = new_pathway(users["coordinator"])
    fields = {
        "referral_received_at": _now() - H,
        "referral_source": "gp",
        "urgency": "urgent",
        "diagnosis_category": "metastatic_spinal",
        "tumour_site": "L2",
        "primary_cancer_site": "lung",
    }
    with pytest.raises(InvalidData) as refused:
        services.open_pathway(users["coordinator"], first.patient, **fields)
    (message,) = refused.value.errors["confirm_another_pathway"]
    assert f"#{first.id}" in message
    second = services.open_pathway(
        users["coordinator"], first.patient, confirm_another_pathway=True, **fields
    )
    assert second.id != first.id and second.referral_priority == "urgent_suspected_cancer"


# -- 8. one round of errors -------------------------------------------------------------


def test_every_problem_of_a_form_in_one_round(client, login, users, session):
    run = driver(users)
    request = run.do("request_imaging").event
    session.commit()
    login("coordinator")
    # A missing required field and a time before the step that made this one possible.
    too_early = request.occurred_at - timedelta(minutes=30)
    response = client.post(
        f"/pathways/{run.pathway.id}/record/record_imaging",
        data=step_post(
            run.pathway, occurred_at=local_input(too_early), modality="mri", region="Spine"
        ),
    )
    assert response.status_code == 422
    assert "Findings" in field_error(response, "findings")
    assert "cannot be before 'Request imaging'" in field_error(response, "occurred_at")
    assert event_total(run.pathway) == 2


def test_the_service_reports_time_and_data_problems_together(users):
    run = driver(users)
    with pytest.raises(InvalidData) as refused:
        run.do("withdraw", {}, occurred_at=run.pathway.referral_received_at - H)
    assert set(refused.value.errors) == {"occurred_at", "reason"}


def event_total(pathway) -> int:
    return db.session.scalar(select(func.count(Event.id)).where(Event.pathway_id == pathway.id))


# -- the timeline -------------------------------------------------------------------------------


def test_the_timeline_orders_by_when_it_happened_and_says_what_was_late(
    client, login, users, session
):
    referral = _now() - 10 * D
    pathway = new_pathway(users["coordinator"], referral)
    run = Driver(pathway, users["coordinator"], referral)
    run.do("record_assessment", {"pain_nrs": 5}, occurred_at=referral + 5 * D)
    run.do("add_note", {"note": "Phoned the patient."}, occurred_at=referral + 2 * D)
    session.commit()
    login("coordinator")
    page = shown(client.get(f"/pathways/{pathway.id}"))
    # Newest first: the assessment (day 5) above the note (day 2), though typed first.
    assert page.index("Clinical assessment") < page.index("Phoned the patient.")
    assert "recorded 5 d later by" in page and "recorded 8 d later by" in page
    assert timing.problems(services.load_history(pathway), datetime.now(UTC)) == {}


def test_another_patient_in_the_queue_is_not_mine(client, login, users, session):
    run = _signed_off_in_mdt_review(users, session)
    other = driver(users)
    other.pathway.lead_surgeon = users["surgeon2"]
    session.commit()
    login("surgeon")
    queue = client.get("/sign-off/").text
    assert f'/pathways/{other.pathway.id}"' not in queue
    assert f'/pathways/{run.pathway.id}"' not in queue  # signed off, nothing since
    assert f'/pathways/{other.pathway.id}"' in client.get("/sign-off/?surgeon=surgeon2").text


def test_a_corrected_referral_does_not_undo_a_later_handover(users, session):
    run = driver(users)
    run.do("reassign", {"lead_surgeon": "surgeon2"})
    services.amend(
        run.pathway,
        1,
        {"coordinator": "coordinator2", "lead_surgeon": "surgeon"},
        "Referral letter re-read",
        users["coordinator"],
        run.pathway.version,
        uuid.uuid4().hex,
    )
    # The referral's coordinator is corrected; the lead surgeon stays the one handed over to.
    assert run.pathway.coordinator.username == "coordinator2"
    assert run.pathway.lead_surgeon.username == "surgeon2"


# -- found in review -------------------------------------------------------------------------


def test_the_row_keeps_the_referral_priority_given_and_corrected(users, session):
    pathway = new_pathway(users["coordinator"], urgency="routine", referral_priority="screening")
    assert pathway.referral_priority == "screening"
    services.amend(
        pathway,
        1,
        {"referral_priority": "consultant_upgrade"},
        "Upgraded in clinic",
        users["coordinator"],
        pathway.version,
        uuid.uuid4().hex,
    )
    assert pathway.referral_priority == "consultant_upgrade"
    replay_agrees(pathway)


def test_removing_the_lead_surgeon_from_the_referral_clears_it(users, session):
    run = driver(users)
    services.amend(
        run.pathway,
        1,
        {"lead_surgeon": None},
        "No lead surgeon named yet",
        users["coordinator"],
        run.pathway.version,
        uuid.uuid4().hex,
    )
    assert run.pathway.lead_surgeon is None and run.pathway.coordinator is not None


def test_nothing_of_an_episode_is_dated_before_it_began(users, session):
    run = driver(users, referral=_now() - 300 * D).walk_to("surveillance")
    recurrence = run.do(
        "suspect_recurrence", {"urgency": "urgent", "referral_priority": "urgent_suspected_cancer"}
    ).event
    with pytest.raises(InvalidData, match="cannot be before 'Suspected recurrence'"):
        run.do("record_imaging", occurred_at=recurrence.occurred_at - 30 * MINUTE)


def test_a_visit_dated_after_a_backdated_recurrence_starts_no_negative_clock(users, session):
    run = driver(users, referral=_now() - 300 * D).walk_to("surveillance")
    visit = run.do(
        "record_follow_up",
        {
            "imaging_done": True,
            "status": "stable",
            "next_due": (_now() + 30 * D).date().isoformat(),
        },
        occurred_at=_now() - 10 * D,
    ).event
    run.do(
        "suspect_recurrence",
        {"urgency": "urgent", "referral_priority": "urgent_suspected_cancer"},
        occurred_at=visit.occurred_at - 5 * D,  # before the visit, recorded after it
    )
    rows = db.session.scalars(select(PathwayClock).where(PathwayClock.pathway_id == run.pathway.id))
    assert all(r.stopped_at is None or r.stopped_at >= r.started_at for r in rows)
    replay_agrees(run.pathway)


def test_a_stale_patient_form_keeps_the_change_saved_meanwhile(client, login, users, session):
    from tracker.patients.services import update_patient

    pathway = new_pathway(users["coordinator"])
    patient = pathway.patient
    session.commit()
    login("coordinator")
    page = client.get(f"/patients/{patient.id}/edit").text
    import html
    import re

    opened = html.unescape(re.search(r'name="opened_as" type="hidden" value="([^"]*)"', page)[1])
    update_patient(users["surgeon"], patient, {"gp_practice": "Castle Street Surgery"})
    session.commit()
    form = {
        "mrn": patient.mrn,
        "family_name": patient.family_name,
        "given_name": "Janet",
        "birth_date": patient.birth_date.isoformat(),
        "sex": patient.sex,
        "nhs_number": "",
        "gp_practice": "",
        "opened_as": opened,
    }
    response = client.post(f"/patients/{patient.id}/edit", data=form)
    assert response.status_code == 302, response.text
    db.session.expire_all()
    assert (patient.given_name, patient.gp_practice) == ("Janet", "Castle Street Surgery")
    # The same field changed by both: nothing saved, the other value shown.
    page = client.get(f"/patients/{patient.id}/edit").text
    opened = html.unescape(re.search(r'name="opened_as" type="hidden" value="([^"]*)"', page)[1])
    update_patient(users["surgeon"], patient, {"given_name": "Jean"})
    session.commit()
    response = client.post(
        f"/patients/{patient.id}/edit",
        data={
            **form,
            "given_name": "Joan",
            "gp_practice": "Castle Street Surgery",
            "opened_as": opened,
        },
    )
    assert response.status_code == 409 and "Changed by someone else" in response.text
    db.session.expire_all()
    assert patient.given_name == "Jean"
