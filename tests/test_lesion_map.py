"""The spine and skeleton map (issue 18, item 2): every level C1-S5 labelled, each lesion at
its levels or bone with its latest band, what was done to it beside the column, and the
map as it stood at each MDT."""

from __future__ import annotations

import re

from tests.test_consistency import decide, run_to
from tests.test_lesions import FEMUR, MIRELS_9, SINS_10, chart
from tracker.engine import services
from tracker.engine.fields import SPINAL_LEVELS, expand_levels
from tracker.engine.scores import MIRELS, SINS
from tracker.overview import lesion_map

SINS_16 = {
    "location": 3,
    "pain": 3,
    "bone_lesion": 2,
    "alignment": 4,
    "collapse": 3,
    "posterolateral": 1,
}


def treated_pathway(users):
    """T7-T9 (unstable, Bilsky 2), L1 (potentially unstable) and the left femur (Mirels 9);
    an MDT, an operation at T8 instrumented T6-T10, then SBRT to T7-T9."""
    run = run_to(users, "mdt_review")
    chart(run, levels="T7-T9", finding="new", sins=SINS_16, bilsky_grade="2")
    chart(run, lesion_ref="L1", levels="L1", finding="new", sins=SINS_10)
    chart(run, **FEMUR, mirels=MIRELS_9)
    mdt = decide(run, "plan_surgery", lesion="T7-T9", bilsky_grade="2").event
    run.do("record_preop_assessment", {"asa_grade": 2, "consent_taken": True})
    run.do(
        "record_surgery",
        {
            "lead_surgeon": "surgeon",
            "procedures": ["decompression", "stabilisation_fusion"],
            "approach": "open",
            "levels": "T8",
            "instrumented_levels": "T6-T10",
            "lesions": ["T7-T9"],
        },
    )
    run.do("start_oncology_treatment", {})
    run.do(
        "record_treatment",
        {
            "modality": "sbrt",
            "start_date": run.t.date().isoformat(),
            "dose_gy": 24,
            "fractions": 3,
            "levels": "T7-T9",
            "lesions": ["T7-T9"],
        },
    )
    return run, mdt


def top(level: str) -> float:
    return lesion_map.level_y(level)


def test_the_map_draws_each_lesion_at_its_levels_with_its_band(users):
    run, _ = treated_pathway(users)
    m = lesion_map.build(services.load_history(run.pathway))
    assert [label for label, _ in m.levels] == list(SPINAL_LEVELS)
    assert len(m.levels) == 29 and m.levels[0][0] == "C1" and m.levels[-1][0] == "S5"
    spinal = {s.ref: s for s in m.spinal}
    # Head to tail; T8 is the referral's tumour site, graded on the walk's MRI.
    assert list(spinal) == ["T7-T9", "T8", "L1"]
    assert spinal["T8"].band.key == "none"
    assert spinal["T8"].label == "T8 · SINS not scored · Bilsky 1b"
    assert spinal["T7-T9"].ys == [top("T7"), top("T8"), top("T9")]
    assert (spinal["T7-T9"].band.key, spinal["T7-T9"].bilsky) == ("high", "2")
    assert spinal["T7-T9"].label == "T7-T9 · SINS 16 · Bilsky 2"
    assert spinal["T7-T9"].more == "unstable"
    assert (spinal["L1"].band.key, spinal["L1"].bilsky) == ("mid", None)
    (femur,) = m.bones
    assert (femur.ref, femur.band.key) == ("left femur", "high")
    assert femur.x > lesion_map.SKELETON_X  # the patient's left, on the viewer's right
    assert femur.label == "Left femur: Mirels 9 impending fracture, fixation recommended"
    # Drawn on two lines: on one, a long bone's label ran past the chart's right edge.
    assert (femur.head, femur.more) == (
        "Left femur: Mirels 9",
        "impending fracture, fixation recommended",
    )
    # What was done, beside the column.
    (rod,) = m.instrumented
    assert (rod.first, rod.last) == (top("T6"), top("T10") + lesion_map.LEVEL_H)
    (operated,) = m.operated
    assert (operated.first, operated.last) == (top("T8"), top("T8") + lesion_map.LEVEL_H)
    (field,) = m.fields
    assert (field.first, field.dose) == (top("T7"), "24 Gy/3")
    assert field.title.startswith("SBRT T7-T9 24 Gy/3")
    # The journey marks the radiotherapy as it marks the operation and the MDT decision.
    from tracker.overview import summary

    kinds = [kind for _, kind, _, _ in summary.journey_marks(services.load_history(run.pathway))]
    assert sorted(kinds) == ["mdt", "operation", "radiotherapy"]
    rows = {row[0]: row for row in m.rows}
    assert "Instrumented T6-T10" in rows["T7-T9"][4] and "SBRT T7-T9" in rows["T7-T9"][4]
    assert rows["L1"][4] == "none"


def test_the_map_as_at_an_mdt_shows_what_stood_then(users):
    run, mdt = treated_pathway(users)
    history = services.load_history(run.pathway)
    then = lesion_map.build(history, mdt.seq)
    assert then.as_of == mdt.occurred_at
    assert then.instrumented == [] and then.operated == [] and then.fields == []
    assert [s.ref for s in then.spinal] == ["T7-T9", "T8", "L1"]
    assert [(s.words, s.current) for s in then.snapshots] == [
        (f"MDT {mdt.occurred_at:%d %b %Y}: surgery", True)
    ]
    # A step that is not an MDT decision shows today's map.
    assert lesion_map.build(history, 1).as_of is None
    assert lesion_map.build(history, 10**6).as_of is None


def map_of(page: str) -> str:
    start = page.index('<svg id="lesion-map"')
    return page[start : page.index("</svg>", start)]


def test_the_page_draws_the_map_and_its_table(client, users, login, session):
    run, mdt = treated_pathway(users)
    session.commit()
    login("surgeon")
    page = client.get(f"/pathways/{run.pathway.id}").text
    svg = map_of(page)
    labels = re.findall(r'text-anchor="end" class="lm-level[^"]*">(\w+)<', svg)
    assert labels == list(SPINAL_LEVELS)
    drawn = dict(re.findall(r'data-levels="([^"]+)" data-band="(\w+)"', svg))
    assert drawn == {"T7-T9": "high", "T8": "none", "L1": "mid"}
    assert 'data-lesion="left femur" data-band="high"' in svg
    # The bone's key on two lines, each within the chart's 500 units at 11 px.
    assert '<tspan class="lm-key-text">1</tspan> Left femur: Mirels 9</text>' in svg
    assert 'class="lm-label-more">impending fracture, fixation recommended</text>' in svg
    assert "<title>Instrumented T6-T10," in svg and "<title>Operated T8," in svg
    assert ">24 Gy/3</text>" in svg
    assert "<title>Lesion T7-T9 · SINS 16 · Bilsky 2: unstable</title>" in svg
    table = page[page.index('class="table table-sm small lesion-map-table') :]
    assert "<td>T7-T9</td><td>T7-T9</td><td>SINS 16 unstable</td><td>2</td>" in table
    assert f'href="?map_at={mdt.seq}#lesion-map"' in page
    then = client.get(f"/pathways/{run.pathway.id}?map_at={mdt.seq}").text
    assert "as they stood at the MDT of" in then
    svg_then = map_of(then)
    assert "Instrumented T6-T10" not in svg_then and "24 Gy/3" not in svg_then
    for odd in ("abc", "-1", "99999999999999999999", "1"):  # today's map, whatever is sent
        response = client.get(f"/pathways/{run.pathway.id}?map_at={odd}")
        assert response.status_code == 200 and "as they stood" not in response.text
    printed = client.get(f"/pathways/{run.pathway.id}/print").text
    assert 'id="lesion-map"' in printed


def test_every_demo_lesion_is_drawn_at_its_levels_with_the_right_band(session):
    from sqlalchemy import select

    from tracker.demo import seed
    from tracker.engine.history import History
    from tracker.engine.models import Event, Pathway
    from tracker.extensions import db

    seed(80, seed_value=9)
    session.flush()
    events: dict[int, list] = {}
    for e in db.session.scalars(select(Event).order_by(Event.pathway_id, Event.seq)):
        events.setdefault(e.pathway_id, []).append(e)
    drawn_spinal = drawn_bones = operated = irradiated = 0
    for p in db.session.scalars(select(Pathway)):
        history = History.from_events(events[p.id])
        m = lesion_map.build(history)
        marks = {s.ref: s for s in m.spinal}
        bones = {b.ref: b for b in m.bones}
        for lesion in history.lesions():
            if lesion.levels:
                mark = marks[lesion.ref]
                assert mark.ys == [top(level) for level in expand_levels(lesion.levels)]
                reading = lesion.latest("sins_total")
                band = SINS.band(reading.get("sins_total"))[0] if reading else None
                assert mark.band.key == lesion_map.BAND_KEY.get(band, "none"), (p.id, lesion.ref)
                drawn_spinal += 1
            elif lesion.bone:
                reading = lesion.latest("mirels_total")
                band = MIRELS.band(reading.get("mirels_total"))[0] if reading else None
                assert bones[lesion.ref].band.key == lesion_map.BAND_KEY.get(band, "none")
                drawn_bones += 1
        for step in history.counting():
            if step.trigger == "record_surgery" and step.data.get("instrumented_levels"):
                span = expand_levels(step.data["instrumented_levels"])
                assert any(s.first == top(span[0]) for s in m.instrumented), p.id
                operated += 1
            if step.trigger == "record_treatment" and step.data.get("levels"):
                assert any(f.first == top(expand_levels(step.data["levels"])[0]) for f in m.fields)
                irradiated += 1
    assert drawn_spinal and drawn_bones and operated and irradiated


def test_lesions_are_fhir_conditions_their_scores_observations_about_them(client, users, session):
    from fhir.resources.R4B.bundle import Bundle

    from tests.test_api import _codes
    from tracker.api import fhir
    from tracker.api.services import create_token

    run, _ = treated_pathway(users)
    _, plain = create_token(users["viewer"], "test")
    session.commit()
    headers = {"Authorization": f"Bearer {plain}"}
    body = client.get(f"/api/v1/pathways/{run.pathway.id}/fhir", headers=headers).json
    Bundle.model_validate(body)
    resources = [entry["resource"] for entry in body["entry"]]
    for resource in resources:
        for field, code in _codes(resource):
            assert code in fhir.VALUE_SETS[field], (field, code)
    lesions = {
        r["identifier"][0]["value"]: r
        for r in resources
        if r["resourceType"] == "Condition" and r.get("identifier")
    }
    assert list(lesions) == ["T8", "T7-T9", "L1", "left femur"]
    spine, femur = lesions["T7-T9"], lesions["left femur"]
    # A metastatic lesion: SNOMED CT's secondary malignant neoplasm of bone, and our kind.
    assert spine["code"]["coding"][0] == {
        "system": fhir.SNOMED,
        "code": "94222008",
        "display": "Secondary malignant neoplasm of bone",
    }
    assert spine["code"]["coding"][1]["code"] == "spinal-lesion"
    # The body site: each vertebral level (the project's codes: SNOMED CT has none we use).
    assert [s["coding"][0] for s in spine["bodySite"]] == [
        {"system": f"{fhir.CS}spinal-level", "code": level, "display": f"{level} vertebra"}
        for level in ("T7", "T8", "T9")
    ]
    assert femur["bodySite"] == [
        {
            "coding": [{"system": fhir.SNOMED, "code": "71341001", "display": "Femur"}],
            "text": "Left femur",
        }
    ]
    for condition in lesions.values():
        for site in condition["bodySite"]:
            coding = site["coding"][0]
            if coding["system"] == fhir.SNOMED:
                assert (coding["code"], coding["display"]) in fhir.BONE_SNOMED.values()
            else:
                assert coding["system"].startswith(fhir.CS)
                if coding["system"].endswith("spinal-level"):
                    assert coding["code"] in SPINAL_LEVELS
    assert lesions["T8"]["verificationStatus"]["coding"][0]["code"] == "provisional"
    assert spine["verificationStatus"]["coding"][0]["code"] == "confirmed"
    # Each score's Observation is about its lesion (focus); Mirels has its components.
    by_id = {entry["fullUrl"]: entry["resource"] for entry in body["entry"]}
    about: dict[str, list[tuple[str, object]]] = {}
    for r in resources:
        if r["resourceType"] == "Observation" and "focus" in r:
            (ref,) = r["focus"]
            lesion = by_id[ref["reference"]]["identifier"][0]["value"]
            value = r.get("valueInteger", r.get("valueString"))
            about.setdefault(lesion, []).append((r["code"]["coding"][0]["code"], value))
    assert about["T7-T9"] == [("sins", 16), ("bilsky_grade", "2"), ("bilsky_grade", "2")]
    assert about["L1"] == [("sins", 10)]
    assert about["left femur"] == [("mirels", 9)]
    assert about["T8"] == [("bilsky_grade", "1b")]  # the walk's MRI, the referral's site
    (mirels,) = [
        r
        for r in resources
        if r["resourceType"] == "Observation" and r["code"]["coding"][0]["code"] == "mirels"
    ]
    assert [c["code"]["coding"][0]["code"] for c in mirels["component"]] == [
        "site",
        "pain",
        "lesion",
        "size",
    ]
    # The operation names the lesion it treated.
    (operation,) = [
        r for r in resources if r["resourceType"] == "Procedure" and "reasonReference" in r
    ]
    assert operation["reasonReference"] == [{"reference": f"urn:uuid:{spine['id']}"}]


def test_key_facts_say_when_each_score_was_given_against_the_fixation(users):
    from tracker.overview import summary

    run, _ = treated_pathway(users)
    history = services.load_history(run.pathway)
    sins = summary.facts(history).sins
    (t7_t9,) = [line for line in sins if " at T7-T9, " in line]
    assert t7_t9.startswith("16 · Unstable at T7-T9, ") and t7_t9.endswith(", before fixation")
    (l1,) = [line for line in sins if " at L1, " in line]
    assert "fixation" not in l1  # no operation reached L1
    operation = next(s for s in history.counting() if s.trigger == "record_surgery")
    chart(run, lesion_ref="T7-T9", levels="T7-T9", finding="stable", sins=SINS_10)
    after = summary.facts(services.load_history(run.pathway)).sins
    assert after[0].startswith("10 · Potentially unstable at T7-T9, ")
    assert after[0].endswith(f", after fixation on {operation.occurred_at:%d %b %Y}")
