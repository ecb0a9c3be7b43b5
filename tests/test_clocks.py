"""Waiting-time targets for each urgency: met, missed, breached and due soon, time frozen."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from tests.helpers import driver
from tracker.engine import clocks
from tracker.engine.history import History, Step

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)
D = timedelta(days=1)


def history(*steps: tuple[str, str | None, datetime, dict]) -> History:
    out = [Step(1, "open_pathway", None, "referred", T0, {}, {})]
    for seq, (trigger, source, at, data) in enumerate(steps, start=2):
        out.append(Step(seq, trigger, source, "x", at, dict(data), dict(data)))
    return History(out)


def status(urgency, hist, now, code):
    found = {t.code: t for t in clocks.compute(urgency, T0, hist, now)}
    return found[code].status if code in found else None


MDT = ("plan_surgery", "mdt_review")


@pytest.mark.parametrize(
    ("now", "imaging_at", "expected"),
    [
        (T0 + 10 * H, None, "pending"),
        (T0 + 20 * H, None, "due_soon"),  # last 20 % of 24 hours starts at 19.2 h
        (T0 + 25 * H, None, "breached"),
        (T0 + 30 * H, T0 + 23 * H, "met"),
        (T0 + 30 * H, T0 + 26 * H, "missed"),
    ],
)
def test_emergency_mri_within_24_hours(now, imaging_at, expected):
    steps = [("record_imaging", "imaging", imaging_at, {})] if imaging_at else []
    assert status("emergency", history(*steps), now, "mri") == expected


def test_emergency_plan_and_treatment_clocks_chain():
    hist = history(
        ("record_imaging", "imaging", T0 + 5 * H, {}),
        ("plan_surgery", "mdt_review", T0 + 30 * H, {}),  # 25 h after imaging: missed
        ("record_surgery", "surgery_scheduled", T0 + 50 * H, {}),  # 20 h after decision: met
    )
    found = {t.code: t for t in clocks.compute("emergency", T0, hist, T0 + 60 * H)}
    assert found["mri"].status == "met"
    assert found["treatment_plan"].status == "missed"
    assert found["treatment_plan"].due_at == T0 + 29 * H
    assert found["treatment"].status == "met"
    assert set(found) == {"mri", "treatment_plan", "treatment"}


def test_emergency_treatment_not_started_until_decision():
    hist = history(("record_imaging", "imaging", T0 + 5 * H, {}))
    codes = {t.code for t in clocks.compute("emergency", T0, hist, T0 + 6 * H)}
    assert codes == {"mri", "treatment_plan"}


@pytest.mark.parametrize(
    ("now", "decision_at", "expected"),
    [
        (T0 + 3 * D, None, "pending"),
        (T0 + 6 * D, None, "due_soon"),  # due soon from day 5.6
        (T0 + 8 * D, None, "breached"),
        (T0 + 9 * D, T0 + 6 * D, "met"),
        (T0 + 9 * D, T0 + 7 * D + H, "missed"),
    ],
)
def test_urgent_imaging_and_plan_within_7_days(now, decision_at, expected):
    steps = [(*MDT, decision_at, {})] if decision_at else []
    assert status("urgent", history(*steps), now, "imaging_and_plan") == expected


@pytest.mark.parametrize("urgency", ["urgent", "routine"])
def test_28_31_62_day_standards(urgency):
    decision = T0 + 20 * D
    treatment = decision + 35 * D  # 55 days from referral
    hist = history((*MDT, decision, {}), ("record_surgery", "surgery_scheduled", treatment, {}))
    found = {t.code: t for t in clocks.compute(urgency, T0, hist, treatment + D)}
    assert found["diagnosis"].status == "met"
    assert found["decision_to_treatment"].status == "missed"
    assert found["decision_to_treatment"].due_at == decision + 31 * D
    assert found["referral_to_treatment"].status == "met"


def test_routine_62_days_breached_and_due_soon():
    hist = history((*MDT, T0 + 10 * D, {}))
    assert status("routine", hist, T0 + 50 * D, "referral_to_treatment") == "due_soon"
    assert status("routine", hist, T0 + 63 * D, "referral_to_treatment") == "breached"
    assert status("routine", hist, T0 + 35 * D, "decision_to_treatment") == "due_soon"


def test_follow_up_due_date_and_recurrence_restarts_clocks():
    visit = T0 + 100 * D
    hist = history(
        (*MDT, T0 + 10 * D, {}),
        ("record_follow_up", "surveillance", visit, {"next_due": "2026-07-01"}),
    )
    due = datetime(2026, 7, 1, 23, tzinfo=UTC)  # the end of 1 July in London (BST)
    follow_up = next(t for t in clocks.compute("routine", T0, hist, visit) if t.code == "follow_up")
    assert follow_up.due_at == due and follow_up.status == "pending"
    assert status("routine", hist, due - timedelta(days=5), "follow_up") == "pending"
    assert status("routine", hist, due - timedelta(days=3), "follow_up") == "due_soon"
    assert status("routine", hist, due + H, "follow_up") == "breached"
    recurrence = visit + 10 * D
    hist = history(
        (*MDT, T0 + 10 * D, {}),
        ("record_surgery", "surgery_scheduled", T0 + 12 * D, {}),
        ("suspect_recurrence", "surveillance", recurrence, {}),
    )
    found = {t.code: t for t in clocks.compute("routine", T0, hist, recurrence + D)}
    assert found["diagnosis"].started_at == recurrence and found["diagnosis"].status == "pending"


def test_closed_pathway_stops_open_clocks():
    hist = history()
    assert clocks.compute("routine", T0, hist, T0 + 90 * D, closed_at=T0 + 5 * D) == []
    closed_late = clocks.compute("routine", T0, hist, T0 + 90 * D, closed_at=T0 + 40 * D)
    assert {t.code: t.status for t in closed_late} == {"diagnosis": "missed"}


def test_limits_come_from_configuration():
    rules = clocks.rules_for("urgent.imaging_and_plan=48", 0.2)
    found = clocks.compute("urgent", T0, history(), T0 + 3 * D, target_rules=rules)
    assert {t.code: t.status for t in found}["imaging_and_plan"] == "breached"
    with pytest.raises(ValueError, match=r"urgent\.nonsense"):
        clocks.parse_limits("urgent.nonsense=3")


def test_pathway_keeps_its_next_target_in_step_with_events(users):
    referral = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    with time_machine.travel(referral + 2 * H, tick=False):
        run = driver(users, referral=referral, urgency="emergency")
        assert run.pathway.next_target == "mri"
        assert run.pathway.next_target_due_at == referral + 24 * H
        run.fire("request_imaging")
        run.fire("record_imaging")
        assert run.pathway.next_target == "treatment_plan"
    due, warn = run.pathway.next_target_due_at, run.pathway.next_target_warn_at
    assert due == referral + 26 * H  # 24 hours from the imaging report at +2 h
    assert clocks.status_at(due, warn, referral + 20 * H) == "pending"
    assert clocks.status_at(due, warn, referral + 22 * H) == "due_soon"
    assert clocks.status_at(due, warn, referral + 27 * H) == "breached"


def test_follow_up_clocks_are_met_or_missed_when_the_next_visit_comes():
    first = T0 + 100 * D  # 10 Jun 2026, next due 1 Jul
    hist = history(
        ("record_follow_up", "surveillance", first, {"next_due": "2026-07-01"}),
        ("record_follow_up", "surveillance", first + 30 * D, {"next_due": "2026-10-01"}),
    )
    found = [
        t for t in clocks.compute("routine", T0, hist, first + 31 * D) if t.code == "follow_up"
    ]
    assert [(t.status, t.stopped_at) for t in found] == [
        ("missed", first + 30 * D),  # seen on 10 July, due by the end of 1 July
        ("pending", None),
    ]
