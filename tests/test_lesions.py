"""Lesions (PATHWAY.md, "Lesions"; issue 18): charted one by one by spinal levels or bone,
scored per lesion (SINS and Bilsky on the spine, Mirels on a long bone), named by the steps
that concern them, and read back per lesion with dates.
"""

from __future__ import annotations

import uuid

import pytest

from tests.test_consistency import SINS_UNSTABLE, decide, refused, run_to
from tracker.engine import services
from tracker.engine.errors import InvalidData
from tracker.engine.fields import SpinalLevels, expand_levels

LEVELS = SpinalLevels("levels", "Levels")
SINS_10 = {  # 1 + 3 + 2 + 2 + 2 + 0
    "location": 1,
    "pain": 3,
    "bone_lesion": 2,
    "alignment": 2,
    "collapse": 2,
    "posterolateral": 0,
}
MIRELS_9 = {"site": 2, "pain": 2, "lesion": 3, "size": 2}
FEMUR = {"lesion_ref": "left femur", "bone": "femur", "side": "left", "finding": "new"}


# -- spinal levels --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("T8", "T8"),
        ("t11-l1", "T11-L1"),
        ("T4, T8-T10", "T4, T8-T10"),
        ("C1-S5", "C1-S5"),
        (" L5 ,S1 ", "L5, S1"),
        ("T11\u2013L1", "T11-L1"),  # an en dash, as word processors type it
    ],
)
def test_levels_are_kept_in_one_spelling(typed, stored):
    assert LEVELS.check(typed) == stored


@pytest.mark.parametrize(
    ("typed", "why"),
    [
        ("T13", "'T13' is not a spinal level"),
        ("S6", "'S6' is not a spinal level"),
        ("L1-T11", "the range L1-T11 runs upwards: write it T11-L1"),
        ("T8, T6", "T6 comes after T8 in the list"),
        ("T6-T9, T8", "T8 comes after T9 in the list"),
        ("T8-T8", "the range T8-T8 is one level: write T8"),
        ("T8-T9-T10", "is not a level or a range of levels"),
        ("thoracic", "'THORACIC' is not a spinal level"),
        (",", "must not be blank"),
    ],
)
def test_levels_that_are_not_real_or_not_in_order_are_refused(typed, why):
    with pytest.raises(ValueError) as refused_:
        LEVELS.check(typed)
    assert why in str(refused_.value)
    assert any(how in str(refused_.value) for how in ("C1 to S5", "write", "head to tail"))


def test_a_range_covers_every_level_between():
    assert expand_levels("T11-L1") == ["T11", "T12", "L1"]
    assert expand_levels("C7-T1, S5") == ["C7", "T1", "S5"]


# -- charting a lesion ----------------------------------------------------------------------


def chart(run, **data):
    return run.do("record_lesion", data)


def test_a_spinal_lesion_keeps_its_sins_and_bilsky(users):
    run = run_to(users, "imaging")
    event = chart(run, levels="t8", finding="new", sins=SINS_10, bilsky_grade="2").event
    assert event.data["levels"] == "T8"
    assert event.data["sins_total"] == 10 and event.data["sins_band"] == "potentially_unstable"
    (lesion,) = services.load_history(run.pathway).lesions()
    assert (lesion.ref, lesion.site, lesion.spinal, lesion.finding) == ("T8", "T8", True, "new")
    assert lesion.latest("bilsky_grade").get("bilsky_grade") == "2"


def test_a_femoral_lesion_keeps_its_mirels_score(users):
    run = run_to(users, "imaging")
    event = chart(run, **FEMUR, mirels=MIRELS_9).event
    assert event.data["mirels_total"] == 9 and event.data["mirels_band"] == "fixation_recommended"
    (lesion,) = services.load_history(run.pathway).lesions()
    assert (lesion.ref, lesion.site, lesion.where) == (
        "left femur",
        "left femur",
        "of the left femur",
    )
    assert lesion.latest("mirels_total").get("mirels_total") == 9


def test_a_lesion_without_a_label_is_labelled_by_its_site(users):
    run = run_to(users, "imaging")
    chart(run, levels="T11-L1", finding="new")
    chart(run, bone="humerus", side="right", finding="new")
    refs = [lesion.ref for lesion in services.load_history(run.pathway).lesions()]
    assert refs == ["T11-L1", "right humerus"]


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({"finding": "new"}, "levels", "not neither"),
        ({"finding": "new", "levels": "T8", "bone": "femur"}, "levels", "not both"),
        (
            {"finding": "new", "levels": "T8", "mirels": MIRELS_9},
            "mirels",
            "for a lesion of a bone",
        ),
        ({"finding": "new", "levels": "T8", "side": "left"}, "side", "for a lesion of a bone"),
        ({**FEMUR, "sins": SINS_10}, "sins", "describes a spinal lesion"),
        ({**FEMUR, "bilsky_grade": "1a"}, "bilsky_grade", "describes a spinal lesion"),
        (
            {"bone": "pelvis", "finding": "new", "mirels": {**MIRELS_9, "site": 3}},
            "mirels",
            "for a long bone",
        ),
        (
            {"bone": "humerus", "finding": "new", "mirels": MIRELS_9},
            "mirels.site",
            "upper limb: the Mirels site is 1",
        ),
        (
            {"bone": "tibia", "finding": "new", "mirels": {**MIRELS_9, "site": 3}},
            "mirels.site",
            "Peritrochanteric (3) is a site of the femur",
        ),
        (
            {**FEMUR, "mirels": {**MIRELS_9, "site": 1}},
            "mirels.site",
            "lower limb: the Mirels site is 2",
        ),
        ({"levels": "T13", "finding": "new"}, "levels", "'T13' is not a spinal level"),
        ({"levels": "T8", "finding": "gone"}, "finding", "must be one of"),
        ({"levels": "T8", "finding": "new", "lesion_ref": "T8, T9"}, "lesion_ref", "commas"),
    ],
)
def test_a_lesion_is_on_the_spine_or_a_bone_and_scored_as_such(users, data, field, words):
    run = run_to(users, "imaging")
    errors = refused(lambda: chart(run, **data))
    assert words in " ".join(errors[field])
    assert services.load_history(run.pathway).lesions() == []


def test_charting_a_label_again_updates_that_lesion(users):
    run = run_to(users, "imaging")
    chart(run, lesion_ref="T8", levels="T8", finding="new", sins=SINS_UNSTABLE)
    chart(run, lesion_ref="t8", levels="T8-T9", finding="progressing", sins=SINS_10)
    (lesion,) = services.load_history(run.pathway).lesions()
    assert lesion.levels == "T8-T9" and lesion.finding == "progressing"
    assert [r.get("sins_total") for r in lesion.readings] == [16, 10]
    assert lesion.latest("sins_total").get("sins_total") == 10
    # A spinal lesion's label cannot be given to a bone.
    errors = refused(lambda: chart(run, lesion_ref="T8", bone="rib", finding="new"))
    assert "'T8' is a lesion at T8-T9, and this gives it a bone" in errors["lesion_ref"][0]


# -- naming the lesions a step concerns -----------------------------------------------------


def imaging(run, **extra):
    data = {"modality": "mri", "region": "Spine", "findings": "Lesions.", **extra}
    return run.do("record_imaging", data)


def test_imaging_names_lesions_charted_before_it(users):
    run = run_to(users, "imaging")
    errors = refused(lambda: imaging(run, lesions=["T8"]))
    assert errors["lesions"] == [
        "Lesions names 'T8', which is not a lesion of this pathway (recorded by then: "
        "none yet): record it first with 'Record lesion', or name a recorded one"
    ]
    chart(run, levels="T8", finding="new")
    chart(run, **FEMUR)
    errors = refused(lambda: imaging(run, lesions=["T8", "L1"]))
    assert "'L1'" in errors["lesions"][0] and "T8, left femur" in errors["lesions"][0]
    event = imaging(run, lesions=["t8", "Left Femur"]).event
    assert event.data["lesions"] == ["t8", "Left Femur"]
    by_ref = {lesion.ref: lesion for lesion in services.load_history(run.pathway).lesions()}
    assert [link.seq for link in by_ref["T8"].links] == [event.seq]
    assert [link.seq for link in by_ref["left femur"].links] == [event.seq]


def test_a_bilsky_grade_on_imaging_describes_the_one_lesion_named(users):
    run = run_to(users, "imaging")
    chart(run, levels="T8", finding="new")
    chart(run, levels="L1", finding="new")
    errors = refused(lambda: imaging(run, lesions=["T8", "L1"], bilsky_grade="2"))
    assert "describes one lesion, and this report names 2" in errors["bilsky_grade"][0]
    imaging(run, lesions=["L1"], bilsky_grade="2")
    by_ref = {lesion.ref: lesion for lesion in services.load_history(run.pathway).lesions()}
    assert by_ref["L1"].latest("bilsky_grade").get("bilsky_grade") == "2"
    assert by_ref["T8"].latest("bilsky_grade") is None


def test_the_mdt_names_the_spinal_lesion_its_sins_describes(users):
    run = run_to(users, "mdt_review")
    chart(run, levels="T8", finding="new")
    chart(run, **FEMUR, mirels=MIRELS_9)
    errors = refused(lambda: decide(run, sins=SINS_10, lesion="left femur"))
    assert (
        "a lesion of the left femur: SINS and Bilsky describe a spinal lesion"
        in (errors["lesion"][0])
    )
    errors = refused(lambda: decide(run, lesion="T8"))
    assert "with a SINS or a Bilsky grade" in errors["lesion"][0]
    event = decide(run, sins=SINS_10, bilsky_grade="1c", lesion="T8").event
    (t8, femur) = services.load_history(run.pathway).lesions()
    reading = t8.latest("sins_total")
    assert (reading.seq, reading.get("sins_total"), reading.get("bilsky_grade")) == (
        event.seq,
        10,
        "1c",
    )
    assert (
        femur.latest("sins_total") is None and femur.latest("mirels_total").get("mirels_total") == 9
    )


def test_operations_and_radiotherapy_name_their_lesions_and_levels(users):
    run = run_to(users, "mdt_review")
    chart(run, levels="T7-T9", finding="new")
    decide(run)
    run.do("record_preop_assessment", {"asa_grade": 2, "consent_taken": True})
    surgery = run.do(
        "record_surgery",
        {
            "lead_surgeon": "surgeon",
            "procedures": ["decompression", "stabilisation_fusion"],
            "approach": "open",
            "levels": "T8",
            "instrumented_levels": "t6-t10",
            "lesions": ["T7-T9"],
        },
    ).event
    assert surgery.data["instrumented_levels"] == "T6-T10"
    run.do("start_oncology_treatment", {})
    day = run.t.date().isoformat()
    errors = refused(
        lambda: run.do(
            "record_treatment", {"modality": "chemotherapy", "start_date": day, "levels": "T8"}
        )
    )
    assert "for radiotherapy" in errors["levels"][0]
    treatment = run.do(
        "record_treatment",
        {
            "modality": "sbrt",
            "start_date": day,
            "dose_gy": 24,
            "fractions": 3,
            "levels": "T7-T9",
            "lesions": ["T7-T9"],
        },
    ).event
    by_ref = {lesion.ref: lesion for lesion in services.load_history(run.pathway).lesions()}
    assert [link.seq for link in by_ref["T7-T9"].links] == [surgery.seq, treatment.seq]
    assert by_ref["T8"].from_referral and by_ref["T8"].links == []  # the imaging's Bilsky


def test_a_correction_that_unnames_a_lesion_a_later_step_names_is_refused(users):
    run = run_to(users, "imaging")
    charted = chart(run, lesion_ref="T8", levels="T8", finding="new").event
    imaging(run, lesions=["T8"])
    with pytest.raises(InvalidData) as caught:
        services.amend(
            run.pathway,
            charted.seq,
            {"lesion_ref": "T9", "levels": "T9"},
            "wrong level",
            run.actor,
            run.pathway.version,
            uuid.uuid4().hex,
        )
    assert "names 'T8', which is not a lesion of this pathway" in str(caught.value.errors)


# -- scores recorded before lesions: the referral's tumour site ---------------------------


def test_scores_without_a_lesion_belong_to_the_referrals_tumour_site(users):
    """Pathway-level SINS and Bilsky values (recorded before lesions were charted, or on an
    MDT form that names none) are read as the lesion named after the referral's
    tumour_site: a reading, so the append-only event log is never rewritten."""
    run = run_to(users, "imaging", tumour_site="T7-T9")
    imaging(run, bilsky_grade="1b")  # names no lesion
    run.do("refer_to_mdt", {})
    first = decide(run, "request_imaging", sins=SINS_UNSTABLE).event
    chart(run, lesion_ref="L1", levels="L1", finding="new", bilsky_grade="0")
    history = services.load_history(run.pathway)
    site, l1 = history.lesions()
    assert (site.ref, site.levels, site.from_referral) == ("T7-T9", "T7-T9", True)
    assert [(r.get("bilsky_grade"), r.get("sins_total")) for r in site.readings] == [
        ("1b", None),
        (None, 16),
    ]
    assert site.latest("sins_total").seq == first.seq
    assert (l1.ref, l1.from_referral, l1.latest("bilsky_grade").get("bilsky_grade")) == (
        "L1",
        False,
        "0",
    )
    # The referral's lesion can be named like any other.
    assert imaging(run, lesions=["T7-T9"]).created


def test_a_tumour_site_charted_as_a_lesion_gathers_the_earlier_scores(users):
    run = run_to(users, "imaging", tumour_site="T8")
    imaging(run, bilsky_grade="2")
    chart(run, lesion_ref="T8", levels="T8", finding="progressing")
    (lesion,) = services.load_history(run.pathway).lesions()
    assert lesion.from_referral is False
    assert [r.get("bilsky_grade") for r in lesion.readings] == ["2", None]


def test_no_scores_no_referral_lesion(users):
    run = run_to(users, "imaging")
    assert services.load_history(run.pathway).lesions() == []


# -- the overview: key facts per lesion, a table per lesion --------------------------------


def three_lesions(users):
    """T8 scored at the MDT, L1 charted with its own SINS later, a left femur with Mirels."""
    run = run_to(users, "mdt_review", tumour_site="T8")
    chart(run, lesion_ref="T8", levels="T8", finding="new", sins=SINS_UNSTABLE, bilsky_grade="2")
    chart(run, **FEMUR, mirels=MIRELS_9)
    decide(run, "request_imaging", sins=SINS_10, lesion="T8")
    chart(run, lesion_ref="L1", levels="L1", finding="new", bilsky_grade="1a")
    return run


def test_the_key_facts_name_the_lesion_and_day_of_each_score(users):
    from tracker.overview import summary

    run = three_lesions(users)
    history = services.load_history(run.pathway)
    facts = summary.facts(history)
    day = f"{run.t:%d %b %Y}"
    t8 = history.lesions()[0].latest("sins_total")
    assert facts.sins == [f"10 · Potentially unstable at T8, {t8.at:%d %b %Y}"]
    # Newest first: L1's grade, then T8's (its MDT gave a SINS only; its chart the grade).
    assert facts.bilsky[0] == f"1a at L1, {day}" and facts.bilsky[1].startswith("2 at T8, ")
    assert facts.mirels[0].startswith("9 · Impending fracture of the left femur, ")
    tables = {t.lesion.ref: t for t in summary.lesion_tables(history)}
    assert list(tables) == ["T8", "left femur", "L1"]
    assert [(r.source, r.sins, r.bilsky) for r in tables["T8"].rows] == [
        ("Imaging reported", "", "1b"),  # the walk's MRI names no lesion: the tumour site's
        ("Lesion charted", "16 · Unstable", "2"),
        ("Request imaging", "10 · Potentially unstable", ""),
    ]
    assert tables["left femur"].recommendation == "9 or more: prophylactic fixation recommended."
    assert tables["left femur"].rows[0].mirels == "9 · Impending fracture"
    assert tables["L1"].finding == "New" and tables["L1"].recommendation is None


def test_the_overview_shows_a_table_per_lesion(client, users, login, session):
    run = three_lesions(users)
    session.commit()
    login("surgeon")
    page = client.get(f"/pathways/{run.pathway.id}").text
    assert page.count('<table class="table table-sm small mb-1 lesion-history">') == 3
    assert "Latest Mirels" in page and "prophylactic fixation recommended" in page
    assert "10 · Potentially unstable at T8, " in page


# -- the API ----------------------------------------------------------------------------------


def test_the_api_gives_the_pathways_lesions(client, users, session):
    from tracker.api.services import create_token

    run = three_lesions(users)
    _, plain = create_token(users["viewer"], "test")
    session.commit()
    headers = {"Authorization": f"Bearer {plain}"}
    body = client.get(f"/api/v1/pathways/{run.pathway.id}", headers=headers).json
    lesions = {lesion["ref"]: lesion for lesion in body["lesions"]}
    assert list(lesions) == ["T8", "left femur", "L1"]
    t8, femur = lesions["T8"], lesions["left femur"]
    assert (t8["levels"], t8["bone"], t8["from_referral"], t8["finding"]) == (
        "T8",
        None,
        False,
        "new",
    )
    assert (t8["latest"]["sins"]["value"], t8["latest"]["sins"]["band"]) == (
        10,
        "potentially_unstable",
    )
    assert t8["latest"]["bilsky_grade"]["value"] == "2"
    assert [r["trigger"] for r in t8["readings"]] == [
        "record_imaging",
        "record_lesion",
        "request_imaging",
    ]
    assert femur["latest"]["mirels"] == {
        "value": 9,
        "band": "fixation_recommended",
        "recommendation": "9 or more: prophylactic fixation recommended.",
        "seq": femur["charted_seq"],
        "occurred_at": femur["readings"][0]["occurred_at"],
    }
    assert (femur["bone"], femur["side"], femur["site"]) == ("femur", "left", "left femur")
    # The OpenAPI document describes what is sent.
    schema = client.get("/api/openapi.json").json["components"]["schemas"]["Lesion"]
    assert set(schema["required"]) <= set(t8) and set(t8) <= set(schema["properties"])
    steps = client.get("/api/openapi.json").json["components"]["schemas"]
    assert steps["record_lesion_data"]["properties"]["mirels"]["required"] == [
        "site",
        "pain",
        "lesion",
        "size",
    ]
    # FHIR: Mirels is an Observation with its components, as SINS is.
    bundle = client.get(f"/api/v1/pathways/{run.pathway.id}/fhir", headers=headers).json
    (mirels,) = [
        entry["resource"]
        for entry in bundle["entry"]
        if entry["resource"]["resourceType"] == "Observation"
        and entry["resource"]["code"]["coding"][0]["code"] == "mirels"
    ]
    assert mirels["valueInteger"] == 9
    assert mirels["interpretation"] == [{"text": "Impending fracture"}]
    assert [c["valueInteger"] for c in mirels["component"]] == [2, 2, 3, 2]


# -- the demo -----------------------------------------------------------------------------


def test_the_demo_charts_lesions_that_hold_on_their_own_history(session):
    from sqlalchemy import select

    from tracker.demo import seed
    from tracker.engine import timing
    from tracker.engine.history import History
    from tracker.engine.models import Event, Pathway
    from tracker.extensions import db

    seed(200, seed_value=9)
    session.flush()
    events: dict[int, list] = {}
    for e in db.session.scalars(select(Event).order_by(Event.pathway_id, Event.seq)):
        events.setdefault(e.pathway_id, []).append(e)
    several, femoral, recurrence_elsewhere, treated = 0, 0, 0, set()
    for p in db.session.scalars(select(Pathway)):
        history = History.from_events(events[p.id])
        # Every lesion a step names was charted by then, every step where it may stand.
        assert timing.problems(history, p.opened_at.replace(year=2999)) == {}, p.id
        lesions = history.lesions()
        if any(e.trigger == "record_imaging" for e in events[p.id]):
            assert lesions, p.id
        if p.diagnosis_category == "metastatic_spinal" and lesions:
            assert len(lesions) >= 2, p.id  # several lesions per metastatic patient
            several += 1
        for lesion in lesions:
            reading = lesion.latest("mirels_total")
            if lesion.bone == "femur" and reading is not None:
                femoral += 1
            if (
                not lesion.from_referral
                and lesion.ref != p.tumour_site
                and any(history.episode_of(history.by_seq[r.seq]) for r in lesion.readings)
            ):
                recurrence_elsewhere += 1
            treated |= {link.trigger for link in lesion.links}
    assert several > 0
    assert femoral > 0 and recurrence_elsewhere > 0
    assert treated >= {"record_imaging", "record_surgery", "record_treatment"}


# -- the forms --------------------------------------------------------------------------------


def test_the_forms_chart_a_lesion_and_name_it_on_imaging_and_the_mdt(client, users, login, session):
    from tests.test_consistency import as_form
    from tests.test_routes_pathway import field_error, mdt_post, step_post, url

    run = run_to(users, "mdt_review")
    session.commit()
    login("surgeon")
    pathway = run.pathway
    lesion = step_post(
        pathway,
        lesion_ref="left femur",
        bone="femur",
        side="left",
        finding="new",
        **as_form("mirels", MIRELS_9),
    )
    response = client.post(url(pathway, "/record/record_lesion"), data=lesion)
    assert response.status_code == 302, field_error(response, "mirels")
    response = client.post(
        url(pathway, "/record/record_lesion"),
        data=step_post(pathway, levels="T8, T6", finding="new"),
    )
    assert response.status_code == 422
    assert "T6 comes after T8 in the list" in field_error(response, "levels")
    assert (
        client.post(
            url(pathway, "/record/record_lesion"),
            data=step_post(pathway, levels="t8", finding="new"),
        ).status_code
        == 302
    )
    # The MDT form asks which lesion its SINS describes; a bone is refused beside the field.
    body = mdt_post(pathway, lesion="left femur", **as_form("sins", SINS_10))
    response = client.post(url(pathway, "/mdt-outcome"), data=body)
    assert response.status_code == 422
    assert "SINS and Bilsky describe a spinal lesion" in field_error(response, "lesion")
    body = mdt_post(pathway, lesion="T8", **as_form("sins", SINS_10))
    assert client.post(url(pathway, "/mdt-outcome"), data=body).status_code == 302
    history = services.load_history(pathway)
    by_ref = {lesion.ref: lesion for lesion in history.lesions()}
    assert by_ref["T8"].latest("sins_total").get("sins_total") == 10
    assert by_ref["left femur"].latest("mirels_total").get("mirels_total") == 9
    page = client.get(url(pathway)).text
    assert "9 or more: prophylactic fixation recommended." in page


def test_a_corrected_tumour_site_moves_the_referrals_lesion(users):
    run = run_to(users, "imaging", tumour_site="T8")
    imaging(run, bilsky_grade="2")
    services.amend(
        run.pathway,
        1,
        {"tumour_site": "T9"},
        "wrong level on the referral",
        run.actor,
        run.pathway.version,
        uuid.uuid4().hex,
    )
    (lesion,) = services.load_history(run.pathway).lesions()
    assert (lesion.ref, lesion.levels, lesion.from_referral) == ("T9", "T9", True)
    # Once a step names the referral's lesion, a correction that takes it away is refused.
    imaging(run, lesions=["T9"])
    with pytest.raises(InvalidData) as caught:
        services.amend(
            run.pathway,
            1,
            {"tumour_site": "T10"},
            "again",
            run.actor,
            run.pathway.version,
            uuid.uuid4().hex,
        )
    assert "names 'T9', which is not a lesion of this pathway" in str(caught.value.errors)
