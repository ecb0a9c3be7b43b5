"""Every transition of PATHWAY.md fires from each source; everything else is refused."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tests.helpers import driver, valid_data
from tracker.engine import guards as g
from tracker.engine import steps as d
from tracker.engine import tags
from tracker.engine.errors import InvalidData, TriggerNotAllowed
from tracker.engine.history import History
from tracker.engine.machine import MACHINE, graph
from tracker.engine.models import Event
from tracker.engine.services import load_history
from tracker.extensions import db

PAIRS = [(t.trigger, source, t.dest) for t in d.transitions() for source in t.sources]
ALLOWED = {(trigger, source) for trigger, source, _ in PAIRS}
REFUSED = [
    (trigger, state)
    for state in d.STATES
    for trigger in d.recordable()
    if (trigger, state) not in ALLOWED
]


def event_count(pathway):
    return db.session.scalar(select(func.count(Event.id)).where(Event.pathway_id == pathway.id))


def test_machine_is_built_from_the_table():
    assert set(MACHINE.states) == set(d.STATES)
    _, edges = graph()
    expected = {(s, dest or s, trig) for trig, s, dest in PAIRS}
    assert set(edges) == expected
    assert len(edges) == len(PAIRS)  # one transition per (trigger, source)


def test_pathway_md_states_and_finals():
    assert {"discharged", "deceased", "withdrawn"} == d.FINAL_STATES
    assert len(d.STATES) == 13


@pytest.mark.parametrize(
    ("trigger", "source", "dest"), PAIRS, ids=[f"{t}-{s}" for t, s, _ in PAIRS]
)
def test_every_transition_fires_from_each_source(users, trigger, source, dest):
    run = driver(users, actor="surgeon").walk_to(source)
    version, events = run.pathway.version, event_count(run.pathway)
    result = run.fire(trigger)
    assert result.created
    assert run.pathway.state == (dest or source)
    assert result.event.from_state == source and result.event.to_state == run.pathway.state
    assert run.pathway.version == version + (event_count(run.pathway) - events)
    assert (
        History.from_events(
            db.session.scalars(select(Event).where(Event.pathway_id == run.pathway.id)).all()
        ).replay()[0]
        == run.pathway.state
    )


@pytest.mark.parametrize(("trigger", "state"), REFUSED, ids=[f"{t}-{s}" for t, s in REFUSED])
def test_every_other_pair_is_refused_and_writes_nothing(users, trigger, state):
    run = driver(users, actor="surgeon").walk_to(state)
    version, events = run.pathway.version, event_count(run.pathway)
    with pytest.raises(TriggerNotAllowed) as refused:
        run.do(trigger, data=valid_data(trigger, "mdt_review", run.t))
    assert d.STATE_LABELS[state] in str(refused.value)
    assert run.pathway.version == version
    assert run.pathway.state == state
    assert event_count(run.pathway) == events


@pytest.mark.parametrize(
    ("state", "trigger", "missing"),
    [
        ("imaging", "request_biopsy", "no imaging study has been reported"),
        ("imaging", "refer_to_mdt", "no imaging study has been reported"),
        ("biopsy", "refer_to_mdt", "no biopsy result has been recorded"),
        ("surveillance", "discharge", "the last follow-up must show"),
    ],
)
def test_history_guards_refuse_without_their_record(users, state, trigger, missing):
    run = driver(users).walk_to(state)
    if state == "surveillance":
        run.do("record_follow_up", {"imaging_done": True, "status": "progression"})
    version, events = run.pathway.version, event_count(run.pathway)
    with pytest.raises(TriggerNotAllowed, match=missing):
        run.do(trigger)
    assert (run.pathway.version, event_count(run.pathway)) == (version, events)


def test_recurrence_needs_new_imaging_before_mdt(users):
    run = driver(users).walk_to("surveillance")
    run.fire("suspect_recurrence")
    assert run.pathway.recurrence_count == 1
    with pytest.raises(TriggerNotAllowed, match="no imaging study"):
        run.do("refer_to_mdt")
    run.do("record_imaging")
    run.do("refer_to_mdt")
    assert run.pathway.state == "mdt_review"


MDT_OUTCOMES = [*sorted(d.tagged(tags.MDT_DECISION)), "request_imaging", "request_biopsy"]


@pytest.mark.parametrize("trigger", MDT_OUTCOMES)
def test_mdt_outcomes_refuse_without_the_mdt_record(users, trigger):
    run = driver(users).walk_to("mdt_review")
    with pytest.raises(InvalidData) as refused:
        run.do(trigger, data={})
    assert set(refused.value.errors) >= {"meeting_date", "disciplines", "rationale"}
    assert run.pathway.state == "mdt_review"
    assert g.MDT_OUTCOME(history=History([]), data={}) is False


@pytest.mark.parametrize("source", ["surgery_scheduled", "post_op", "oncology_treatment"])
def test_back_to_mdt_needs_a_reason(users, source):
    run = driver(users).walk_to(source)
    with pytest.raises(InvalidData) as refused:
        run.do("refer_to_mdt", data={})
    assert "reason" in refused.value.errors
    assert g.REASON_GIVEN(history=History([]), data={}) is False


def test_withdraw_needs_a_reason(users):
    run = driver(users).walk_to("imaging")
    with pytest.raises(InvalidData, match="Reason is required"):
        run.do("withdraw", data={})


def test_surgery_needs_details_and_a_prior_decision(users):
    run = driver(users).walk_to("surgery_scheduled")
    with pytest.raises(InvalidData) as refused:
        run.do("record_surgery", data={})
    assert {"procedures", "approach", "levels", "lead_surgeon"} <= set(refused.value.errors)
    history = History([])
    assert g.OPERATION_DETAILS(history=History([]), data={}) is False
    assert g.NOT_BEFORE_DECISION_TO_OPERATE(history=history, occurred_at=run.t) is False
    # dated before the MDT meeting it follows: refused by the guard itself
    history = load_history(run.pathway)
    decision = history.latest("plan_surgery")
    decision.data["meeting_date"] = "2999-01-01"
    assert not g.NOT_BEFORE_DECISION_TO_OPERATE(history=history, occurred_at=run.t)
