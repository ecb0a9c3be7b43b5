"""The demo data: every clock, adjustment and outcome exercised, realistic breaches, and
clinically coherent referrals (an intramedullary tumour lies where the cord is)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from sqlalchemy import func, select

from tracker.core.clock import local_date
from tracker.demo import seed
from tracker.engine import clocks
from tracker.engine.models import Event, Pathway, PathwayClock, PathwayTask
from tracker.engine.verify import check
from tracker.extensions import db


def test_the_demo_exercises_every_clock_adjustment_and_outcome(session):
    seed(400, seed_value=9)
    session.flush()
    outcomes = Counter(
        {
            (clock, status): n
            for clock, status, n in db.session.execute(
                select(PathwayClock.clock, PathwayClock.status, func.count()).group_by(
                    PathwayClock.clock, PathwayClock.status
                )
            )
        }
    )
    for clock in clocks.CLOCKS:
        assert outcomes[(clock.code, "met")] > 0, clock.code
    # Breaches as a service has them: the national standards are not all met.
    for code in ("fds_28", "dtt_31", "rtt_62", "mscc_mri", "spinal_mets_mri"):
        assert outcomes[(code, "missed")] > 0, code
    events = db.session.scalars(select(Event)).all()
    triggers = Counter(e.trigger for e in events)
    for trigger in (
        "communicate_diagnosis",
        "agree_treatment",
        "upgrade_referral",
        "rule_out_cancer",
        "record_adjustment",
    ):
        assert triggers[trigger] > 0, trigger
    kinds = {e.data["kind"] for e in events if e.trigger == "record_adjustment"}
    assert kinds >= {"dna_first_appointment", "patient_declined_admission"}
    assert any(e.data.get("breach_reason") for e in events)
    assert any(e.data.get("mri_contraindicated") for e in events)
    # Coherent referrals.
    for p in db.session.scalars(select(Pathway)):
        if p.diagnosis_category != "metastatic_spinal":
            assert p.primary_cancer_site == "not_applicable", p.id
        if p.diagnosis_category == "intradural_intramedullary":
            assert p.tumour_site.startswith(("C", "T")), (p.id, p.tumour_site)
        if any(b in p.tumour_site.lower() for b in ("femur", "humerus", "pelvis")):
            assert p.diagnosis_category == "primary_bone", p.id
    # And every pathway is what a replay of its events gives.
    by_pathway: dict[int, list[Event]] = {}
    for e in sorted(events, key=lambda e: (e.pathway_id, e.seq)):
        by_pathway.setdefault(e.pathway_id, []).append(e)
    for p in db.session.scalars(select(Pathway)):
        assert check(p, by_pathway[p.id]) == [], p.id


def test_the_demo_coordinator_and_surgeon_have_work_to_do(session):
    seed(60, seed_value=9)
    session.flush()
    tasks = db.session.scalars(select(PathwayTask).where(PathwayTask.status == "open")).all()
    owners = Counter(t.owner.username for t in tasks)
    assert owners["coordinator"] > 0 and owners["surgeon"] > 0
    today = local_date(datetime.now(UTC))
    assert any(t.due_on < today for t in tasks) and any(t.due_on >= today for t in tasks)
    assert all(not t.pathway.is_closed for t in tasks)
    noted = db.session.scalar(select(func.count()).where(Pathway.tracking_note.is_not(None)))
    assert noted > 0
    events = db.session.scalars(select(Event).order_by(Event.pathway_id, Event.seq)).all()
    by_pathway: dict[int, list[Event]] = {}
    for e in events:
        by_pathway.setdefault(e.pathway_id, []).append(e)
    for p in db.session.scalars(select(Pathway)):
        assert check(p, by_pathway[p.id]) == [], p.id
