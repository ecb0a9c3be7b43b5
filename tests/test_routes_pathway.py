"""The pathway pages: the timeline, one form per step, the MDT outcome, amend and void.

Each form is exercised as a person would use it: a valid submission (PRG, then the
timeline shows it in words), invalid data (422, the message beside the field, nothing
written), a stale form (409), a double submit, the wrong role, and a step that does
not apply now.
"""

from __future__ import annotations

import html
import re
import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from tests.helpers import driver
from tracker.engine import services
from tracker.engine import steps as d
from tracker.engine.models import Event
from tracker.extensions import db

LONDON = ZoneInfo("Europe/London")  # config TIMEZONE: forms are typed in local time

SINS_UNSTABLE = {  # 3 + 3 + 2 + 4 + 3 + 1 = 16: unstable
    "sins__location": "3",
    "sins__pain": "3",
    "sins__bone_lesion": "2",
    "sins__alignment": "4",
    "sins__collapse": "3",
    "sins__posterolateral": "1",
}


# -- helpers ------------------------------------------------------------------------------


def local_input(at: datetime) -> str:
    """A UTC time as a datetime-local form value in the hospital's time zone."""
    return at.astimezone(LONDON).strftime("%Y-%m-%dT%H:%M")


def local_now_input(minutes_ago: int = 5) -> str:
    return local_input(datetime.now(UTC) - timedelta(minutes=minutes_ago))


def shown(response) -> str:
    """The page's text with HTML entities decoded (quotes arrive as &#39;)."""
    return html.unescape(response.get_data(as_text=True))


def field_error(response, name: str) -> str:
    """The error text shown beside the field ``name`` (empty if none)."""
    match = re.search(rf'<div id="{re.escape(name)}-error"[^>]*>(.*?)</div>', shown(response), re.S)
    return match.group(1).strip() if match else ""


def details(response) -> list[tuple[str, str]]:
    """The (label, words) pairs the timeline shows for the steps' data."""
    pairs = re.findall(r"<dt[^>]*>(.*?)</dt>\s*<dd[^>]*>(.*?)</dd>", shown(response), re.S)
    return [(label.strip(), words.strip()) for label, words in pairs]


def event_count() -> int:
    return db.session.scalar(select(func.count(Event.id)))


def last_event_of(pathway, trigger: str) -> Event:
    return db.session.scalar(
        select(Event)
        .where(Event.pathway_id == pathway.id, Event.trigger == trigger)
        .order_by(Event.seq.desc())
        .limit(1)
    )


def last_event(pathway) -> Event:
    return db.session.scalar(
        select(Event).where(Event.pathway_id == pathway.id).order_by(Event.seq.desc()).limit(1)
    )


def step_post(pathway, **data) -> dict:
    """A step form's POST body opened at the pathway's current version."""
    return {
        "occurred_at": local_now_input(),
        "expected_version": str(pathway.version),
        "request_id": uuid.uuid4().hex,
        **data,
    }


def mdt_post(pathway, **data) -> dict:
    """An MDT outcome's POST body; the meeting was on the (local) day it is recorded."""
    occurred_at = data.pop("occurred_at", local_now_input())
    defaults = {
        "occurred_at": occurred_at,
        "decision": "plan_surgery",
        "meeting_date": occurred_at[:10],
        "disciplines": ["spinal_surgery", "radiology"],
        "rationale": "Cord compression at T8; stabilise and decompress.",
    }
    return step_post(pathway, **{**defaults, **data})


def url(pathway, tail: str = "") -> str:
    return f"/pathways/{pathway.id}{tail}"


@pytest.fixture
def walk(users, session):
    """A pathway walked to ``state`` by the coordinator, committed for the client to see."""

    def do(state: str = "referred", **kw):
        drive = driver(users, **kw)
        if state != "referred":
            drive.walk_to(state)
        session.commit()
        return drive.pathway

    return do


# -- the pathway page -----------------------------------------------------------------------


def test_pathway_page_shows_timeline_targets_and_actions(client, login, walk):
    pathway = walk("imaging")
    login("coordinator")
    response = client.get(url(pathway))
    assert response.status_code == 200
    text = shown(response)
    assert "Timeline" in text and "Referral received" in text and "Request imaging" in text
    assert "→ Imaging" in text
    assert "Faster Diagnosis Standard" in text and "Breached" in text  # referral 300 days ago
    assert url(pathway, "/record/record_imaging") in text
    assert url(pathway, "/record/sign_off") not in text  # surgeons only
    assert url(pathway, "/void") in text  # the coordinator recorded the last step


def test_a_long_timeline_shows_its_latest_steps_and_the_rest_on_request(
    client, login, users, session
):
    from tracker.pathway.routes import TIMELINE_SHOWN

    drive = driver(users)
    drive.do("add_tracking_note", {"note": "First chase: GP letter sent"})
    for n in range(TIMELINE_SHOWN + 2):
        drive.do("add_note", {"note": f"Call {n}"})
    drive.do("add_tracking_note", {"note": "Second chase: imaging booked"})
    session.commit()
    pathway = drive.pathway
    steps = pathway.version  # the referral, two tracking notes, the calls
    login("coordinator")

    text = shown(client.get(url(pathway)))
    assert f"The latest {TIMELINE_SHOWN} of {steps} steps, newest first." in text
    shown_seqs = {int(n) for n in re.findall(r'<li id="event-([0-9]+)"', text)}
    assert shown_seqs == set(range(steps - TIMELINE_SHOWN + 1, steps + 1))
    folded = steps - TIMELINE_SHOWN
    everything = url(pathway, "?timeline=all")
    assert f'href="{everything}#event-{folded + 1}">Show the {folded} earlier steps</a>' in text
    # The tracking panel's earlier note is folded away: its link opens the whole timeline.
    assert f'href="{everything}#event-2"' in text

    text = shown(client.get(everything))
    assert "steps, newest first" not in text and "earlier step" not in text
    assert {int(n) for n in re.findall(r'<li id="event-([0-9]+)"', text)} == set(
        range(1, steps + 1)
    )
    assert "Referral received" in text and 'href="#event-2"' in text


def test_pathway_page_for_a_viewer_offers_nothing_to_record(client, login, walk):
    pathway = walk("imaging")
    login("viewer")
    response = client.get(url(pathway))
    assert response.status_code == 200
    assert "there is nothing for your role to record" in shown(response)
    assert "/record/" not in shown(response) and url(pathway, "/void") not in shown(response)


def test_unknown_pathway_is_404_everywhere(client, login, users, session):
    session.commit()
    login("coordinator")
    assert client.get("/pathways/987654").status_code == 404
    for tail in ("/record/add_note", "/mdt-outcome", "/amend/2", "/void"):
        assert client.get(f"/pathways/987654{tail}").status_code == 404, tail
        assert client.post(f"/pathways/987654{tail}", data={}).status_code == 404, tail


# -- a step form: record ----------------------------------------------------------------------


def test_step_form_opens_with_now_version_and_request_id(client, login, walk):
    pathway = walk("imaging")
    login("coordinator")
    response = client.get(url(pathway, "/record/record_imaging"))
    assert response.status_code == 200
    text = shown(response)
    assert "Imaging reported" in text
    for name in ("occurred_at", "modality", "region", "levels", "findings", "bilsky_grade"):
        assert f'name="{name}"' in text, name
    assert re.search(rf'name="expected_version" type="hidden" value="{pathway.version}"', text)
    assert re.search(r'name="request_id" type="hidden" value="[0-9a-f]{32}"', text)


def test_record_a_step_writes_one_event_and_the_timeline_shows_it_in_words(client, login, walk):
    pathway = walk("imaging")
    login("coordinator")
    before = event_count()
    when = local_now_input(7)
    response = client.post(
        url(pathway, "/record/record_imaging"),
        data=step_post(
            pathway,
            occurred_at=when,
            modality="mri",
            region="Lumbar spine",
            levels="L2-L3",
            findings="Lytic lesion of L2 with soft tissue.",
            bilsky_grade="2",
        ),
    )
    assert response.status_code == 302
    event = last_event(pathway)
    assert response.headers["Location"] == url(pathway, f"#event-{event.seq}")
    assert event_count() == before + 1
    assert event.trigger == "record_imaging" and event.recorded_by.username == "coordinator"
    assert event.data["modality"] == "mri" and event.data["bilsky_grade"] == "2"
    assert local_input(event.occurred_at) == when  # typed in local time, stored in UTC

    timeline = client.get(url(pathway))
    page = shown(timeline)
    assert "Recorded: Imaging reported." in page and "Imaging reported" in page
    assert ("Modality", "MRI") in details(timeline)  # the label, not the code
    assert ("Region", "Lumbar spine") in details(timeline)
    assert ("Bilsky ESCC grade", "2 - cord compressed, CSF visible") in details(timeline)
    shown_at = datetime.strptime(when, "%Y-%m-%dT%H:%M").strftime("%d %b %Y %H:%M")
    assert shown_at in page


def test_record_a_state_change_moves_the_pathway(client, login, walk):
    pathway = walk("referred")
    login("coordinator")
    response = client.post(
        url(pathway, "/record/request_imaging"),
        data=step_post(pathway, note="MRI whole spine requested."),
    )
    assert response.status_code == 302
    db.session.refresh(pathway)
    assert pathway.state == "imaging" and pathway.version == 2
    page = shown(client.get(url(pathway)))
    assert "Request imaging" in page and "→ Imaging" in page
    assert "MRI whole spine requested." in page


def test_record_multi_choice_boolean_and_user_fields(client, login, walk):
    pathway = walk("surgery_scheduled")
    login("surgeon")
    response = client.post(
        url(pathway, "/record/record_preop_assessment"),
        data=step_post(pathway, asa_grade="3", consent_taken="no", planned_date="2030-02-03"),
    )
    assert response.status_code == 302
    assert last_event(pathway).data == {
        "asa_grade": 3,
        "consent_taken": False,
        "planned_date": "2030-02-03",
    }
    db.session.refresh(pathway)
    response = client.post(
        url(pathway, "/record/record_surgery"),
        data=step_post(
            pathway,
            lead_surgeon="surgeon2",
            procedures=["stabilisation_fusion", "decompression"],
            approach="minimally_invasive",
            levels="T7-T9",
            neuromonitoring=["ssep", "mep"],
            duration_min="240",
        ),
    )
    assert response.status_code == 302
    event = last_event(pathway)
    assert event.trigger == "record_surgery" and event.to_state == "post_op"
    assert event.data["procedures"] == ["decompression", "stabilisation_fusion"]
    assert event.data["duration_min"] == 240
    shown_data = details(client.get(url(pathway)))
    assert ("ASA grade", "3") in shown_data and ("Consent taken", "No") in shown_data
    assert ("Planned operation date", "03 Feb 2030") in shown_data
    assert ("Procedures", "Decompression, Stabilisation and fusion") in shown_data
    assert ("Neuromonitoring", "SSEP, MEP") in shown_data
    assert ("Approach", "Minimally invasive") in shown_data
    assert ("Lead surgeon", "Surgeon2") in shown_data  # the person, not the username


def test_record_refuses_missing_fields_beside_them_and_writes_nothing(client, login, walk):
    pathway = walk("imaging")
    login("coordinator")
    before = event_count()
    response = client.post(
        url(pathway, "/record/record_imaging"),
        data=step_post(pathway, modality="", region="Thoracic spine", findings=""),
    )
    assert response.status_code == 422
    assert field_error(response, "modality") == "Modality is required."
    assert field_error(response, "findings") == "Findings is required."
    assert field_error(response, "region") == ""
    assert 'value="Thoracic spine"' in shown(response)  # what was typed is kept
    assert event_count() == before


def test_record_refuses_a_code_outside_the_list(client, login, walk):
    pathway = walk("imaging")
    login("coordinator")
    before = event_count()
    response = client.post(
        url(pathway, "/record/record_imaging"),
        data=step_post(pathway, modality="ultrasound", region="Spine", findings="Lesion."),
    )
    assert response.status_code == 422
    assert "Not a valid choice" in field_error(response, "modality")
    assert event_count() == before


def test_record_refuses_the_services_rules_beside_the_field(client, login, walk):
    pathway = walk("post_op")
    login("coordinator")
    before = event_count()
    post = url(pathway, "/record/record_assessment")
    response = client.post(post, data=step_post(pathway, pain_nrs="11"))
    assert response.status_code == 422
    assert field_error(response, "pain_nrs") == "Pain (NRS 0-10) must be at most 10"
    response = client.post(post, data=step_post(pathway))
    assert response.status_code == 422
    assert "Give at least one of ASIA grade" in field_error(response, "asia_grade")
    response = client.post(post, data=step_post(pathway, karnofsky="75"))
    assert response.status_code == 422
    assert "multiple of 10" in field_error(response, "karnofsky")
    assert event_count() == before


def test_record_refuses_a_time_in_the_future_or_before_the_referral(client, login, walk):
    pathway = walk("imaging")
    login("coordinator")
    before = event_count()
    post = url(pathway, "/record/add_note")
    future = local_input(datetime.now(UTC) + timedelta(hours=2))
    response = client.post(post, data=step_post(pathway, occurred_at=future, note="x"))
    assert response.status_code == 422
    assert "cannot be in the future" in field_error(response, "occurred_at")
    earlier = local_input(datetime.now(UTC) - timedelta(days=400))
    response = client.post(post, data=step_post(pathway, occurred_at=earlier, note="x"))
    assert response.status_code == 422
    assert "cannot be before the referral was received" in field_error(response, "occurred_at")
    response = client.post(post, data=step_post(pathway, occurred_at="yesterday", note="x"))
    assert response.status_code == 422
    assert field_error(response, "occurred_at")
    assert event_count() == before


def test_record_with_a_stale_version_is_409_and_shows_what_changed(client, login, walk, users):
    pathway = walk("imaging")
    login("coordinator")
    opened = step_post(pathway, note="Called the patient.")
    other = step_post(pathway, note="Imaging booked for Friday.")
    assert client.post(url(pathway, "/record/add_note"), data=other).status_code == 302
    before = event_count()
    response = client.post(url(pathway, "/record/add_note"), data=opened)
    assert response.status_code == 409
    text = shown(response)
    assert "changed since you opened it" in text
    assert "it is now 'Imaging' (version 3)" in text
    assert "Recorded since you opened this form" in text and "Note" in text
    assert "Nothing of yours was saved" in text
    assert re.search(r'name="expected_version" type="hidden" value="3"', text)  # ready to resend
    assert event_count() == before


def test_a_version_beyond_what_the_database_holds_is_409_not_an_error(client, login, walk):
    """Found by the fuzzer on PostgreSQL: a form sent with a version past 2**31 - 1 (the
    column's range) once reached the query of the steps recorded since."""
    pathway = walk("imaging")
    login("coordinator")
    before = event_count()
    body = {**step_post(pathway, note="Called the patient."), "expected_version": "2147483648"}
    response = client.post(url(pathway, "/record/add_note"), data=body)
    assert response.status_code == 409
    assert "changed since you opened it" in shown(response)
    assert event_count() == before


def test_double_submit_records_once_and_says_already_recorded(client, login, walk):
    pathway = walk("imaging")
    login("coordinator")
    before = event_count()
    body = step_post(pathway, note="Spoke to the GP.")
    first = client.post(url(pathway, "/record/add_note"), data=body)
    second = client.post(url(pathway, "/record/add_note"), data=body)
    assert first.status_code == 302 and second.status_code == 302
    assert second.headers["Location"].startswith(url(pathway))
    assert event_count() == before + 1
    assert "already recorded" in shown(client.get(second.headers["Location"]))


def test_a_request_id_of_another_pathway_is_refused(client, login, walk):
    first, second = walk("imaging"), walk("imaging")
    login("coordinator")
    body = step_post(first, note="On the first pathway.")
    assert client.post(url(first, "/record/add_note"), data=body).status_code == 302
    before = event_count()
    reused = {**step_post(second, note="On the second."), "request_id": body["request_id"]}
    response = client.post(url(second, "/record/add_note"), data=reused)
    assert response.status_code in (409, 422)
    assert "already used for a different step" in shown(response)
    assert event_count() == before


@pytest.mark.parametrize("username", ["viewer", "admin"])
def test_viewers_and_administrators_record_no_clinical_step(client, login, walk, username):
    pathway = walk("imaging")
    login(username)
    before = event_count()
    for trigger in ("add_note", "record_imaging", "refer_to_mdt", "withdraw"):
        assert client.get(url(pathway, f"/record/{trigger}")).status_code == 403, trigger
        response = client.post(url(pathway, f"/record/{trigger}"), data=step_post(pathway))
        assert response.status_code == 403, trigger
    response = client.post(url(pathway, "/record/add_note"), data=step_post(pathway, note="x"))
    assert response.status_code == 403
    assert event_count() == before


def test_only_surgeons_sign_off(client, login, walk):
    pathway = walk("imaging")
    login("coordinator")
    before = event_count()
    assert client.get(url(pathway, "/record/sign_off")).status_code == 403
    assert client.post(url(pathway, "/record/sign_off"), data=step_post(pathway)).status_code == 403
    assert event_count() == before
    client.post("/logout")
    login("surgeon")
    assert client.get(url(pathway, "/record/sign_off")).status_code == 200
    response = client.post(url(pathway, "/record/sign_off"), data=step_post(pathway))
    assert response.status_code == 302
    assert last_event(pathway).trigger == "sign_off"
    assert "Surgeon sign-off" in shown(client.get(url(pathway)))


def test_a_step_not_allowed_in_the_state_is_409_naming_the_state(client, login, walk):
    pathway = walk("referred")
    login("coordinator")
    response = client.get(url(pathway, "/record/record_surgery"))
    assert response.status_code == 409
    assert "'Record operation' cannot be recorded now: the pathway is in 'Referred'" in shown(
        response
    )
    before = event_count()
    body = step_post(
        pathway, lead_surgeon="surgeon", procedures=["decompression"], approach="open", levels="T8"
    )
    response = client.post(url(pathway, "/record/record_surgery"), data=body)
    assert response.status_code == 409
    assert "cannot be recorded while the pathway is in 'Referred'" in shown(response)
    assert event_count() == before


def test_a_step_whose_guard_fails_is_409_saying_what_is_missing(client, login, walk):
    pathway = walk("imaging")
    login("coordinator")
    response = client.get(url(pathway, "/record/refer_to_mdt"))
    assert response.status_code == 409
    assert "no imaging study has been reported yet" in shown(response)
    before = event_count()
    response = client.post(url(pathway, "/record/refer_to_mdt"), data=step_post(pathway))
    assert response.status_code == 409
    assert "no imaging study has been reported yet" in shown(response)
    assert event_count() == before


@pytest.mark.parametrize("trigger", ["no_such_step", "amend_event", "void_last_step"])
def test_unknown_triggers_are_404(client, login, walk, trigger):
    pathway = walk("imaging")
    login("coordinator")
    assert client.get(url(pathway, f"/record/{trigger}")).status_code == 404
    assert (
        client.post(url(pathway, f"/record/{trigger}"), data=step_post(pathway)).status_code == 404
    )


def test_an_mdt_decision_on_the_step_form_goes_to_the_mdt_outcome_form(client, login, walk):
    pathway = walk("mdt_review")
    login("surgeon")
    response = client.get(url(pathway, "/record/plan_surgery"))
    assert response.status_code == 302
    assert response.headers["Location"] == url(pathway, "/mdt-outcome?decision=plan_surgery")


def test_notes_can_be_added_to_a_closed_pathway(client, login, walk):
    pathway = walk("withdrawn")
    login("coordinator")
    assert client.get(url(pathway, "/record/record_assessment")).status_code == 409
    response = client.post(
        url(pathway, "/record/add_note"), data=step_post(pathway, note="Moved to Leeds.")
    )
    assert response.status_code == 302
    assert "Moved to Leeds." in shown(client.get(url(pathway)))


# -- the MDT outcome ----------------------------------------------------------------------------


def test_mdt_outcome_form_offers_the_decisions_and_preselects_one(client, login, walk):
    pathway = walk("mdt_review")
    login("surgeon")
    response = client.get(url(pathway, "/mdt-outcome?decision=plan_oncology"))
    assert response.status_code == 200
    text = shown(response)
    for label in (
        "Surgery",
        "Palliative care",
        "Surveillance",
        "More imaging first",
        "Biopsy first",
    ):
        assert label in text
    assert '<option selected value="plan_oncology">' in text
    assert 'name="sins__location"' in text and 'name="tokuhashi__palsy"' in text


def test_mdt_outcome_records_the_decision_and_the_computed_scores(client, login, walk):
    pathway = walk("mdt_review")
    login("surgeon")
    before = event_count()
    response = client.post(
        url(pathway, "/mdt-outcome"), data=mdt_post(pathway, ecog="2", **SINS_UNSTABLE)
    )
    assert response.status_code == 302
    assert event_count() == before + 1
    event = last_event(pathway)
    assert (event.trigger, event.from_state, event.to_state) == (
        "plan_surgery",
        "mdt_review",
        "surgery_scheduled",
    )
    assert event.data["sins_total"] == 16 and event.data["sins_band"] == "unstable"
    assert event.data["disciplines"] == ["spinal_surgery", "radiology"]
    timeline = client.get(url(pathway))
    assert "MDT decision: surgery" in shown(timeline) and "→ Surgery scheduled" in shown(timeline)
    shown_data = details(timeline)
    assert ("SINS", "16 - Unstable") in shown_data and (
        "ECOG performance status",
        "2 - walks and cares for self, up more than half the day, no work",  # in words
    ) in shown_data
    assert ("Disciplines present", "Spinal surgery, Radiology") in shown_data
    assert ("Rationale", "Cord compression at T8; stabilise and decompress.") in shown_data


def test_calculate_scores_shows_totals_and_records_nothing(client, login, walk):
    pathway = walk("mdt_review")
    login("surgeon")
    before = event_count()
    response = client.post(
        url(pathway, "/mdt-outcome"),
        data={**mdt_post(pathway, **SINS_UNSTABLE), "calculate": "1"},
    )
    assert response.status_code == 200
    text = shown(response)
    assert re.search(r"Total <strong data-total>16</strong> · Unstable", text)
    assert "a spinal surgical opinion is needed" in text
    partial = {"tokuhashi__general_condition": "2", "tokuhashi__palsy": "1", "calculate": "1"}
    response = client.post(url(pathway, "/mdt-outcome"), data={**mdt_post(pathway), **partial})
    assert re.search(
        r"Total <strong data-total>3</strong> \(components entered: 2 of 6\)", shown(response)
    )
    assert event_count() == before
    db.session.refresh(pathway)
    assert pathway.state == "mdt_review"


def test_mdt_outcome_refuses_invalid_data_beside_the_fields(client, login, walk):
    pathway = walk("mdt_review")
    login("surgeon")
    before = event_count()
    response = client.post(
        url(pathway, "/mdt-outcome"),
        data=mdt_post(pathway, decision="", rationale="", disciplines=["radiology"]),
    )
    assert response.status_code == 422
    assert field_error(response, "decision") == "Choose the MDT's decision."
    assert field_error(response, "rationale") == "Rationale is required."
    response = client.post(
        url(pathway, "/mdt-outcome"),
        data=mdt_post(pathway, disciplines=["radiology"], sins__location="3"),
    )
    assert response.status_code == 422
    assert "choose at least 2" in field_error(response, "disciplines")
    assert "is missing components" in field_error(response, "sins__location")
    later = (date.today() + timedelta(days=3)).isoformat()
    response = client.post(url(pathway, "/mdt-outcome"), data=mdt_post(pathway, meeting_date=later))
    assert response.status_code == 422
    assert "cannot be after the outcome is recorded" in field_error(response, "meeting_date")
    assert event_count() == before


@pytest.mark.parametrize("points", ["x", "9"])
def test_mdt_outcome_refuses_a_score_component_outside_the_table(client, login, walk, points):
    pathway = walk("mdt_review")
    login("surgeon")
    before = event_count()
    components = {name: points for name in SINS_UNSTABLE}
    response = client.post(url(pathway, "/mdt-outcome"), data=mdt_post(pathway, **components))
    assert response.status_code == 422
    assert "Not a valid choice" in field_error(response, "sins__location")
    assert event_count() == before


def test_mdt_outcome_outside_mdt_review_is_409(client, login, walk):
    pathway = walk("imaging")
    login("surgeon")
    response = client.get(url(pathway, "/mdt-outcome"))
    assert response.status_code == 409
    assert "only in MDT review; this pathway is in 'Imaging'" in shown(response)
    before = event_count()
    response = client.post(url(pathway, "/mdt-outcome"), data=mdt_post(pathway))
    assert response.status_code == 409
    assert "cannot be recorded while the pathway is in 'Imaging'" in shown(response)
    assert event_count() == before


def test_mdt_outcome_with_a_stale_version_is_409(client, login, walk):
    pathway = walk("mdt_review")
    login("surgeon")
    opened = mdt_post(pathway)
    assert (
        client.post(
            url(pathway, "/record/schedule_mdt"),
            data=step_post(pathway, meeting_date=date.today().isoformat()),
        ).status_code
        == 302
    )
    before = event_count()
    response = client.post(url(pathway, "/mdt-outcome"), data=opened)
    assert response.status_code == 409
    text = shown(response)
    assert "changed since you opened it" in text and "it is now 'MDT review'" in text
    assert "MDT meeting scheduled" in text
    assert event_count() == before


def test_mdt_outcome_double_submit_records_once(client, login, walk):
    pathway = walk("mdt_review")
    login("surgeon")
    before = event_count()
    next_due = (datetime.now(UTC) + timedelta(days=90)).date().isoformat()
    body = mdt_post(pathway, decision="plan_surveillance", next_due=next_due)
    assert client.post(url(pathway, "/mdt-outcome"), data=body).status_code == 302
    second = client.post(url(pathway, "/mdt-outcome"), data=body)
    assert second.status_code == 302
    assert event_count() == before + 1
    assert "already recorded" in shown(client.get(second.headers["Location"]))
    db.session.refresh(pathway)
    assert pathway.state == "surveillance"


@pytest.mark.parametrize("username", ["viewer", "admin"])
def test_mdt_outcome_is_for_clinicians_only(client, login, walk, username):
    pathway = walk("mdt_review")
    login(username)
    before = event_count()
    assert client.get(url(pathway, "/mdt-outcome")).status_code == 403
    assert client.post(url(pathway, "/mdt-outcome"), data=mdt_post(pathway)).status_code == 403
    assert event_count() == before


# -- amend -----------------------------------------------------------------------------------


def imaging_seq(pathway) -> int:
    return db.session.scalar(
        select(Event.seq).where(Event.pathway_id == pathway.id, Event.trigger == "record_imaging")
    )


def amend_post(pathway, **data) -> dict:
    return {
        "expected_version": str(pathway.version),
        "request_id": uuid.uuid4().hex,
        "modality": "mri",
        "region": "Thoracic spine",
        "levels": "T7-T9",
        "findings": "Lytic lesion T8.",
        "bilsky_grade": "1b",
        "reason": "Typed the wrong modality.",
        **data,
    }


def test_amend_form_is_filled_with_the_recorded_values(client, login, walk):
    pathway = walk("mdt_review")
    login("coordinator")
    response = client.get(url(pathway, f"/amend/{imaging_seq(pathway)}"))
    assert response.status_code == 200
    text = shown(response)
    assert "Amend: Imaging reported" in text
    assert 'value="Thoracic spine"' in text and 'value="T7-T9"' in text
    assert '<option selected value="mri">' in text
    # When it happened, filled in: a wrong time is corrected here too.
    recorded = last_event_of(pathway, "record_imaging").occurred_at
    assert f'name="occurred_at" type="datetime-local" value="{local_input(recorded)}"' in text


def test_amend_records_the_correction_and_keeps_the_original(client, login, walk):
    pathway = walk("mdt_review")
    seq = imaging_seq(pathway)
    login("coordinator")
    before = event_count()
    response = client.post(
        url(pathway, f"/amend/{seq}"),
        data=amend_post(pathway, modality="ct", levels="", bilsky_grade=""),  # Bilsky: MRI only
    )
    assert response.status_code == 302
    assert event_count() == before + 1
    event = last_event(pathway)
    assert event.trigger == "amend_event"
    assert event.data == {
        "event_seq": seq,
        "changes": {"modality": "ct", "levels": None, "bilsky_grade": None},
        "reason": "Typed the wrong modality.",
    }
    timeline = client.get(url(pathway))
    assert "Amendment" in shown(timeline) and "show the original" in shown(timeline)
    shown_data = details(timeline)
    assert ("Modality", "CT") in shown_data and ("Levels", "removed") in shown_data
    assert ("Reason", "Typed the wrong modality.") in shown_data
    assert ("Modality", "MRI") in shown_data  # the original, on demand


def test_amend_an_mdt_outcome_recomputes_its_score(client, login, walk):
    pathway = walk("surgery_scheduled")
    seq = last_event(pathway).seq
    login("surgeon")
    form = client.get(url(pathway, f"/amend/{seq}"))
    assert form.status_code == 200
    meeting = re.search(r'name="meeting_date"[^>]*value="([^"]*)"', shown(form)).group(1)
    body = {
        "expected_version": str(pathway.version),
        "request_id": uuid.uuid4().hex,
        "meeting_date": meeting,
        "disciplines": ["spinal_surgery", "radiology"],
        "rationale": "Agreed at the MDT.",
        "reason": "The SINS was scored after the meeting.",
        **SINS_UNSTABLE,
        "sins__pain": "1",  # 14
    }
    response = client.post(url(pathway, f"/amend/{seq}"), data=body)
    assert response.status_code == 302
    changes = last_event(pathway).data["changes"]
    assert changes["sins_total"] == 14 and changes["sins_band"] == "unstable"
    assert ("SINS", "14 - Unstable") in details(client.get(url(pathway)))


def test_amend_an_operation_whose_surgeon_has_left(client, login, walk, users, session):
    pathway = walk("post_op")
    seq = last_event(pathway).seq
    users["surgeon"].active = False
    session.commit()
    login("coordinator")
    before = event_count()
    response = client.post(
        url(pathway, f"/amend/{seq}"),
        data={
            "expected_version": str(pathway.version),
            "request_id": uuid.uuid4().hex,
            "lead_surgeon": "surgeon",
            "procedures": ["decompression"],
            "approach": "open",
            "levels": "T8-T10",
            "reason": "Levels were typed wrong.",
        },
    )
    assert field_error(response, "lead_surgeon") == ""
    assert response.status_code == 302
    assert event_count() == before + 1
    assert last_event(pathway).data["changes"] == {"levels": "T8-T10"}


def test_amend_refuses_invalid_data_and_no_change(client, login, walk):
    pathway = walk("mdt_review")
    seq = imaging_seq(pathway)
    login("coordinator")
    before = event_count()
    response = client.post(
        url(pathway, f"/amend/{seq}"), data=amend_post(pathway, reason="", findings="")
    )
    assert response.status_code == 422
    assert field_error(response, "reason") == "Reason for the correction is required."
    assert field_error(response, "findings") == "Findings is required."
    response = client.post(url(pathway, f"/amend/{seq}"), data=amend_post(pathway))
    assert response.status_code == 422
    assert "Give at least one corrected field" in shown(response)
    assert event_count() == before


def test_amend_with_a_stale_version_is_409(client, login, walk):
    pathway = walk("mdt_review")
    seq = imaging_seq(pathway)
    login("coordinator")
    opened = amend_post(pathway, modality="ct")
    assert (
        client.post(
            url(pathway, "/record/add_note"), data=step_post(pathway, note="Meanwhile.")
        ).status_code
        == 302
    )
    before = event_count()
    response = client.post(url(pathway, f"/amend/{seq}"), data=opened)
    assert response.status_code == 409
    assert "changed since you opened it" in shown(response)
    assert "it is now 'MDT review'" in shown(response)
    assert event_count() == before


def test_amend_double_submit_records_once(client, login, walk):
    pathway = walk("mdt_review")
    seq = imaging_seq(pathway)
    login("coordinator")
    before = event_count()
    body = amend_post(pathway, bilsky_grade="3")
    assert client.post(url(pathway, f"/amend/{seq}"), data=body).status_code == 302
    second = client.post(url(pathway, f"/amend/{seq}"), data=body)
    assert second.status_code == 302
    assert event_count() == before + 1
    assert "already recorded" in shown(client.get(second.headers["Location"]))


@pytest.mark.parametrize("username", ["viewer", "admin"])
def test_amend_is_for_clinicians_only(client, login, walk, username):
    pathway = walk("mdt_review")
    seq = imaging_seq(pathway)
    login(username)
    before = event_count()
    assert client.get(url(pathway, f"/amend/{seq}")).status_code == 403
    response = client.post(url(pathway, f"/amend/{seq}"), data=amend_post(pathway, modality="ct"))
    assert response.status_code == 403
    assert event_count() == before


def test_amend_unknown_or_unamendable_steps(client, login, walk, users, session):
    pathway = walk("mdt_review")
    drive = driver(users)
    sign_off = drive.do("sign_off", {}, actor=users["surgeon"]).event
    session.commit()
    login("coordinator")
    assert client.get(url(pathway, "/amend/999")).status_code == 404
    response = client.get(url(drive.pathway, f"/amend/{sign_off.seq}"))
    assert response.status_code == 409
    assert f"Step {sign_off.seq} cannot be amended" in shown(response)
    assert client.get(url(pathway, "/amend/1")).status_code == 200  # the referral can be


def test_amend_the_reason_of_a_withdrawal(client, login, walk):
    pathway = walk("withdrawn")
    seq = last_event(pathway).seq
    login("coordinator")
    before = event_count()
    form = client.get(url(pathway, f"/amend/{seq}"))
    assert form.status_code == 200
    # The withdrawal's own reason is a choice; the correction's reason is free text.
    assert "Transferred out" in shown(form)
    response = client.post(
        url(pathway, f"/amend/{seq}"),
        data={
            "expected_version": str(pathway.version),
            "request_id": uuid.uuid4().hex,
            "reason": "The patient moved to Leeds; it was a transfer.",
        },
    )
    assert "must be one of" not in field_error(response, "reason")
    assert event_count() == before


# -- void -----------------------------------------------------------------------------------------


def void_post(pathway, **data) -> dict:
    return {
        "expected_version": str(pathway.version),
        "request_id": uuid.uuid4().hex,
        "reason": "Recorded on the wrong patient.",
        **data,
    }


def test_void_form_says_what_it_undoes(client, login, walk):
    pathway = walk("imaging")
    login("coordinator")
    response = client.get(url(pathway, "/void"))
    assert response.status_code == 200
    text = shown(response)
    assert "This undoes Request imaging" in re.sub(r"<[^>]+>", "", text)
    assert "returns the pathway to Referred" in re.sub(r"<[^>]+>", "", text)


def test_void_returns_the_pathway_and_strikes_the_step(client, login, walk):
    pathway = walk("imaging")
    voided_seq = last_event(pathway).seq
    login("coordinator")
    before = event_count()
    response = client.post(url(pathway, "/void"), data=void_post(pathway))
    assert response.status_code == 302
    assert event_count() == before + 1
    db.session.refresh(pathway)
    assert pathway.state == "referred"
    event = last_event(pathway)
    assert event.trigger == "void_last_step" and event.data["event_seq"] == voided_seq
    page = shown(client.get(url(pathway)))
    assert "Step voided" in page
    assert f"Voided by Coordinator (step #{event.seq}): Recorded on the wrong patient." in page


def test_void_refuses_a_missing_reason(client, login, walk):
    pathway = walk("imaging")
    login("coordinator")
    before = event_count()
    response = client.post(url(pathway, "/void"), data=void_post(pathway, reason=""))
    assert response.status_code == 422
    assert field_error(response, "reason") == "Reason for voiding is required."
    assert event_count() == before


def test_void_with_a_stale_version_is_409(client, login, walk):
    pathway = walk("imaging")
    login("coordinator")
    opened = void_post(pathway)
    assert (
        client.post(
            url(pathway, "/record/add_note"), data=step_post(pathway, note="Meanwhile.")
        ).status_code
        == 302
    )
    before = event_count()
    response = client.post(url(pathway, "/void"), data=opened)
    assert response.status_code == 409
    assert "changed since you opened it" in shown(response)
    assert "it is now 'Imaging'" in shown(response)
    assert event_count() == before


def test_void_double_submit_voids_once(client, login, walk):
    pathway = walk("mdt_review")
    login("coordinator")
    before = event_count()
    body = void_post(pathway)
    assert client.post(url(pathway, "/void"), data=body).status_code == 302
    second = client.post(url(pathway, "/void"), data=body)
    assert second.status_code == 302
    assert event_count() == before + 1
    assert "already voided" in shown(client.get(second.headers["Location"]))
    db.session.refresh(pathway)
    assert pathway.state == "imaging"  # one step back, not two


def test_void_is_refused_to_viewers_and_others_steps(client, login, walk):
    pathway = walk("imaging")
    before = event_count()
    login("viewer")
    assert client.get(url(pathway, "/void")).status_code == 403
    assert client.post(url(pathway, "/void"), data=void_post(pathway)).status_code == 403
    client.post("/logout")
    login("coordinator2")
    response = client.get(url(pathway, "/void"))
    assert response.status_code == 403  # who may: the same answer as the POST's
    assert "Only the person who recorded this step" in shown(response)
    assert client.post(url(pathway, "/void"), data=void_post(pathway)).status_code == 403
    assert event_count() == before


def test_administrators_may_void_any_step(client, login, walk):
    pathway = walk("imaging")
    login("admin")
    assert client.get(url(pathway, "/void")).status_code == 200
    assert client.post(url(pathway, "/void"), data=void_post(pathway)).status_code == 302
    db.session.refresh(pathway)
    assert pathway.state == "referred"


def test_nothing_to_void_at_the_referral_is_409(client, login, walk):
    pathway = walk("referred")
    login("coordinator")
    response = client.get(url(pathway, "/void"))
    assert response.status_code == 409
    assert "There is no step to void" in shown(response)
    before = event_count()
    response = client.post(url(pathway, "/void"), data=void_post(pathway))
    assert response.status_code == 409
    assert "There is no step to void" in shown(response)
    assert event_count() == before


def test_refusals_and_conflicts_offer_the_way_back_to_the_record(client, login, walk):
    """403 and 409 on a pathway's or patient's page link back to that record's page, as
    well as to the worklist; the page that itself refused links only to the worklist."""
    pathway = walk("referred")
    login("coordinator")
    back = f'<a href="/pathways/{pathway.id}">Back to the pathway</a>'
    conflict = client.get(url(pathway, "/record/record_surgery"))
    assert conflict.status_code == 409 and back in conflict.text
    assert 'href="/">Back to the worklist</a>' in conflict.text
    refused = client.get(url(pathway, "/record/sign_off"))  # surgeons only
    assert refused.status_code == 403 and back in refused.text
    client.post("/logout")
    login("viewer")
    patient = f"/patients/{pathway.patient_id}"
    edit = client.get(f"{patient}/edit")
    assert edit.status_code == 403
    assert f'<a href="{patient}">Back to the patient</a>' in edit.text
    assert "Back to the pathway" not in client.get("/nowhere").text  # a 404: no record


def selected_option(response, name: str) -> str | None:
    select = re.search(rf'<select[^>]*\bname="{re.escape(name)}".*?</select>', response.text, re.S)
    chosen = re.search(
        r'<option[^>]*\bselected[^>]*value="([^"]*)"|<option[^>]*value="([^"]*)"[^>]*\bselected',
        select.group(0),
    )
    return (chosen.group(1) or chosen.group(2)) if chosen else None


def test_the_operation_form_presets_the_pathways_lead_surgeon(client, login, users, session):
    drive = driver(users)
    drive.walk_to("surgery_scheduled")
    session.commit()
    login("surgeon")
    form = client.get(url(drive.pathway, "/record/record_surgery"))
    assert selected_option(form, "lead_surgeon") == "surgeon"
    drive.do("reassign", {"lead_surgeon": "surgeon2"})
    session.commit()
    form = client.get(url(drive.pathway, "/record/record_surgery"))
    assert selected_option(form, "lead_surgeon") == "surgeon2"
    handover = client.get(url(drive.pathway, "/record/reassign"))  # a new lead: no preset
    assert selected_option(handover, "lead_surgeon") in (None, "")


def when_inputs(response) -> tuple[str, str]:
    """The date and the time the record form's "When it happened" shows."""
    tags = re.findall(r'<input[^>]*\bname="occurred_at"[^>]*>', response.text)
    assert [re.search(r'type="(\w+)"', t).group(1) for t in tags] == ["date", "time"]
    values = [re.search(r'\bvalue="([^"]*)"', t).group(1) for t in tags]
    return values[0], values[1]


def _day(value: date) -> str:
    return f"{value.day} {value:%b %Y}"


def test_a_record_made_after_the_fact_defaults_to_the_last_steps_date(client, login, walk):
    """Steps just recorded, dated months ago: the coordinator is catching up, so the next
    record's date defaults to the last step's, said on the form, the time left blank; today
    is one click away. Never a silent "now"."""
    pathway = walk("imaging")  # the walk's steps happened 300 days ago, recorded just now
    login("coordinator")
    last = max(services.load_history(pathway).counting(), key=lambda s: s.occurred_at)
    last_day = last.occurred_at.astimezone(LONDON).date()
    form = client.get(url(pathway, "/record/record_imaging"))
    page = shown(form)
    assert when_inputs(form) == (last_day.isoformat(), "")
    assert (
        f"Defaults to the date of the last step, {_day(last_day)} ('{d.label(last.trigger)}'"
        in page
    )
    assert "enter the time this happened" in page
    today = datetime.now(LONDON).date()
    offered = re.search(r'<a href="([^"]*)">Use today&#39;s date, ([^<]*)</a>', form.text)
    assert offered.group(2) == _day(today)
    chosen = client.get(html.unescape(offered.group(1)))
    assert when_inputs(chosen) == (today.isoformat(), "")
    assert f"Defaults to today, {_day(today)}: enter the time it happened" in shown(chosen)
    # The MDT outcome form chooses its date the same way.
    mdt = walk("mdt_review")
    mdt_last = max(services.load_history(mdt).counting(), key=lambda s: s.occurred_at)
    mdt_form = client.get(url(mdt, "/mdt-outcome"))
    assert when_inputs(mdt_form) == (mdt_last.occurred_at.astimezone(LONDON).date().isoformat(), "")


def test_a_record_made_later_defaults_to_today_with_the_time_to_fill_in(client, login, walk):
    """The last step recorded hours ago: the new record defaults to today's date, says so,
    names the last step, and offers the last step's date; the time is left blank, and a
    form sent without it says what to enter."""
    import time_machine

    pathway = walk("imaging")
    last = max(services.load_history(pathway).counting(), key=lambda s: s.occurred_at)
    last_day = last.occurred_at.astimezone(LONDON).date()
    later = datetime.now(UTC) + timedelta(hours=3)
    today = later.astimezone(LONDON).date()
    with time_machine.travel(later, tick=False):
        login("coordinator")
        form = client.get(url(pathway, "/record/record_imaging"))
        page = shown(form)
        assert when_inputs(form) == (today.isoformat(), "")
        assert f"Defaults to today, {_day(today)}: enter the time it happened" in page
        assert f"The last step, '{d.label(last.trigger)}', happened at" in page
        offered = re.search(
            r'<a href="([^"]*)">Use the date of the last step, ([^<]*)</a>', form.text
        )
        assert offered.group(2) == _day(last_day)
        follow_on = client.get(html.unescape(offered.group(1)))
        assert when_inputs(follow_on) == (last_day.isoformat(), "")
        # Sent with the date but no time: refused, and the form says what to enter.
        version = re.search(r'name="expected_version"[^>]*value="(\d+)"', form.text).group(1)
        sent = client.post(
            url(pathway, "/record/record_imaging"),
            data={
                "occurred_at": [today.isoformat(), ""],
                "expected_version": version,
                "request_id": uuid.uuid4().hex,
                "modality": "mri",
                "region": "Thoracic spine",
                "levels": "T7-T9",
                "findings": "Lytic T8 lesion.",
            },
        )
        assert sent.status_code == 422
        assert field_error(sent, "occurred_at") == "Enter the time it happened, for example 09:30."
        assert when_inputs(sent) == (today.isoformat(), "")


def test_buttons_say_what_they_record_in_the_registrys_words():
    from tracker.web.filters import action_words

    assert action_words("record_surgery") == "Record operation"
    assert action_words("refer_to_mdt") == "Refer to MDT"
    assert action_words("schedule_mdt") == "Record MDT meeting scheduled"
    assert action_words("record_assessment") == "Record clinical assessment"
    assert action_words("request_imaging") == "Request imaging"


def test_the_step_form_button_and_the_values_table_keep_the_registrys_words(
    client, login, users, session
):
    drive = driver(users)
    drive.walk_to("mdt_review")
    drive.do("schedule_mdt", {"meeting_date": drive.next_time().date().isoformat()})
    session.commit()
    login("surgeon")
    form = shown(client.get(url(drive.pathway, "/record/schedule_mdt")))
    assert 'value="Record MDT meeting scheduled"' in form
    assert "Record mdt meeting scheduled" not in form
    page = shown(client.get(url(drive.pathway, "/mdt-outcome")))
    outcome = {
        "decision": "plan_surgery",
        "asia_grade": "C",
        "ecog": "2",
        "meeting_date": drive.next_time().date().isoformat(),
        "disciplines": ["spinal_surgery", "radiology"],
        "rationale": "Agreed.",
    }
    assert "Record MDT outcome" in page
    response = client.post(
        url(drive.pathway, "/mdt-outcome"), data=step_post(drive.pathway, **outcome)
    )
    assert response.status_code == 302, field_error(response, "decision")
    page = shown(client.get(url(drive.pathway)))
    assert "MDT decision: surgery)" in page and "mdt decision:" not in page


def test_grades_are_offered_with_what_they_mean(client, login, walk):
    """Clavien-Dindo, Enneking, ASIA and Bilsky choices say what each grade means (the
    data dictionary's labels: forms, timeline and exports alike); the codes stay as they
    were; ECOG's grades are described beside its field."""
    from tracker.engine.dictionary import ASIA, BILSKY, CLAVIEN_DINDO, ENNEKING

    for choices in (CLAVIEN_DINDO, ENNEKING, ASIA, BILSKY):
        for code, label in choices:
            assert label.startswith(f"{code} - ") and len(label) > len(code) + 5, label
    assert [code for code, _ in CLAVIEN_DINDO] == ["I", "II", "IIIa", "IIIb", "IVa", "IVb", "V"]
    pathway = walk("imaging")
    login("coordinator")
    form = shown(client.get(url(pathway, "/record/record_assessment")))
    assert "2 walks and cares for self" in form and "4 completely disabled" in form
