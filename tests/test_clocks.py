"""The waiting-time clocks of PATHWAY.md, as worked cases of the national rules: calendar
days in the hospital's zone, hour clocks to the minute, treatment at its real start,
adjustments, upgrades, episodes. Time is frozen; times are UTC unless said."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from tests.helpers import driver
from tracker.engine import clocks
from tracker.engine.history import History, Step

# Monday 2 March 2026, 09:00 in London (GMT). Summer time starts 29 March (01:00 UTC).
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
H = timedelta(hours=1)
D = timedelta(days=1)
USC = {"urgency": "urgent", "referral_priority": "urgent_suspected_cancer"}
MDT = ("plan_surgery", "mdt_review")
MRI = {"modality": "mri"}


def history(*steps: tuple[str, str | None, datetime, dict], referral: dict | None = None):
    out = [Step(1, "open_pathway", None, "referred", T0, dict(referral or USC), {})]
    for seq, (trigger, source, at, data) in enumerate(steps, start=2):
        out.append(Step(seq, trigger, source, "x", at, dict(data), dict(data)))
    return History(out)


def found(hist: History, now: datetime, urgency: str = "urgent") -> dict[str, clocks.ClockResult]:
    return {t.code: t for t in clocks.compute(urgency, T0, hist, now)}


def status(hist: History, now: datetime, code: str) -> str | None:
    result = found(hist, now).get(code)
    return result.status if result else None


def london(year, month, day, hour, minute=0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=clocks.local_zone()).astimezone(UTC)


# -- calendar days --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("told_at", "expected"),
    [
        # Day 28 is Monday 30 March (summer time since the 29th): any hour of it is met.
        (london(2026, 3, 30, 15), "met"),
        (london(2026, 3, 30, 23, 59), "met"),
        (london(2026, 3, 31, 0, 1), "missed"),  # day 29, though not 28 x 24 h in UTC hours
    ],
)
def test_28_days_are_calendar_days_across_the_clock_change(told_at, expected):
    told = {"outcome": "cancer_confirmed", "method": "face_to_face"}
    hist = history(("communicate_diagnosis", "mdt_review", told_at, told))
    result = found(hist, told_at + H)["fds_28"]
    assert result.status == expected
    assert result.due_at == london(2026, 3, 31, 0)  # the end of day 28
    assert result.wait == (28 if expected == "met" else 29)


@pytest.mark.parametrize(
    ("operated", "expected"),
    [(london(2026, 5, 3, 23, 30), "met"), (london(2026, 5, 4, 0, 30), "missed")],
)
def test_62_days_end_at_local_midnight_of_day_62(operated, expected):
    hist = history((*MDT, T0 + 20 * D, {}), ("record_surgery", "surgery_scheduled", operated, {}))
    assert status(hist, operated + D, "rtt_62") == expected


def test_a_day_clock_is_due_soon_in_its_last_fifth_and_breached_the_next_day():
    hist = history()
    assert status(hist, T0 + 20 * D, "fds_28") == "pending"
    assert status(hist, T0 + 24 * D, "fds_28") == "due_soon"
    assert status(hist, london(2026, 3, 30, 23, 59), "fds_28") == "due_soon"
    assert status(hist, london(2026, 3, 31, 0, 1), "fds_28") == "breached"


# -- hour clocks, to the minute -------------------------------------------------------------


@pytest.mark.parametrize(
    ("reported", "expected"),
    [
        (T0 + 24 * H, "met"),
        (T0 + 24 * H + 59 * timedelta(seconds=1), "met"),
        (T0 + 24 * H + MINUTE, "missed"),
    ],
)
def test_mscc_mri_counts_to_the_minute(reported, expected):
    hist = history(("record_imaging", "imaging", reported, MRI), referral={"urgency": "emergency"})
    assert found(hist, reported + H, "emergency")["mscc_mri"].status == expected


def test_a_ct_does_not_stop_the_mri_clock_unless_mri_is_contraindicated():
    ct = {"modality": "ct"}
    hist = history(
        ("record_imaging", "imaging", T0 + 3 * H, ct),
        ("record_imaging", "imaging", T0 + 28 * H, MRI),
        referral={"urgency": "emergency"},
    )
    result = found(hist, T0 + 30 * H, "emergency")["mscc_mri"]
    assert (result.status, result.stopped_at) == ("missed", T0 + 28 * H)
    hist = history(
        ("record_imaging", "imaging", T0 + 3 * H, {**ct, "mri_contraindicated": True}),
        referral={"urgency": "emergency"},
    )
    assert found(hist, T0 + 30 * H, "emergency")["mscc_mri"].status == "met"


def test_emergency_clocks_chain_and_follow_the_decision():
    hist = history(
        ("record_imaging", "imaging", T0 + 5 * H, MRI),
        ("plan_surgery", "mdt_review", T0 + 30 * H, {}),  # 25 h after the MRI: missed
        ("record_surgery", "surgery_scheduled", T0 + 50 * H, {}),  # 20 h after: met
        referral={"urgency": "emergency"},
    )
    result = found(hist, T0 + 60 * H, "emergency")
    assert result["mscc_mri"].status == "met"
    assert result["mscc_plan"].status == "missed" and result["mscc_plan"].due_at == T0 + 29 * H
    assert result["mscc_surgery"].status == "met"
    assert "local target" in result["mscc_surgery"].arithmetic(T0 + 60 * H)
    assert "mscc_radiotherapy" not in result  # the decision was surgery
    # An emergency presentation has the 31-day clock; not the 28- or 62-day ones.
    assert result["dtt_31"].status == "met"
    assert not {"fds_28", "rtt_62"} & set(result)


def test_radiotherapy_within_24_hours_counts_from_its_start_date():
    hist = history(
        ("record_imaging", "imaging", T0 + 2 * H, MRI),
        ("plan_oncology", "mdt_review", T0 + 10 * H, {}),
        # Started the same day, recorded three days later.
        (
            "record_treatment",
            "oncology_treatment",
            T0 + 3 * D,
            {"modality": "conventional_rt", "start_date": "2026-03-02"},
        ),
        referral={"urgency": "emergency"},
    )
    result = found(hist, T0 + 4 * D, "emergency")["mscc_radiotherapy"]
    assert result.status == "met"


def test_urgent_spinal_metastases_need_an_mri_within_7_days():
    hist = history(referral=USC)
    assert status(hist, T0 + 3 * D, "spinal_mets_mri") == "pending"
    assert status(hist, london(2026, 3, 10, 0, 1), "spinal_mets_mri") == "breached"
    hist = history(("record_imaging", "imaging", london(2026, 3, 9, 17), MRI))
    assert status(hist, T0 + 10 * D, "spinal_mets_mri") == "met"


# -- treatment at its real start ------------------------------------------------------------


def test_a_treatment_recorded_late_stops_the_31_day_clock_at_its_start_date():
    decision = T0 + 10 * D  # 12 March
    hist = history(
        ("plan_oncology", "mdt_review", decision, {}),
        (
            "record_treatment",
            "oncology_treatment",
            decision + 35 * D,
            {"modality": "sbrt", "start_date": "2026-03-22"},
        ),  # day 10 after the decision
    )
    result = found(hist, decision + 36 * D)
    assert result["dtt_31"].status == "met" and result["dtt_31"].wait == 10
    assert result["dtt_31"].provisional  # no plan agreed with the patient yet
    assert "provisional" in result["dtt_31"].arithmetic(decision + 36 * D)


def test_the_31_day_clock_counts_from_the_agreed_plan():
    decision, agreed = T0 + 10 * D, T0 + 15 * D
    hist = history(
        (*MDT, decision, {}),
        ("agree_treatment", "surgery_scheduled", agreed, {"treatment": "surgery"}),
        ("record_surgery", "surgery_scheduled", agreed + 31 * D, {}),
    )
    result = found(hist, agreed + 40 * D)["dtt_31"]
    assert result.started_at == agreed and not result.provisional
    assert result.status == "met" and result.wait == 31


def test_a_subsequent_treatment_after_restaging_has_its_own_31_day_clock():
    hist = history(
        (*MDT, T0 + 10 * D, {}),
        ("record_surgery", "surgery_scheduled", T0 + 20 * D, {}),
        ("refer_to_mdt", "post_op", T0 + 40 * D, {"reason": "final_histology"}),
        ("plan_oncology", "mdt_review", T0 + 45 * D, {}),
        (
            "record_treatment",
            "oncology_treatment",
            T0 + 80 * D,
            {"modality": "conventional_rt", "start_date": "2026-05-21"},
        ),  # 35 days after
    )
    result = found(hist, T0 + 90 * D)
    assert result["subsequent_31"].status == "missed"
    assert result["subsequent_31"].started_at == T0 + 45 * D
    assert result["dtt_31"].status == "met" and result["rtt_62"].status == "met"


def test_an_earliest_clinically_appropriate_date_moves_the_subsequent_start():
    hist = history(
        (*MDT, T0 + 10 * D, {}),
        ("record_surgery", "surgery_scheduled", T0 + 20 * D, {}),
        ("refer_to_mdt", "post_op", T0 + 40 * D, {"reason": "final_histology"}),
        ("plan_oncology", "mdt_review", T0 + 45 * D, {}),
        (
            "record_adjustment",
            "oncology_treatment",
            T0 + 46 * D,
            {
                "kind": "earliest_clinically_appropriate_date",
                "reason": "Wound healing",
                "ecad": "2026-05-01",
            },
        ),
        (
            "record_treatment",
            "oncology_treatment",
            T0 + 80 * D,
            {"modality": "conventional_rt", "start_date": "2026-05-21"},
        ),
    )
    result = found(hist, T0 + 90 * D)["subsequent_31"]
    assert result.started_at == london(2026, 5, 1, 0) and result.status == "met"


# -- adjustments and upgrades ---------------------------------------------------------------


def test_a_missed_first_appointment_restarts_the_28_and_62_day_clocks():
    dna = (
        "record_adjustment",
        "referred",
        T0 + 5 * D,
        {"kind": "dna_first_appointment", "reason": "Did not attend", "rebooked_on": "2026-03-12"},
    )
    result = found(history(dna), T0 + 6 * D)
    for code in ("fds_28", "rtt_62"):
        assert result[code].started_at == london(2026, 3, 12, 0) and result[code].restarted
    assert result["fds_28"].due_at == london(2026, 4, 10, 0)  # 28 days from 12 March


def test_a_declined_admission_pauses_the_31_and_62_day_clocks_for_surgery_only():
    declined = (
        "record_adjustment",
        "surgery_scheduled",
        T0 + 12 * D,
        {
            "kind": "patient_declined_admission",
            "reason": "Holiday",
            "offered_date": "2026-03-20",
            "available_from": "2026-03-28",
        },
    )
    hist = history(
        (*MDT, T0 + 10 * D, {}), declined, ("record_surgery", "surgery_scheduled", T0 + 65 * D, {})
    )  # day 65
    result = found(hist, T0 + 70 * D)
    rtt = result["rtt_62"]
    assert (rtt.adjustment_days, rtt.wait, rtt.status) == (8, 57, "met")
    assert rtt.arithmetic(T0 + 70 * D) == (
        "day 57 of 62: 65 calendar days - 8 days paused (patient declined an offered admission)"
    )
    assert result["dtt_31"].adjustment_days == 8
    # Radiotherapy is not admitted treatment: the same adjustment pauses nothing.
    hist = history(("plan_oncology", "mdt_review", T0 + 10 * D, {}), declined)
    assert found(hist, T0 + 20 * D)["rtt_62"].adjustment_days == 0


def test_adjustments_combined_restart_then_pause():
    hist = history(
        (
            "record_adjustment",
            "referred",
            T0 + 5 * D,
            {"kind": "dna_first_appointment", "reason": "DNA", "rebooked_on": "2026-03-12"},
        ),
        (*MDT, T0 + 20 * D, {}),
        (
            "record_adjustment",
            "surgery_scheduled",
            T0 + 25 * D,
            {
                "kind": "patient_declined_admission",
                "reason": "Carer",
                "offered_date": "2026-04-01",
                "available_from": "2026-04-06",
            },
        ),
    )
    rtt = found(hist, T0 + 30 * D)["rtt_62"]
    assert rtt.started_at == london(2026, 3, 12, 0) and rtt.adjustment_days == 5
    assert rtt.due_at == london(2026, 5, 19, 0)  # 12 March + 62 + 5 days, at the day's end


def test_a_consultant_upgrade_starts_the_62_day_clock_only():
    routine = {"urgency": "routine", "referral_priority": "routine"}
    hist = history(referral=routine)
    assert not {"fds_28", "rtt_62"} & set(found(hist, T0 + D, "routine"))
    hist = history(
        (
            "upgrade_referral",
            "referred",
            T0 + 5 * D,
            {"upgraded_on": "2026-03-06", "consultant": "surgeon"},
        ),
        referral=routine,
    )
    result = found(hist, T0 + 6 * D, "routine")
    assert result["rtt_62"].started_at == london(2026, 3, 6, 0)
    assert "fds_28" not in result


def test_telling_the_patient_cancer_is_ruled_out_stops_the_28_day_clock():
    hist = history(
        (
            "communicate_diagnosis",
            "imaging",
            T0 + 10 * D,
            {"outcome": "cancer_ruled_out", "method": "telephone"},
        ),
    )
    assert status(hist, T0 + 11 * D, "fds_28") == "met"


def test_a_recurrence_has_its_own_priority():
    hist = history(
        (*MDT, T0 + 10 * D, {}),
        ("record_surgery", "surgery_scheduled", T0 + 12 * D, {}),
        (
            "suspect_recurrence",
            "surveillance",
            T0 + 200 * D,
            {"urgency": "emergency", "referral_priority": "emergency_presentation"},
        ),
    )
    codes = {t.code for t in clocks.compute("urgent", T0, hist, T0 + 200 * D + H)}
    assert codes == {"mscc_mri"}  # an emergency presentation: no 28- or 62-day clock


def test_closed_pathway_stops_open_clocks():
    hist = history()
    assert clocks.compute("urgent", T0, hist, T0 + 90 * D, closed_at=T0 + 5 * D) == []
    closed_late = clocks.compute("urgent", T0, hist, T0 + 90 * D, closed_at=T0 + 40 * D)
    # Closed after two clocks were due (they count as missed), before the 62-day one was.
    assert {t.code: t.status for t in closed_late} == {
        "fds_28": "missed",
        "spinal_mets_mri": "missed",
    }


def test_limits_come_from_configuration():
    rules = clocks.rules_for("spinal_mets_mri=2", 0.2)
    result = clocks.compute("urgent", T0, history(), T0 + 3 * D, target_rules=rules)
    assert {t.code: t.status for t in result}["spinal_mets_mri"] == "breached"
    with pytest.raises(ValueError, match=r"nonsense"):
        clocks.parse_limits("nonsense=3")
    with pytest.raises(ValueError, match="whole number"):
        clocks.parse_limits("fds_28=many")


# -- follow-up visits ------------------------------------------------------------------------


def test_follow_up_due_at_the_end_of_its_day():
    visit = T0 + 100 * D
    hist = history(
        (*MDT, T0 + 10 * D, {}),
        ("record_follow_up", "surveillance", visit, {"next_due": "2026-07-01"}),
    )
    due = datetime(2026, 7, 1, 23, tzinfo=UTC)  # the end of 1 July in London (BST)
    follow_up = found(hist, visit)["follow_up"]
    assert follow_up.due_at == due and follow_up.status == "pending"
    assert clocks.due_day("follow_up", due).isoformat() == "2026-07-01"
    assert status(hist, due - timedelta(days=5), "follow_up") == "pending"
    assert status(hist, due - timedelta(days=3), "follow_up") == "due_soon"
    assert status(hist, due + H, "follow_up") == "breached"


def test_follow_up_clocks_are_met_or_missed_when_the_next_visit_comes():
    first = T0 + 100 * D  # 10 Jun 2026, next due 1 Jul
    hist = history(
        ("record_follow_up", "surveillance", first, {"next_due": "2026-07-01"}),
        ("record_follow_up", "surveillance", first + 30 * D, {"next_due": "2026-10-01"}),
    )
    result = [
        t for t in clocks.compute("urgent", T0, hist, first + 31 * D) if t.code == "follow_up"
    ]
    assert [(t.status, t.stopped_at) for t in result] == [
        ("missed", first + 30 * D),  # seen on 10 July, due by the end of 1 July
        ("pending", None),
    ]


# -- through the services -------------------------------------------------------------------


def test_pathway_keeps_its_next_target_in_step_with_events(users):
    referral = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    with time_machine.travel(referral + 2 * H, tick=False):
        run = driver(users, referral=referral, urgency="emergency")
        assert run.pathway.next_target == "mscc_mri"
        assert run.pathway.next_target_due_at == referral + 24 * H
        run.fire("request_imaging")
        run.fire("record_imaging")
        assert run.pathway.next_target == "mscc_plan"
    due, warn = run.pathway.next_target_due_at, run.pathway.next_target_warn_at
    assert due == referral + 26 * H  # 24 hours from the MRI report at +2 h
    assert clocks.status_at(due, warn, referral + 20 * H) == "pending"
    assert clocks.status_at(due, warn, referral + 22 * H) == "due_soon"
    assert clocks.status_at(due, warn, referral + 27 * H) == "breached"


def test_clavien_dindo_v_records_the_death_in_the_same_change(users):
    run = driver(users).walk_to("post_op")
    version = run.pathway.version
    run.do("record_complication", {"complication": "vte", "clavien_dindo": "V"})
    assert run.pathway.state == "deceased" and run.pathway.closed_at is not None
    assert run.pathway.version == version + 2  # two events: the complication and the death


def test_cancer_ruled_out_leaves_the_pathway(users):
    run = driver(users).walk_to("imaging")
    with pytest.raises(Exception, match="told that cancer is ruled out"):
        run.do("rule_out_cancer", {"reason": "benign"})
    run.do(
        "rule_out_cancer", {"reason": "benign", "outcome": "cancer_ruled_out", "method": "letter"}
    )
    assert run.pathway.state == "discharged"


@pytest.mark.parametrize(
    ("told_at", "expected"),
    [
        # Referred 1 October (summer time); day 28 is 29 October, after the clocks go back.
        (london(2026, 10, 29, 23, 59), "met"),
        (london(2026, 10, 30, 0, 1), "missed"),
    ],
)
def test_28_days_across_the_end_of_summer_time(told_at, expected):
    referral = london(2026, 10, 1, 9)
    steps = [
        Step(1, "open_pathway", None, "referred", referral, dict(USC), {}),
        Step(
            2,
            "communicate_diagnosis",
            "mdt_review",
            "x",
            told_at,
            {"outcome": "cancer_confirmed", "method": "telephone"},
            {},
        ),
    ]
    result = {t.code: t for t in clocks.compute("urgent", referral, History(steps), told_at + H)}
    assert result["fds_28"].status == expected
    assert result["fds_28"].due_at == london(2026, 10, 30, 0)


def test_an_upgraded_referral_is_reported_as_a_consultant_upgrade():
    hist = history(
        (
            "upgrade_referral",
            "referred",
            T0 + D,
            {"upgraded_on": "2026-03-03", "consultant": "surgeon"},
        ),
        referral={"urgency": "routine", "referral_priority": "routine"},
    )
    assert found(hist, T0 + 2 * D, "routine")["rtt_62"].priority == "consultant_upgrade"
