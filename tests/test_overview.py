"""The surgeon's overview: figures match the events (time frozen), the diagram is the machine."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import time_machine

from tests.helpers import Driver, new_pathway
from tracker.engine import services
from tracker.engine import steps as d
from tracker.engine.machine import MACHINE, graph
from tracker.overview import summary, svg

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)
NOW = T0 + 65 * DAY
MDT = {
    "meeting_date": "2026-01-10",
    "disciplines": ["spinal_surgery", "radiology"],
    "rationale": "Decompress and stabilise.",
    "asia_grade": "C",
    "ecog": 2,
    "karnofsky": 60,
    "sins": {
        "location": 1,
        "pain": 3,
        "bone_lesion": 2,
        "alignment": 0,
        "collapse": 2,
        "posterolateral": 1,
    },
}


EPISODE = {"urgency": "urgent", "referral_priority": "urgent_suspected_cancer"}


def journey(users):
    """A routine pathway with an operation, a complication and a suspected recurrence."""
    pathway = new_pathway(users["coordinator"], T0, urgency="routine")
    run = Driver(pathway, users["surgeon"], T0)
    steps = [
        (1, "request_imaging", {}),
        (
            2,
            "record_imaging",
            {"modality": "mri", "region": "Spine", "findings": "T8 lesion", "bilsky_grade": "2"},
        ),
        (3, "refer_to_mdt", {}),
        (5, "plan_surgery", MDT),
        (7, "record_preop_assessment", {"asa_grade": 2, "consent_taken": True}),
        (
            8,
            "record_surgery",
            {
                "lead_surgeon": "surgeon",
                "procedures": ["decompression"],
                "approach": "open",
                "levels": "T7-T9",
            },
        ),
        (9, "record_complication", {"complication": "csf_leak", "clavien_dindo": "IIIa"}),
        (10, "start_rehabilitation", {}),
        (12, "record_therapy_session", {"mobility": "walking_aid", "pain_nrs": 4}),
        (20, "start_surveillance", {"next_due": (T0 + 60 * DAY).date().isoformat()}),
        (60, "record_follow_up", {"imaging_done": True, "status": "recurrence"}),
        (61, "suspect_recurrence", EPISODE),
    ]
    with time_machine.travel(NOW, tick=False):
        for day, trigger, data in steps:
            run.do(trigger, data, occurred_at=T0 + day * DAY)
    return run


def test_phases_milestones_and_facts_match_the_events(users):
    run = journey(users)
    history = services.load_history(run.pathway)
    phases = summary.phases(history, NOW, None)
    assert [(p.state, p.days) for p in phases] == [
        ("referred", 1),
        ("imaging", 2),
        ("mdt_review", 2),
        ("surgery_scheduled", 3),
        ("post_op", 2),
        ("rehabilitation", 10),
        ("surveillance", 41),
        ("imaging", 4),
    ]
    assert phases[-1].current and not phases[0].current
    milestones = {m.label: m.days_since_referral for m in summary.milestones(history, T0)}
    assert milestones == {
        "Referral": 0,
        "First imaging reported": 2,
        "Histology": None,
        "MDT decision": 5,
        "Operation": 8,
        "Rehabilitation started": 10,
        "Oncology treatment started": None,
        # The recurrence's own milestones, counted from its start: only those reached.
        "Recurrence 1 suspected": 0,
    }
    facts = summary.facts(history)
    # Each fact with its day and, after a recurrence, the episode it belongs to.
    # A lesion's scores name the lesion (here the referral's tumour site, T8: the journey
    # charts none) and the day.
    # Against the operation on the lesion (its levels, T7-T9, reach T8): before it.
    assert facts.sins == [
        "9 · Potentially unstable at T8, 10 Jan 2026, before surgery (first episode)"
    ]
    assert facts.bilsky == ["2 at T8, 07 Jan 2026, before surgery (first episode)"]
    assert facts.asia == "C (10 Jan 2026, first episode)"
    grade = "IIIa - intervention without general anaesthesia"  # the grade and its meaning
    assert facts.complications == [(T0 + 9 * DAY, "CSF leak", grade)]
    assert "Decompression · Open · levels T7-T9" in facts.operations[0][1]
    series = {s.key: [(p[0], p[2]) for p in s.points] for s in summary.trends(history)}
    assert series["asia_grade"] == [(T0 + 5 * DAY, "C")]
    assert series["pain_nrs"] == [(T0 + 12 * DAY, "4")]
    assert series["karnofsky"] == [(T0 + 5 * DAY, "60")]


def test_page_shows_the_figures_with_time_frozen(client, users, login, session):
    run = journey(users)
    session.commit()
    login("surgeon")
    with time_machine.travel(NOW, tick=False):
        page = client.get(f"/pathways/{run.pathway.id}").text
    milestones = re.search(
        r'<table class="table table-sm small mb-2 milestones">(.*?)</table>', page, re.S
    ).group(1)
    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td></tr>", milestones)
    assert ("Operation", "13 Jan 2026", "8") in rows
    assert ("MDT decision", "10 Jan 2026", "5") in rows
    # After the recurrence the clocks restart from it (7 March): the 28-day one is due by
    # the end of 4 April, and the page shows its count.
    fds = (
        r"Faster Diagnosis Standard \(28 days\)<br><small[^>]*>day 4 of 28</small></td>"
        r"<td>04 Apr 2026</td><td>[^/]*On track"
    )
    assert re.search(fds, page)
    assert "Post-operative from 13 Jan 2026 09:00 for 2.0 days" in page
    assert "Operation 13 Jan 2026" in page
    assert "CSF leak, Clavien-Dindo IIIa" in page
    for chart in ("gantt-title", "trend-title", "diagram-title"):
        assert f'id="{chart}"' in page


def test_diagram_draws_exactly_the_machine():
    _, edges = graph()
    drawn = svg.diagram("mdt_review", [("referred", "imaging"), ("imaging", "mdt_review")])
    assert [n.state for n in drawn.nodes] == list(MACHINE.states) == list(d.STATES)
    assert drawn.machine_edges() == set(edges)
    assert [n.state for n in drawn.nodes if n.current] == ["mdt_review"]
    assert {(e.source, e.dest) for e in drawn.edges if e.taken} == {
        ("referred", "imaging"),
        ("imaging", "mdt_review"),
    }
    # Transitions open from almost every state are folded into a note, except the one
    # this patient took, drawn on their path.
    assert {f.trigger for f in drawn.folded} == d.from_anywhere()
    assert not any(e.dest in ("deceased", "withdrawn") for e in drawn.edges)
    died = svg.diagram("deceased", [("referred", "imaging"), ("imaging", "deceased")])
    assert died.machine_edges() == set(edges)
    assert [(e.source, e.dest, e.taken) for e in died.edges if e.dest == "deceased"] == [
        ("imaging", "deceased", True)
    ]
    death = next(f for f in died.folded if f.trigger == "record_death")
    assert "imaging" not in death.sources and "referred" in death.sources


def test_rendered_diagram_has_every_state_and_transition(client, users, login, session):
    run = journey(users)
    session.commit()
    login("coordinator")
    page = client.get(f"/pathways/{run.pathway.id}").text
    svg_text = page[page.index('id="diagram-title"') :]
    assert set(re.findall(r'data-state="([a-z_]+)"', svg_text)) == set(d.STATES)
    drawn_pairs = set(re.findall(r'data-source="([a-z_]+)" data-dest="([a-z_]+)"', svg_text))
    # Death, withdrawal and palliative care, open from almost every state, are folded into
    # a note under the diagram (each named once) instead of drawn from every box.
    note = re.search(r'<p class="[^"]*diagram-folded[^"]*">(.*?)</p>', page, re.S).group(1)
    folded = set(re.findall(r'data-trigger="([a-z_]+)" data-dest="([a-z_]+)"', note))
    assert {t for t, _ in folded} == d.from_anywhere()
    assert "Record death (to Deceased)" in note and "Withdraw from pathway (to Withdrawn)" in note
    machine = {(s, t, trigger) for s, t, trigger in graph()[1] if s != t}
    assert drawn_pairs == {
        (s, t) for s, t, trigger in machine if (trigger, t) not in folded or (s, t) in drawn_pairs
    }
    assert not any((s, "deceased") in drawn_pairs for s in d.STATES)  # none taken here
    assert len(drawn_pairs) < len({(s, t) for s, t, _ in machine}) - 10
    taken = set(
        re.findall(
            r'data-source="([a-z_]+)" data-dest="([a-z_]+)" class="svg-edge-taken"', svg_text
        )
    )
    assert ("surveillance", "imaging") in taken and ("mdt_review", "surgery_scheduled") in taken


def test_sign_off_shows_who_and_marks_later_steps(client, users, login, session, now):
    run = journey(users)
    session.commit()
    login("surgeon")
    page = client.get(f"/pathways/{run.pathway.id}").text
    assert "Not yet signed off by a surgeon" in page
    response = client.post(
        f"/pathways/{run.pathway.id}/record/sign_off",
        data={
            "occurred_at": (now - timedelta(minutes=5))
            .astimezone(__import__("zoneinfo").ZoneInfo("Europe/London"))
            .strftime("%Y-%m-%dT%H:%M"),
            "expected_version": str(run.pathway.version),
            "request_id": uuid.uuid4().hex,
        },
    )
    assert response.status_code == 302, response.text
    page = client.get(f"/pathways/{run.pathway.id}").text
    assert "Signed off by <strong>Surgeon</strong>" in page
    assert "Not yet reviewed" not in page
    session.refresh(run.pathway)
    run.do(
        "add_note",
        {"note": "Called the patient."},
        actor=users["coordinator"],
        occurred_at=now - timedelta(minutes=1),
    )
    session.commit()
    page = client.get(f"/pathways/{run.pathway.id}").text
    assert page.count("Not yet reviewed") == 1
    assert "1 step not yet reviewed" in page


def test_print_view_fits_the_overview(client, users, login, session):
    run = journey(users)
    session.commit()
    login("viewer")
    response = client.get(f"/pathways/{run.pathway.id}/print")
    assert response.status_code == 200
    assert "print.css" in response.text and 'id="diagram-title"' in response.text


def test_a_day_0_emergency_path_is_readable_on_the_phase_chart():
    """Minutes-long emergency phases beside months of surveillance: every phase keeps a
    visible width inside the chart, its dates in its title."""
    start = T0
    minutes = timedelta(minutes=20)
    states = ["referred", "imaging", "mdt_review", "surgery_scheduled", "post_op"]
    phases = [
        summary.Phase(state, start + i * minutes, start + (i + 1) * minutes, False)
        for i, state in enumerate(states)
    ]
    phases.append(summary.Phase("surveillance", start + 5 * minutes, start + 300 * DAY, True))
    axis = svg.Axis(start, start + 300 * DAY)
    chart = svg.gantt(phases, axis, open_=True)
    for bar in chart.bars:
        assert bar.w >= svg.MIN_BAR and axis.left <= bar.x and bar.x + bar.w <= axis.right
    assert chart.bars[0].title == "Referred: 05 Jan 2026 to 05 Jan 2026 (0.0 days)"
    # Drawn as is, the emergency phases were under a pixel wide.
    assert axis.x(start + minutes) - axis.x(start) < 1


def test_episodes_and_treatments_are_labelled_on_the_journey(users):
    from tracker.overview.build import build

    run = journey(users)
    history = services.load_history(run.pathway)
    o = build(run.pathway, history, NOW)
    assert [words for _, words, _ in o.gantt.episodes] == [
        "First episode · 05 Jan 2026",
        "Recurrence 1 · 07 Mar 2026",
    ]
    assert o.gantt.episodes[0][0] == svg.Axis(T0, NOW).x(T0)
    assert [(m.kind, m.short) for m in o.marks] == [("mdt", "MDT"), ("operation", "Op")]
    assert o.marks[1].title == "Operation 13 Jan 2026: levels T7-T9"
    # Three days apart on a 65-day axis: room for both labels on one row.
    assert [(m.shown, m.row) for m in o.marks] == [(True, 0), (True, 0)]
    # Closer, they stagger onto a second row; closer still, the label is left out (the
    # line and its title stay).
    axis = svg.Axis(T0, NOW)
    close = [(T0 + DAY * k, "mdt", "MDT", f"MDT {k}") for k in (1, 1.2, 1.4)]
    assert [(m.shown, m.row) for m in svg.marks(close, axis)] == [
        (True, 0),
        (True, 1),
        (False, 0),
    ]
    # The trends share the phase chart's axis and its dates.
    assert o.marks[1].x == svg.Axis(T0, NOW).x(T0 + 8 * DAY)


def test_the_page_labels_episodes_and_marks(client, users, login, session):
    run = journey(users)
    session.commit()
    login("surgeon")
    with time_machine.travel(NOW, tick=False):
        page = client.get(f"/pathways/{run.pathway.id}").text
    assert 'class="svg-episode-label">Recurrence 1 · 07 Mar 2026</text>' in page
    assert '<g class="svg-mark svg-mark-operation" data-kind="operation">' in page
    assert "<td>Post-operative</td><td>13 Jan 2026 09:00</td>" in page  # the phases table
    trends = page[page.index('id="trend-title"') : page.index("</svg>", page.index("trend-title"))]
    assert re.search(r'class="svg-tick" text-anchor="middle">\d\d \w{3}</text>', trends)
