"""The demo data: every clock, adjustment and outcome exercised, realistic breaches, and
clinically coherent referrals (an intramedullary tumour lies where the cord is)."""

from __future__ import annotations

import os
import signal
from collections import Counter
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from tracker import demo
from tracker.audit.chain import verify_chain
from tracker.audit.seals import broken_seals
from tracker.core.clock import local_date
from tracker.demo import ensure_demo_users, seed
from tracker.engine import clocks
from tracker.engine.dictionary import DataError
from tracker.engine.models import (
    Event,
    Pathway,
    PathwayClock,
    PathwayFact,
    PathwayTask,
    ReportCount,
    StateCount,
)
from tracker.engine.verify import check, verify_all
from tracker.extensions import db
from tracker.patients.models import Patient


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


def _demo_as_written(session) -> dict:
    """Everything a seed wrote, by the patient's MRN and the step's number (ids aside)."""
    mrn = dict(session.execute(select(Pathway.id, Patient.mrn).join(Patient)).all())
    patient_mrn = dict(session.execute(select(Patient.id, Patient.mrn)).all())
    seq = {e.id: e.seq for e in session.scalars(select(Event))}

    def rows(model, skip=("id", "pathway_id", "patient_id", "seal")):
        out = []
        for row in session.execute(select(model.__table__)).mappings():
            kept = {k: v for k, v in row.items() if k not in skip}
            if "pathway_id" in row:
                kept["mrn"] = mrn[row["pathway_id"]]
            if "patient_id" in row:
                kept["patient"] = patient_mrn[row["patient_id"]]
            for name in ("amends_event_id", "voids_event_id"):
                if kept.get(name) is not None:
                    kept[name] = seq[kept[name]]
            out.append(repr(sorted(kept.items())))
        return sorted(out)

    chain = ("chain_seq", "prev_hash", "hash")
    return {
        "patients": rows(Patient),
        "pathways": rows(Pathway, ("id", "patient_id")),
        "events": rows(Event, ("id", "pathway_id", "request_id", *chain)),
        "clocks": rows(PathwayClock),
        "facts": rows(PathwayFact),
        "tasks": rows(PathwayTask),
        "report counts": rows(ReportCount, ()),
        "open pathways": sorted(
            session.execute(
                select(StateCount.state, func.sum(StateCount.open_pathways)).group_by(
                    StateCount.state
                )
            ).all()
        ),
    }


def _builders(monkeypatch) -> list[int]:
    """The process ids that built the batches a seed writes, as it writes them."""
    builders: list[int] = []
    write = demo._write

    def noted(connection, built):
        builders.append(built.built_by)
        write(connection, built)

    monkeypatch.setattr(demo, "_write", noted)
    return builders


def test_a_seed_built_by_worker_processes_is_the_seed_built_here(session, monkeypatch):
    """Each batch draws its own random numbers: three worker processes building batches of
    25 write what this process writes alone; and what they write passes every check of
    `flask tracker verify` (the pathways, the counts, the event chain, the patients'
    seals)."""
    now = datetime.now(UTC)
    ensure_demo_users()  # the same users for both
    builders = _builders(monkeypatch)
    here = session.begin_nested()
    seed(110, seed_value=5, now=now, workers=0, batch=25)
    session.flush()
    alone = _demo_as_written(session)
    here.rollback()
    assert builders == [os.getpid()] * 5
    builders.clear()
    seed(110, seed_value=5, now=now, workers=3, batch=25)
    session.flush()
    assert len(builders) == 5 and os.getpid() not in builders
    built = _demo_as_written(session)
    for part, written in alone.items():
        assert built[part] == written, part
    assert len(alone["pathways"]) == 110
    problems, checked = verify_all()
    assert problems == [] and checked == 110
    broken, linked = verify_chain("event")
    assert broken is None and linked == len(alone["events"])
    assert broken_seals(session) == []


@pytest.mark.parametrize("how", ["raises", "dies"])
def test_a_batch_that_fails_in_a_worker_stops_the_seed(session, monkeypatch, how):
    """A worker's error comes back to the seed, even one that pickling cannot carry (the
    data dictionary's DataError), and so does a worker that dies; the seed does not wait
    for a batch that will never come. (An alarm fails the test rather than hang it.)"""
    build = demo._build

    def failing(job):
        if job.index == 2:
            if how == "dies":
                os._exit(3)
            raise DataError({"urgency": ["not one of the choices"]})
        return build(job)

    monkeypatch.setattr(demo, "_build", failing)

    def hung(signum, frame):
        raise TimeoutError("the seed waited for a batch that failed")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    try:
        expected = (
            (RuntimeError, r"demo batch 2 \(pathways 41 to 60\) failed:[\s\S]*urgency")
            if how == "raises"
            else (BrokenProcessPool, "terminated abruptly")
        )
        with pytest.raises(expected[0], match=expected[1]):
            seed(100, seed_value=5, workers=2, batch=20)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
