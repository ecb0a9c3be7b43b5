"""Scores that agree with each other, the MDT form's starting values and the NOMS reading
(PATHWAY.md, "Scores agree with each other" and "NOMS"; issue 14, item 5).

Each refusal is tried with its accepted neighbour: in the services, on the web forms (the
message beside the field) and on the API (422 naming the field).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers import Driver, new_pathway, valid_data
from tests.test_mdt_meetings import _list, _meeting
from tests.test_routes_pathway import field_error, mdt_post, shown, step_post, url
from tracker.api.services import create_token
from tracker.engine import consistency, services
from tracker.engine.errors import InvalidData, TriggerNotAllowed

TOKUHASHI = {  # 2 + 1 + 1 + 2 + 5 + 2 = 13
    "general_condition": 2,
    "extraspinal_bone_metastases": 1,
    "vertebral_metastases": 1,
    "visceral_metastases": 2,
    "primary_site": 5,
    "palsy": 2,
}
SINS_UNSTABLE = {  # 3 + 3 + 2 + 4 + 3 + 1 = 16
    "location": 3,
    "pain": 3,
    "bone_lesion": 2,
    "alignment": 4,
    "collapse": 3,
    "posterolateral": 1,
}
MRI = {"modality": "mri", "region": "Thoracic spine", "levels": "T8", "findings": "T8 lesion."}


def tokuhashi(**points) -> dict:
    return {**TOKUHASHI, **points}


def as_form(name: str, score: dict) -> dict:
    """A score's components as the MDT form posts them."""
    return {f"{name}__{component}": str(points) for component, points in score.items()}


def run_to(users, state: str, **referral) -> Driver:
    """A pathway (metastatic spinal, breast primary unless ``referral`` says otherwise)
    walked to ``state`` by the coordinator."""
    start = datetime.now(UTC) - timedelta(days=30)
    pathway = new_pathway(users["coordinator"], start, "urgent", **referral)
    return Driver(pathway, users["coordinator"], start).walk_to(state)


def decide(run: Driver, trigger: str = "plan_surgery", **record):
    """An MDT outcome with the MDT record's required fields and ``record``."""
    at = run.next_time()
    data = {**valid_data(trigger, run.pathway.state, at), **record}
    return run.do(trigger, data, occurred_at=at)


def refused(call) -> dict:
    with pytest.raises(InvalidData) as caught:
        call()
    return caught.value.errors


# -- Tokuhashi general condition and Karnofsky ------------------------------------------------


@pytest.mark.parametrize(
    ("karnofsky", "condition"), [(10, 0), (40, 0), (50, 1), (70, 1), (80, 2), (100, 2)]
)
def test_general_condition_agrees_with_karnofsky(users, karnofsky, condition):
    run = run_to(users, "mdt_review")
    for wrong in {0, 1, 2} - {condition}:
        errors = refused(
            lambda wrong=wrong: decide(
                run, karnofsky=karnofsky, tokuhashi=tokuhashi(general_condition=wrong)
            )
        )
        assert list(errors) == ["tokuhashi.general_condition"]
    assert run.pathway.state == "mdt_review"
    event = decide(run, karnofsky=karnofsky, tokuhashi=tokuhashi(general_condition=condition))
    assert event.event.data["tokuhashi"]["general_condition"] == condition


def test_the_general_condition_refusal_names_the_field_and_what_is_accepted(users):
    run = run_to(users, "mdt_review")
    errors = refused(lambda: decide(run, karnofsky=90, tokuhashi=tokuhashi(general_condition=0)))
    assert errors["tokuhashi.general_condition"] == [
        "Tokuhashi general condition 0 (Karnofsky 10-40 %) does not match Karnofsky 90: "
        "choose 2 (80-100 %) or correct the Karnofsky score"
    ]


def test_each_score_alone_is_accepted(users):
    """The rule is about one record: a Tokuhashi without a Karnofsky or an ASIA grade beside
    it, or either without a Tokuhashi, is accepted."""
    run = run_to(users, "mdt_review")
    run.do("record_assessment", {"karnofsky": 90, "asia_grade": "A"})
    assert decide(run, "request_imaging", tokuhashi=tokuhashi(general_condition=0, palsy=1))
    run.fire("refer_to_mdt")  # back in MDT review
    assert decide(run, karnofsky=30, asia_grade="C").created


# -- Tokuhashi palsy and ASIA -------------------------------------------------------------------


@pytest.mark.parametrize(("asia", "palsy"), [("A", 0), ("B", 0), ("C", 1), ("D", 1), ("E", 2)])
def test_palsy_agrees_with_asia(users, asia, palsy):
    run = run_to(users, "mdt_review")
    for wrong in {0, 1, 2} - {palsy}:
        errors = refused(
            lambda wrong=wrong: decide(run, asia_grade=asia, tokuhashi=tokuhashi(palsy=wrong))
        )
        assert list(errors) == ["tokuhashi.palsy"]
    assert decide(run, asia_grade=asia, tokuhashi=tokuhashi(palsy=palsy)).created


def test_the_palsy_refusal_names_the_field_and_what_is_accepted(users):
    run = run_to(users, "mdt_review")
    errors = refused(lambda: decide(run, asia_grade="E", tokuhashi=tokuhashi(palsy=0)))
    assert errors["tokuhashi.palsy"] == [
        "Tokuhashi palsy 0 (Frankel A-B) does not match ASIA grade E: choose 2 (Frankel E) "
        "or correct the ASIA grade"
    ]


def test_both_contradictions_are_reported_at_once(users):
    run = run_to(users, "mdt_review")
    errors = refused(
        lambda: decide(
            run,
            karnofsky=40,
            asia_grade="B",
            tokuhashi=tokuhashi(general_condition=2, palsy=2),
        )
    )
    assert set(errors) == {"tokuhashi.general_condition", "tokuhashi.palsy"}


def test_an_amended_mdt_record_must_still_agree(users):
    run = run_to(users, "mdt_review")
    outcome = decide(run, karnofsky=90, tokuhashi=tokuhashi(general_condition=2)).event
    errors = refused(
        lambda: services.amend(
            run.pathway,
            outcome.seq,
            {"karnofsky": 40},
            "Karnofsky mistyped",
            users["surgeon"],
            run.pathway.version,
            uuid.uuid4().hex,
        )
    )
    assert "changes.tokuhashi.general_condition" in errors
    amended = services.amend(
        run.pathway,
        outcome.seq,
        {"karnofsky": 40, "tokuhashi": tokuhashi(general_condition=0)},
        "Karnofsky mistyped",
        users["surgeon"],
        run.pathway.version,
        uuid.uuid4().hex,
    )
    assert amended.created


# -- Tokuhashi is for metastatic spinal disease ----------------------------------------------


@pytest.mark.parametrize(
    "category", ["primary_spinal", "intradural_intramedullary", "primary_bone"]
)
def test_tokuhashi_is_refused_on_other_diagnosis_categories(users, category):
    run = run_to(users, "mdt_review", diagnosis_category=category, primary_cancer_site="other")
    with pytest.raises(TriggerNotAllowed) as caught:
        decide(run, tokuhashi=TOKUHASHI)
    assert "Tokuhashi score is for metastatic spinal disease only" in caught.value.message
    assert "leave the Tokuhashi components blank" in caught.value.message
    assert run.pathway.state == "mdt_review"
    assert decide(run, sins=SINS_UNSTABLE).created  # the MDT record without it


def test_tokuhashi_is_accepted_on_metastatic_spinal_disease(users):
    run = run_to(users, "mdt_review")
    event = decide(run, tokuhashi=TOKUHASHI).event
    assert event.data["tokuhashi_total"] == 13


def test_the_diagnosis_category_is_read_as_corrected(users):
    """A referral corrected to metastatic spinal disease allows a Tokuhashi; a correction
    away from it is refused while an MDT record carries one, naming that step."""
    run = run_to(users, "mdt_review", diagnosis_category="primary_bone")
    amend = lambda changes: services.amend(  # noqa: E731
        run.pathway,
        1,
        changes,
        "Diagnosis category corrected",
        users["coordinator"],
        run.pathway.version,
        uuid.uuid4().hex,
    )
    assert amend({"diagnosis_category": "metastatic_spinal"}).created
    outcome = decide(run, tokuhashi=TOKUHASHI).event
    errors = refused(lambda: amend({"diagnosis_category": "primary_spinal"}))
    (message,) = errors["changes"]
    assert f"step {outcome.seq} 'MDT decision: surgery'" in message
    assert "Tokuhashi score is for metastatic spinal disease only" in message


def test_a_tokuhashi_added_by_amendment_is_refused_on_other_categories(users):
    run = run_to(users, "mdt_review", diagnosis_category="primary_bone")
    outcome = decide(run).event
    errors = refused(
        lambda: services.amend(
            run.pathway,
            outcome.seq,
            {"tokuhashi": TOKUHASHI},
            "Score added",
            users["surgeon"],
            run.pathway.version,
            uuid.uuid4().hex,
        )
    )
    assert "Tokuhashi score is for metastatic spinal disease only" in errors["changes"][0]


# -- Bilsky is read on MRI ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("modality", "words"),
    [("ct", "a CT"), ("xray", "an X-ray"), ("bone_scan", "a bone scan"), ("pet_ct", "a PET-CT")],
)
def test_bilsky_is_refused_on_other_modalities(users, modality, words):
    run = run_to(users, "imaging")
    errors = refused(
        lambda: run.do("record_imaging", {**MRI, "modality": modality, "bilsky_grade": "2"})
    )
    assert errors == {
        "bilsky_grade": [
            f"A Bilsky grade is read on MRI only, and this study is {words}: leave the Bilsky "
            "grade blank, or choose MRI as the modality if the study was an MRI"
        ]
    }
    assert run.do("record_imaging", {**MRI, "modality": modality}).created  # without it


def test_bilsky_is_accepted_on_mri(users):
    run = run_to(users, "imaging")
    assert run.do("record_imaging", {**MRI, "bilsky_grade": "2"}).event.data["bilsky_grade"] == "2"


def test_an_mri_amended_to_ct_must_lose_its_bilsky(users):
    run = run_to(users, "imaging")
    imaging = run.do("record_imaging", {**MRI, "bilsky_grade": "1b"}).event

    def amend(changes):
        return services.amend(
            run.pathway,
            imaging.seq,
            changes,
            "Modality mistyped",
            users["coordinator"],
            run.pathway.version,
            uuid.uuid4().hex,
        )

    assert "changes.bilsky_grade" in refused(lambda: amend({"modality": "ct"}))
    assert amend({"modality": "ct", "bilsky_grade": None}).created


# -- radiosensitivity -----------------------------------------------------------------------------


def test_radiosensitivity_is_part_of_the_mdt_record(users):
    run = run_to(users, "mdt_review")
    errors = refused(lambda: decide(run, radiosensitivity="very"))
    assert (
        "radiosensitive, moderately_sensitive, radioresistant, unknown"
        in errors["radiosensitivity"][0]
    )
    event = decide(run, radiosensitivity="radioresistant").event
    assert event.data["radiosensitivity"] == "radioresistant"


# -- on the web and the API ------------------------------------------------------------------------


@pytest.fixture
def at_mdt(users, session):
    def do(**referral) -> Driver:
        run = run_to(users, "mdt_review", **referral)
        session.commit()
        return run

    return do


def test_the_mdt_form_shows_a_contradiction_beside_the_field(client, login, at_mdt):
    pathway = at_mdt().pathway
    login("surgeon")
    wrong = {
        "karnofsky": "90",
        "asia_grade": "E",
        **as_form("tokuhashi", tokuhashi(general_condition=0)),
    }
    response = client.post(url(pathway, "/mdt-outcome"), data=mdt_post(pathway, **wrong))
    assert response.status_code == 422
    assert field_error(response, "tokuhashi__general_condition") == (
        "Tokuhashi general condition 0 (Karnofsky 10-40 %) does not match Karnofsky 90: "
        "choose 2 (80-100 %) or correct the Karnofsky score"
    )
    assert field_error(response, "tokuhashi__palsy") == ""  # ASIA E, palsy 2: agreed
    right = {**wrong, "tokuhashi__general_condition": "2"}
    response = client.post(url(pathway, "/mdt-outcome"), data=mdt_post(pathway, **right))
    assert response.status_code == 302


def test_the_mdt_form_refuses_tokuhashi_on_a_primary_bone_tumour_in_words(client, login, at_mdt):
    pathway = at_mdt(
        diagnosis_category="primary_bone", primary_cancer_site="not_applicable"
    ).pathway
    login("surgeon")
    data = mdt_post(pathway, **as_form("tokuhashi", TOKUHASHI))
    response = client.post(url(pathway, "/mdt-outcome"), data=data)
    assert response.status_code == 409
    assert "Tokuhashi score is for metastatic spinal disease only" in shown(response)
    response = client.post(url(pathway, "/mdt-outcome"), data=mdt_post(pathway))
    assert response.status_code == 302


def test_the_imaging_form_shows_the_bilsky_refusal_beside_the_field(client, login, users, session):
    pathway = run_to(users, "imaging").pathway
    session.commit()
    login("coordinator")
    form = {
        "modality": "ct",
        "region": "Lumbar spine",
        "findings": "L2 lesion.",
        "bilsky_grade": "2",
    }
    response = client.post(url(pathway, "/record/record_imaging"), data=step_post(pathway, **form))
    assert response.status_code == 422
    assert "read on MRI only" in field_error(response, "bilsky_grade")
    response = client.post(
        url(pathway, "/record/record_imaging"),
        data=step_post(pathway, **{**form, "modality": "mri"}),
    )
    assert response.status_code == 302


def test_the_amend_form_shows_a_contradiction_beside_the_field(client, login, users, session):
    run = run_to(users, "mdt_review")
    outcome = decide(run, karnofsky=90, tokuhashi=TOKUHASHI).event
    session.commit()
    login("surgeon")
    body = {
        "expected_version": str(run.pathway.version),
        "request_id": uuid.uuid4().hex,
        "meeting_date": outcome.data["meeting_date"],
        "disciplines": outcome.data["disciplines"],
        "rationale": outcome.data["rationale"],
        "reason": "Karnofsky mistyped.",
        **as_form("tokuhashi", TOKUHASHI),
        "karnofsky": "40",
    }
    response = client.post(url(run.pathway, f"/amend/{outcome.seq}"), data=body)
    assert response.status_code == 422
    assert "choose 0 (10-40 %)" in field_error(response, "tokuhashi__general_condition")
    body |= {"request_id": uuid.uuid4().hex, "tokuhashi__general_condition": "0"}
    response = client.post(url(run.pathway, f"/amend/{outcome.seq}"), data=body)
    assert response.status_code == 302


def test_the_api_answers_a_contradiction_with_422_naming_the_component(
    client, users, session, at_mdt
):
    run = at_mdt()
    _, token = create_token(users["surgeon"], "test")
    session.commit()
    headers = {"Authorization": f"Bearer {token}"}
    at = datetime.now(UTC) - timedelta(minutes=5)

    def post(record):
        body = {
            "trigger": "plan_surgery",
            "occurred_at": at.isoformat(),
            "expected_version": run.pathway.version,
            "request_id": uuid.uuid4().hex,
            "data": {**valid_data("plan_surgery", "mdt_review", at), **record},
        }
        return client.post(f"/api/v1/pathways/{run.pathway.id}/events", json=body, headers=headers)

    response = post({"asia_grade": "C", "tokuhashi": tokuhashi(palsy=2)})
    assert response.status_code == 422
    assert response.json["errors"] == {
        "tokuhashi.palsy": [
            "Tokuhashi palsy 2 (Frankel E) does not match ASIA grade C: choose 1 "
            "(Frankel C-D) or correct the ASIA grade"
        ]
    }
    response = post({"asia_grade": "C", "tokuhashi": tokuhashi(palsy=1)})
    assert response.status_code == 201, response.json


# -- the MDT form's starting values -----------------------------------------------------------


def selected(page: str, name: str) -> str | None:
    """The value chosen in the select ``name`` of a page."""
    select = re.search(rf'<select[^>]*name="{name}"[^>]*>(.*?)</select>', page, re.S)
    assert select, name
    chosen = re.search(r'<option selected value="([^"]*)"', select.group(1))
    return chosen.group(1) if chosen else None


def test_the_mdt_form_fills_in_from_karnofsky_asia_the_primary_and_the_mri(
    client, login, users, session
):
    run = run_to(users, "imaging")
    run.do("record_imaging", {**MRI, "bilsky_grade": "2"})
    run.do("record_imaging", {**MRI, "modality": "ct"})  # later, but no MRI
    run.do("record_assessment", {"karnofsky": 90, "asia_grade": "E"})
    run.do("record_assessment", {"karnofsky": 60, "asia_grade": "C"})  # the latest
    run.do("refer_to_mdt")
    session.commit()
    login("surgeon")
    response = client.get(url(run.pathway, "/mdt-outcome"))
    assert response.status_code == 200
    page = shown(response)
    assert selected(page, "tokuhashi__general_condition") == "1"  # Karnofsky 60
    assert selected(page, "tokuhashi__palsy") == "1"  # ASIA C
    assert selected(page, "tokuhashi__primary_site") == "5"  # breast
    assert selected(page, "tokuhashi__visceral_metastases") is None  # not known: left blank
    assert selected(page, "bilsky_grade") == "2"
    assert re.search(r'<p class="score-flag small" id="bilsky-flag">\s*Bilsky 2-3', page)
    assert "(components entered: 3 of 6)" in page


def test_the_mdt_form_keeps_what_was_typed(client, login, users, session):
    run = run_to(users, "mdt_review")  # its MRI: Bilsky 1b; breast primary
    session.commit()
    login("surgeon")
    typed = {"bilsky_grade": "3", "tokuhashi__primary_site": "2", "calculate": "1"}
    response = client.post(url(run.pathway, "/mdt-outcome"), data=mdt_post(run.pathway, **typed))
    page = shown(response)
    assert selected(page, "bilsky_grade") == "3"
    assert selected(page, "tokuhashi__primary_site") == "2"
    assert re.search(r'id="bilsky-flag">', page)  # shown for the typed grade 3


@pytest.mark.parametrize(
    ("site", "points"),
    [
        ("breast", 5),
        ("prostate", 5),
        ("thyroid", 5),
        ("kidney", 3),
        ("lung", 0),
        ("unknown", 1),
        ("myeloma", None),
        ("other", None),
        ("not_applicable", None),
    ],
)
def test_the_primary_site_is_filled_in_where_it_maps(users, site, points):
    run = run_to(users, "mdt_review", primary_cancer_site=site)
    defaults = consistency.mdt_form_defaults(services.load_history(run.pathway))
    assert defaults.get("tokuhashi", {}).get("primary_site") == points
    assert defaults["bilsky_grade"] == "1b"  # the walk's MRI


def test_no_tokuhashi_is_filled_in_on_other_diagnosis_categories(users):
    run = run_to(users, "imaging", diagnosis_category="primary_spinal")
    run.do("record_imaging", {**MRI, "bilsky_grade": "1c"})
    run.do("record_assessment", {"karnofsky": 60, "asia_grade": "C"})
    defaults = consistency.mdt_form_defaults(services.load_history(run.pathway))
    assert defaults == {"bilsky_grade": "1c", "karnofsky": 60, "asia_grade": "C"}


def test_the_mdt_form_offers_the_values_already_recorded(client, login, users, session):
    """The assessments recorded before the meeting and the meeting's date as listed start
    the MDT outcome form: nothing recorded minutes before is asked for again."""
    run = run_to(users, "mdt_review")
    run.do("record_assessment", {"ecog": 2, "karnofsky": 60, "asia_grade": "D"})
    run.do("schedule_mdt", {"meeting_date": "2026-03-12"})
    session.commit()
    defaults = consistency.mdt_form_defaults(services.load_history(run.pathway))
    assert defaults["ecog"] == 2 and defaults["karnofsky"] == 60
    assert defaults["asia_grade"] == "D" and defaults["meeting_date"] == "2026-03-12"
    login("surgeon")
    page = shown(client.get(url(run.pathway, "/mdt-outcome")))
    assert selected(page, "asia_grade") == "D"
    assert re.search(r'name="ecog"[^>]*value="2"|value="2"[^>]*name="ecog"', page)
    assert re.search(
        r'name="meeting_date"[^>]*value="2026-03-12"|value="2026-03-12"[^>]*name="meeting_date"',
        page,
    )


def test_the_latest_values_are_those_that_happened_last(users):
    """An assessment typed late but dated earlier does not replace a later one."""
    run = run_to(users, "imaging")
    later = run.do("record_assessment", {"karnofsky": 40}).event
    run.do(
        "record_assessment", {"karnofsky": 90}, occurred_at=later.occurred_at - timedelta(minutes=5)
    )
    defaults = consistency.mdt_form_defaults(services.load_history(run.pathway))
    assert defaults["tokuhashi"]["general_condition"] == 0


# -- NOMS ----------------------------------------------------------------------------------------


SEPARATION = "separation surgery then stereotactic radiotherapy to be considered"
RADIOTHERAPY_ALONE = "radiotherapy alone to be considered"
STABILISATION = "stabilisation to be considered"


def reading(**values) -> consistency.Noms:
    return consistency.noms(values, "metastatic_spinal")


def said(noms: consistency.Noms) -> str:
    return " ".join(noms.readings)


@pytest.mark.parametrize("grade", ["2", "3"])
def test_high_grade_with_radioresistant_histology_reads_separation_surgery(grade):
    noms = reading(bilsky_grade=grade, radiosensitivity="radioresistant")
    assert SEPARATION in said(noms) and RADIOTHERAPY_ALONE not in said(noms)
    assert consistency.BILSKY_FLAG in noms.flags


@pytest.mark.parametrize("grade", ["0", "1a", "1b", "1c"])
@pytest.mark.parametrize("sensitivity", [None, "radiosensitive", "radioresistant", "unknown"])
def test_low_grade_reads_radiotherapy_alone(grade, sensitivity):
    noms = reading(bilsky_grade=grade, radiosensitivity=sensitivity)
    assert RADIOTHERAPY_ALONE in said(noms) and SEPARATION not in said(noms)
    assert noms.flags == ()


@pytest.mark.parametrize("grade", [None, "2", "3"])
def test_radiosensitive_histology_reads_radiotherapy_alone(grade):
    noms = reading(bilsky_grade=grade, radiosensitivity="radiosensitive")
    assert RADIOTHERAPY_ALONE in said(noms) and SEPARATION not in said(noms)


@pytest.mark.parametrize("sensitivity", [None, "moderately_sensitive", "unknown"])
def test_high_grade_without_a_known_radiosensitivity_gives_no_reading(sensitivity):
    noms = reading(bilsky_grade="2", radiosensitivity=sensitivity)
    assert "no reading until the histology's radiosensitivity is known" in said(noms)
    assert consistency.BILSKY_FLAG in noms.flags  # the flag stands anyway


@pytest.mark.parametrize(("total", "adds"), [(12, False), (13, True), (18, True)])
def test_sins_13_or_more_adds_stabilisation(total, adds):
    noms = reading(bilsky_grade="3", radiosensitivity="radioresistant", sins_total=total)
    assert (STABILISATION in said(noms)) is adds
    assert SEPARATION in said(noms)
    assert consistency.SINS_FLAG in noms.flags


@pytest.mark.parametrize(("total", "flagged"), [(6, False), (7, True)])
def test_sins_7_or_more_is_flagged(total, flagged):
    assert (consistency.SINS_FLAG in reading(sins_total=total).flags) is flagged


def test_the_four_considerations_in_words():
    noms = reading(
        bilsky_grade="2",
        asia_grade="C",
        radiosensitivity="radioresistant",
        sins_total=10,
        ecog=1,
        karnofsky=80,
    )
    assert noms.neurologic == "Bilsky 2, high grade; ASIA C"
    assert noms.oncologic == "Radioresistant histology"
    assert noms.mechanical == "SINS 10, potentially unstable"
    assert noms.systemic == "ECOG 1; Karnofsky 80"
    assert reading(radiosensitivity="unknown").oncologic == "Radiosensitivity unknown"
    nothing = reading()
    assert nothing.neurologic == "Bilsky not graded; ASIA not recorded"
    assert nothing.systemic == "ECOG and Karnofsky not recorded"
    assert nothing.readings == (
        "No reading until a Bilsky grade or a radiosensitive histology is recorded.",
    )


def test_noms_reads_metastatic_spinal_disease_only_but_the_flags_stand():
    noms = consistency.noms({"bilsky_grade": "3", "sins_total": 8}, "primary_spinal")
    assert not noms.applies and noms.readings == ()
    assert noms.flags == (consistency.BILSKY_FLAG, consistency.SINS_FLAG)


def test_the_mdt_page_reads_noms_from_recorded_and_posted_values(client, login, users, session):
    run = run_to(users, "imaging")
    run.do("record_imaging", {**MRI, "bilsky_grade": "3"})
    run.do("record_assessment", {"ecog": 1, "karnofsky": 80, "asia_grade": "D"})
    run.do("refer_to_mdt")
    session.commit()
    login("surgeon")
    page = shown(client.get(url(run.pathway, "/mdt-outcome")))
    assert "NOMS reading" in page and "Bilsky 3, high grade; ASIA D" in page
    assert "ECOG 1; Karnofsky 80" in page
    assert "radiosensitivity not recorded: no reading until" in page
    assert "Decision support, not a decision" in page
    posted = {
        "radiosensitivity": "radioresistant",
        "calculate": "1",
        **as_form("sins", SINS_UNSTABLE),
    }
    response = client.post(url(run.pathway, "/mdt-outcome"), data=mdt_post(run.pathway, **posted))
    page = shown(response)
    assert response.status_code == 200
    assert "High-grade compression with radioresistant histology: " + SEPARATION in page
    assert "SINS 13 or more, unstable: " + STABILISATION in page
    assert "SINS 16, unstable" in page


def test_the_overview_shows_the_noms_reading(client, login, users, session):
    run = run_to(users, "mdt_review")
    decide(
        run,
        bilsky_grade="2",
        radiosensitivity="radioresistant",
        sins=SINS_UNSTABLE,
        karnofsky=70,
    )
    other = run_to(users, "mdt_review", diagnosis_category="primary_bone")
    decide(other, sins={**SINS_UNSTABLE, "alignment": 0, "collapse": 0})
    session.commit()
    login("surgeon")
    page = shown(client.get(url(run.pathway)))
    facts = page[page.index("Key facts") : page.index("Milestones")]
    assert "NOMS reading" in facts
    assert "Bilsky 2, high grade" in facts and "Radioresistant histology" in facts
    assert SEPARATION in facts and STABILISATION in facts
    assert consistency.BILSKY_FLAG in facts and consistency.SINS_FLAG in facts
    assert "decision support, not a decision" in facts
    # SINS 3 + 3 + 2 + 1 = 9 on a primary bone tumour: the flag, no NOMS reading.
    page = shown(client.get(url(other.pathway)))
    facts = page[page.index("Key facts") : page.index("Milestones")]
    assert consistency.SINS_FLAG in facts and "to be considered" not in facts
    assert SEPARATION in shown(client.get(url(run.pathway, "/print")))


# -- NOMS per lesion ------------------------------------------------------------------------------

SINS_STABLE = {  # 1 + 1 + 0 + 0 + 1 + 1 = 4
    "location": 1,
    "pain": 1,
    "bone_lesion": 0,
    "alignment": 0,
    "collapse": 1,
    "posterolateral": 1,
}


def _two_lesions(users) -> Driver:
    """An unstable, high-grade T7-T9 lesion, then a new stable L3 lesion scored later."""
    run = run_to(users, "mdt_review")
    run.do(
        "record_lesion",
        {"lesion_ref": "T7-T9", "levels": "T7-T9", "finding": "progressing"}
        | {"sins": SINS_UNSTABLE, "bilsky_grade": "2"},
    )
    run.do("record_assessment", {"ecog": 1, "asia_grade": "D"})
    run.do(
        "record_lesion",
        {"lesion_ref": "L3", "levels": "L3", "finding": "new"}
        | {"sins": SINS_STABLE, "bilsky_grade": "0"},
    )
    return run


def test_noms_is_read_per_lesion(users, session):
    run = _two_lesions(users)
    history = services.load_history(run.pathway)
    readings = consistency.noms_by_lesion(history)
    # The referral's T8 (the walk's imaging graded it) reads on its own too.
    assert [r.lesion for r in readings] == ["T8", "T7-T9", "L3"]
    upper, lower = (r.noms for r in readings[1:])
    assert upper.mechanical == "SINS 16, unstable" and upper.neurologic.startswith("Bilsky 2")
    assert STABILISATION in said(upper) and consistency.SINS_FLAG in upper.flags
    assert lower.mechanical == "SINS 4, stable" and lower.neurologic.startswith("Bilsky 0")
    assert STABILISATION not in said(lower) and lower.flags == ()
    for reading in (upper, lower):  # the patient's: the same for every lesion
        assert reading.neurologic.endswith("ASIA D") and reading.systemic == "ECOG 1"
    # A score typed on the MDT form reads on the lesion it names, the others as recorded.
    typed = consistency.noms_by_lesion(history, {"lesion": "L3", "bilsky_grade": "3"})
    assert [r.noms.neurologic for r in typed[1:]] == [
        "Bilsky 2, high grade; ASIA D",
        "Bilsky 3, high grade; ASIA D",
    ]


def test_the_overview_and_mdt_form_name_each_lesions_reading(client, login, users, session):
    run = _two_lesions(users)
    session.commit()
    login("surgeon")
    page = shown(client.get(url(run.pathway)))
    facts = page[page.index("Key facts") : page.index("Milestones")]
    upper = r"T7-T9:</strong> Bilsky 2, high grade; ASIA D · [^·]+ · SINS 16, unstable"
    assert re.search(upper, facts)
    assert re.search(r"L3:</strong> Bilsky 0, low grade; ASIA D · [^·]+ · SINS 4, stable", facts)
    form = shown(client.get(url(run.pathway, "/mdt-outcome")))
    box = form[form.index('id="noms-heading"') :]
    assert box.index(">T7-T9</h4>") < box.index("SINS 16, unstable") < box.index(">L3</h4>")
    assert box.index(">L3</h4>") < box.index("SINS 4, stable")


def test_one_lesion_reads_as_before(users, session):
    run = run_to(users, "mdt_review")
    decide(run, bilsky_grade="2", radiosensitivity="radioresistant", sins=SINS_UNSTABLE)
    run.do("record_lesion", {"lesion_ref": "T8", "levels": "T8", "finding": "progressing"})
    history = services.load_history(run.pathway)
    (reading,) = consistency.noms_by_lesion(history)
    assert reading.lesion is None
    assert reading.noms == consistency.noms_for(history)
    assert reading.noms.mechanical == "SINS 16, unstable"


def test_the_mdt_agenda_names_each_lesions_reading(client, login, users, session):
    run = _two_lesions(users)
    meeting = _meeting(users, days=3)
    _list(run, meeting)
    session.commit()
    login("surgeon")
    page = shown(client.get(f"/mdt/meetings/{meeting.id}/agenda"))
    rows = re.findall(r'<tr class="agenda-noms">(.*?)</tr>', page, re.S)
    assert len(rows) == 3
    assert "<strong>T7-T9:</strong> Bilsky 2, high grade; ASIA D; SINS 16, unstable" in rows[1]
    assert rows[1].endswith("<td>lesion T7-T9</td>")
    assert "<strong>L3:</strong> Bilsky 0, low grade; ASIA D; SINS 4, stable" in rows[2]


def test_the_mdt_form_offers_one_lesions_sins_and_bilsky_naming_it(users, session):
    """With two or more spinal lesions the SINS and Bilsky offered again on the MDT form are
    one lesion's, named on the form; of different lesions, neither is offered (recorded
    unchanged, they would be put on the tumour site)."""
    run = _two_lesions(users)
    # The latest SINS is L3's; the latest MRI's Bilsky is the walk's (the referral's T8).
    defaults = consistency.mdt_form_defaults(services.load_history(run.pathway))
    assert "sins" not in defaults and "bilsky_grade" not in defaults
    assert "lesion" not in defaults
    # T8, the lesion the MRI graded, scored again: both now describe T8, offered naming it.
    run.do(
        "record_lesion",
        {"lesion_ref": "T8", "levels": "T8", "finding": "stable"} | {"sins": SINS_UNSTABLE},
    )
    history = services.load_history(run.pathway)
    defaults = consistency.mdt_form_defaults(history)
    assert defaults["lesion"] == "T8" and defaults["sins"] == SINS_UNSTABLE
    assert defaults["bilsky_grade"] == consistency.latest_mri_bilsky(history)


def test_one_lesion_is_offered_on_the_mdt_form_as_before(users, session):
    run = run_to(users, "mdt_review")
    decide(run, bilsky_grade="2", radiosensitivity="radioresistant", sins=SINS_UNSTABLE)
    defaults = consistency.mdt_form_defaults(services.load_history(run.pathway))
    assert defaults["sins"] == SINS_UNSTABLE and "lesion" not in defaults
