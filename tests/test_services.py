"""The services' rules: each refusal says which and why, and writes nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from tests.helpers import driver, new_pathway, new_patient
from tracker.engine import services
from tracker.engine.errors import (
    InvalidData,
    RequestIdReused,
    RoleNotAllowed,
    StaleVersion,
    TriggerNotAllowed,
)
from tracker.engine.models import Event
from tracker.extensions import db
from tracker.patients.errors import DuplicateMRN
from tracker.patients.services import register_patient


def events_of(pathway):
    return db.session.scalars(
        select(Event).where(Event.pathway_id == pathway.id).order_by(Event.seq)
    ).all()


def total_events():
    return db.session.scalar(select(func.count(Event.id)))


def test_open_pathway_writes_the_referral_event(users):
    referral = datetime(2026, 1, 5, 10, 30, tzinfo=UTC)
    pathway = new_pathway(users["coordinator"], referral, urgency="urgent")
    (event,) = events_of(pathway)
    assert (event.seq, event.trigger, event.from_state, event.to_state) == (
        1,
        "open_pathway",
        None,
        "referred",
    )
    assert event.occurred_at == referral
    assert pathway.version == 1 and pathway.state == "referred"
    assert pathway.lead_surgeon.username == "surgeon"
    assert event.data["urgency"] == "urgent"


def test_open_pathway_validates_the_referral(users):
    patient = new_patient(users["coordinator"])
    with pytest.raises(InvalidData) as refused:
        services.open_pathway(
            users["coordinator"],
            patient,
            referral_received_at=datetime.now(UTC) + timedelta(days=1),
            referral_source="fax",
            urgency="urgent",
            diagnosis_category="metastatic_spinal",
            tumour_site="T8",
            primary_cancer_site="breast",
            lead_surgeon="coordinator",
        )
    errors = refused.value.errors
    assert "referral_source" in errors and "must be one of" in errors["referral_source"][0]
    with pytest.raises(InvalidData) as refused:
        services.open_pathway(
            users["coordinator"],
            patient,
            referral_received_at=datetime.now(UTC) + timedelta(days=1),
            referral_source="gp",
            urgency="urgent",
            diagnosis_category="metastatic_spinal",
            tumour_site="T8",
            primary_cancer_site="breast",
        )
    assert "in the future" in refused.value.errors["referral_received_at"][0]
    with pytest.raises(InvalidData, match="coordinator is not a surgeon"):
        services.open_pathway(
            users["coordinator"],
            patient,
            referral_received_at=datetime.now(UTC),
            referral_source="gp",
            urgency="urgent",
            diagnosis_category="metastatic_spinal",
            tumour_site="T8",
            primary_cancer_site="breast",
            lead_surgeon="coordinator",
        )


def test_register_patient_refuses_duplicate_mrn_and_links_it(users):
    first = new_patient(users["coordinator"], mrn="MRN001")
    with pytest.raises(DuplicateMRN) as refused:
        new_patient(users["coordinator"], mrn=" MRN001 ")
    assert refused.value.patient.id == first.id
    with pytest.raises(InvalidData) as refused:
        register_patient(
            users["coordinator"],
            mrn="",
            family_name="X",
            given_name="Y",
            birth_date=date(2999, 1, 1),
            sex="robot",
        )
    assert {"mrn", "sex"} <= set(refused.value.errors)
    with pytest.raises(RoleNotAllowed):
        new_patient(users["viewer"])


def test_stale_version_is_refused_and_names_the_current_state(users):
    run = driver(users)
    opened = run.pathway.version
    run.fire("request_imaging")
    before = total_events()
    with pytest.raises(StaleVersion) as refused:
        run.do("withdraw", expected_version=opened)
    assert "changed since you opened it" in refused.value.message
    assert "'Imaging'" in refused.value.message
    assert total_events() == before and run.pathway.state == "imaging"


@pytest.mark.parametrize("role", ["viewer", "admin"])
def test_roles_that_may_not_record(users, role):
    run = driver(users)
    before = total_events()
    with pytest.raises(RoleNotAllowed, match="cannot record 'Request imaging'"):
        run.do("request_imaging", actor=users[role])
    assert total_events() == before


def test_sign_off_is_for_surgeons_only(users):
    run = driver(users)
    with pytest.raises(RoleNotAllowed):
        run.do("sign_off", actor=users["coordinator"])
    assert run.do("sign_off", actor=users["surgeon"]).created


def test_inactive_user_cannot_record(users):
    run = driver(users)
    users["coordinator"].active = False
    with pytest.raises(RoleNotAllowed, match="not active"):
        run.do("request_imaging")
    with pytest.raises(RoleNotAllowed, match="not active"):
        new_patient(users["coordinator"])


def test_unknown_trigger_is_refused(users):
    with pytest.raises(TriggerNotAllowed, match="not a step of the pathway"):
        driver(users).do("teleport")


def test_occurred_at_not_in_future_nor_before_previous(users):
    run = driver(users)
    with pytest.raises(InvalidData, match="cannot be in the future"):
        run.do("request_imaging", occurred_at=datetime.now(UTC) + timedelta(minutes=5))
    with pytest.raises(InvalidData, match="before the referral was received"):
        run.do("request_imaging", occurred_at=run.t - timedelta(minutes=1))
    with pytest.raises(InvalidData, match="needs a UTC offset"):
        run.do("request_imaging", {}, occurred_at="2026-01-01T10:00:00")
    with pytest.raises(InvalidData, match="is not a date and time"):
        run.do("request_imaging", {}, occurred_at="31/12/2025")
    assert run.pathway.version == 1


def test_invalid_data_lists_each_field(users):
    run = driver(users).walk_to("imaging")
    with pytest.raises(InvalidData) as refused:
        run.do(
            "record_imaging",
            {"modality": "ultrasound", "region": " ", "bilsky_grade": "4", "colour": "red"},
        )
    errors = refused.value.errors
    assert "Modality must be one of: mri, ct, xray, bone_scan, pet_ct" in errors["modality"]
    assert "Region must not be blank" in errors["region"]
    assert "Findings is required" in errors["findings"]
    assert "is not a field of this step" in errors["colour"]
    assert "bilsky_grade" in errors


@pytest.mark.parametrize(
    ("trigger", "state", "data", "field", "words"),
    [
        ("record_assessment", "imaging", {}, "asia_grade", "at least one of"),
        ("record_assessment", "imaging", {"karnofsky": 75}, "karnofsky", "multiple of 10"),
        ("record_assessment", "imaging", {"pain_nrs": 11}, "pain_nrs", "at most 10"),
        ("record_assessment", "imaging", {"ecog": 2.5}, "ecog", "whole number"),
        (
            "record_preop_assessment",
            "surgery_scheduled",
            {"asa_grade": 6, "consent_taken": True},
            "asa_grade",
            "at most 5",
        ),
        (
            "record_preop_assessment",
            "surgery_scheduled",
            {"asa_grade": 2, "consent_taken": "yes"},
            "consent_taken",
            "yes or no",
        ),
        (
            "record_treatment",
            "oncology_treatment",
            {"modality": "sbrt", "start_date": "2020-02-02", "end_date": "2020-01-01"},
            "end_date",
            "before the start date",
        ),
        (
            "record_follow_up",
            "surveillance",
            {"imaging_done": True, "status": "ned", "next_due": "2000-01-01"},
            "next_due",
            "due after the day this happened",
        ),
    ],
)
def test_dictionary_rules(users, trigger, state, data, field, words):
    run = driver(users).walk_to(state)
    with pytest.raises(InvalidData) as refused:
        run.do(trigger, data)
    assert words in " ".join(refused.value.errors[field])


def test_same_request_id_records_once(users):
    run = driver(users)
    request_id = uuid.uuid4().hex
    first = run.do("request_imaging", request_id=request_id)
    again = run.do("request_imaging", request_id=request_id, expected_version=1)
    assert first.created and not again.created
    assert again.event.id == first.event.id
    assert run.pathway.version == 2
    assert len(events_of(run.pathway)) == 2
    with pytest.raises(RequestIdReused):
        run.do("add_note", request_id=request_id)


def test_amend_corrects_data_and_keeps_the_original(users):
    run = driver(users).walk_to("imaging")
    imaging = run.do("record_imaging").event
    result = services.amend(
        run.pathway,
        imaging.seq,
        {"levels": "T9-T10", "bilsky_grade": ""},
        "Levels mistyped",
        users["coordinator"],
        run.pathway.version,
        uuid.uuid4().hex,
    )
    assert result.event.data == {
        "event_seq": imaging.seq,
        "changes": {"levels": "T9-T10", "bilsky_grade": None},
        "reason": "Levels mistyped",
    }
    assert imaging.data["levels"] == "T7-T9"  # the original is untouched
    history = services.load_history(run.pathway)
    step = history.by_seq[imaging.seq]
    assert step.data["levels"] == "T9-T10" and "bilsky_grade" not in step.data
    assert step.original["levels"] == "T7-T9"
    assert step.amended_by == [result.event.seq]
    assert run.pathway.state == "imaging"


def test_amend_refusals(users):
    run = driver(users).walk_to("imaging")
    imaging = run.do("record_imaging").event
    amend = lambda seq, changes, reason="Typo": services.amend(  # noqa: E731
        run.pathway,
        seq,
        changes,
        reason,
        users["coordinator"],
        run.pathway.version,
        uuid.uuid4().hex,
    )
    with pytest.raises(InvalidData, match="same as the recorded"):
        amend(imaging.seq, {"levels": "T7-T9"})
    with pytest.raises(InvalidData) as refused:
        amend(imaging.seq, {"modality": "sonar"})
    assert "changes.modality" in refused.value.errors  # named as the corrected field
    sign_off = run.do("sign_off", {}, actor=users["surgeon"]).event
    with pytest.raises(InvalidData, match="cannot be amended"):
        amend(sign_off.seq, {"note": "Seen."})
    with pytest.raises(InvalidData, match="cannot be amended"):
        amend(99, {"levels": "T1"})
    with pytest.raises(InvalidData, match="Reason for the correction is required"):
        amend(imaging.seq, {"levels": "T1"}, reason="")
    with pytest.raises(RoleNotAllowed):
        services.amend(
            run.pathway,
            imaging.seq,
            {"levels": "T1"},
            "x",
            users["viewer"],
            run.pathway.version,
            uuid.uuid4().hex,
        )


def test_void_returns_to_the_state_before(users):
    run = driver(users).walk_to("surveillance")
    run.fire("suspect_recurrence")
    assert (run.pathway.state, run.pathway.recurrence_count) == ("imaging", 1)
    voided = services.void_last_step(
        run.pathway, "Wrong patient", users["coordinator"], run.pathway.version, uuid.uuid4().hex
    )
    assert run.pathway.state == "surveillance" and run.pathway.recurrence_count == 0
    assert voided.event.from_state == "imaging" and voided.event.to_state == "surveillance"
    history = services.load_history(run.pathway)
    assert history.by_seq[voided.event.data["event_seq"]].voided_by == voided.event.seq
    assert history.replay() == ("surveillance", 0)


def test_void_reopens_a_closed_pathway(users):
    run = driver(users).walk_to("imaging")
    run.fire("record_death")
    assert run.pathway.closed_at is not None
    services.void_last_step(
        run.pathway,
        "Recorded in error",
        users["coordinator"],
        run.pathway.version,
        uuid.uuid4().hex,
    )
    assert run.pathway.state == "imaging" and run.pathway.closed_at is None


def test_void_rules(users, now):
    run = driver(users).walk_to("imaging")
    void = lambda actor, at=None: services.void_last_step(  # noqa: E731
        run.pathway, "Entered in error", users[actor], run.pathway.version, uuid.uuid4().hex, now=at
    )
    with pytest.raises(RoleNotAllowed, match="Only the person who recorded"):
        void("coordinator2")
    with pytest.raises(RoleNotAllowed, match="within 24 hours"):
        void("coordinator", at=now + timedelta(hours=25))
    with pytest.raises(RoleNotAllowed, match="A viewer cannot record"):
        void("viewer")
    run.do("record_imaging")
    with pytest.raises(TriggerNotAllowed, match="amendment instead"):
        void("coordinator")
    run.do("add_note")  # notes do not stop a void... but the imaging record does
    fresh = driver(users).walk_to("imaging")
    fresh.do("add_note")
    assert services.void_last_step(
        fresh.pathway,
        "x",
        users["admin"],
        fresh.pathway.version,
        uuid.uuid4().hex,
        now=now + timedelta(days=3),
    ).created
    assert fresh.pathway.state == "referred"
    with pytest.raises(TriggerNotAllowed, match="no step to void"):
        services.void_last_step(
            fresh.pathway, "x", users["admin"], fresh.pathway.version, uuid.uuid4().hex
        )


def test_allowed_triggers_follow_role_state_and_guards(users):
    run = driver(users).walk_to("imaging")
    coordinator = services.allowed_triggers(run.pathway, users["coordinator"])
    assert "record_imaging" in coordinator
    assert "request_biopsy" not in coordinator  # guard: no imaging reported yet
    assert "sign_off" not in coordinator
    assert "sign_off" in services.allowed_triggers(run.pathway, users["surgeon"])
    assert services.allowed_triggers(run.pathway, users["viewer"]) == []
    assert services.allowed_triggers(run.pathway, users["admin"]) == []
    run.do("record_imaging")
    assert {"request_biopsy", "refer_to_mdt"} <= set(
        services.allowed_triggers(run.pathway, users["coordinator"])
    )


def test_discharge_needs_a_follow_up_from_this_surveillance_episode(users):
    run = driver(users).walk_to("surveillance")
    run.do("record_follow_up", {"imaging_done": True, "status": "ned"})
    run.fire("suspect_recurrence")
    run.fire("refer_to_mdt")
    run.fire("plan_surveillance")
    with pytest.raises(TriggerNotAllowed, match="the last follow-up must show"):
        run.do("discharge")
    run.do("record_follow_up", {"imaging_done": True, "status": "stable"})
    assert run.do("discharge").created


def test_a_voided_step_can_be_recorded_again_at_its_real_time(users, now):
    run = driver(users, referral=now - timedelta(hours=6))
    real_time = now - timedelta(hours=3)
    run.do("request_imaging", occurred_at=real_time)
    services.void_last_step(
        run.pathway, "Wrong form", users["coordinator"], run.pathway.version, uuid.uuid4().hex
    )
    assert run.do("request_imaging", occurred_at=real_time).created
    from tracker.engine.verify import check

    assert check(run.pathway, events_of(run.pathway)) == []


def test_mdt_date_is_judged_as_a_local_day(users):
    # 00:30 on 15 July in London is 23:30 on 14 July UTC: a meeting on 15 July is fine,
    # and stays fine when the outcome is later amended.
    run = driver(users, referral=datetime(2026, 7, 1, 9, tzinfo=UTC)).walk_to("mdt_review")
    at = datetime(2026, 7, 14, 23, 30, tzinfo=UTC)
    data = {
        "meeting_date": "2026-07-15",
        "disciplines": ["spinal_surgery", "radiology"],
        "rationale": "Operate.",
    }
    outcome = run.do("plan_surgery", data, occurred_at=at).event
    services.amend(
        run.pathway,
        outcome.seq,
        {"rationale": "Operate next week."},
        "Clarified",
        users["surgeon"],
        run.pathway.version,
        uuid.uuid4().hex,
    )


def test_a_registered_mrn_is_named_before_other_mistakes(users):
    first = new_patient(users["coordinator"], mrn="MRN777")
    with pytest.raises(DuplicateMRN) as refused:
        register_patient(
            users["coordinator"],
            mrn="MRN777",
            family_name="Doe",
            given_name="Jane",
            birth_date=date(2999, 1, 1),
            sex="female",
        )
    assert refused.value.patient.id == first.id
