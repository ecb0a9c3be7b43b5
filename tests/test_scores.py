"""SINS, revised Tokuhashi and Mirels against worked examples from the published tables."""

from __future__ import annotations

import pytest

from tracker.engine.dictionary import DataError
from tracker.engine.scores import (
    MIRELS,
    SINS,
    TOKUHASHI,
    mirels_recommendation,
    sins_needs_surgical_opinion,
)
from tracker.engine.steps import validate_event_data

SINS_KEYS = ("location", "pain", "bone_lesion", "alignment", "collapse", "posterolateral")
TOKU_KEYS = (
    "general_condition",
    "extraspinal_bone_metastases",
    "vertebral_metastases",
    "visceral_metastases",
    "primary_site",
    "palsy",
)

SINS_EXAMPLES = [
    # (points in table order, total, band)
    ((3, 3, 2, 4, 3, 3), 18, "unstable"),  # C7-T1 lytic, mechanical pain, translation, bilateral
    ((0, 0, 0, 0, 0, 0), 0, "stable"),  # sacral blastic lesion, pain-free
    ((1, 1, 2, 0, 0, 1), 5, "stable"),  # T5 lytic, occasional pain, unilateral
    ((1, 3, 2, 0, 1, 0), 7, "potentially_unstable"),  # threshold for a surgical opinion
    ((3, 3, 2, 0, 2, 0), 10, "potentially_unstable"),  # L1 lytic, mechanical, <50 % collapse
    ((2, 3, 2, 2, 2, 1), 12, "potentially_unstable"),  # upper band edge
    ((3, 3, 2, 2, 3, 0), 13, "unstable"),  # lower edge of unstable
]
TOKUHASHI_EXAMPLES = [
    ((2, 2, 2, 2, 5, 2), 15, "1_year_or_more"),  # breast, solitary, fit, no palsy
    ((0, 0, 0, 0, 0, 0), 0, "under_6_months"),
    ((2, 1, 1, 1, 5, 2), 12, "1_year_or_more"),  # breast, KPS 80, 2 vertebrae
    ((1, 0, 2, 0, 0, 1), 4, "under_6_months"),  # lung, KPS 60, Frankel D
    ((1, 1, 1, 1, 2, 2), 8, "under_6_months"),  # upper edge of the first band
    ((2, 1, 1, 1, 2, 2), 9, "6_months_or_more"),
    ((2, 2, 1, 2, 3, 1), 11, "6_months_or_more"),  # kidney
]


@pytest.mark.parametrize(("points", "total", "band"), SINS_EXAMPLES)
def test_sins_examples(points, total, band):
    values = dict(zip(SINS_KEYS, points, strict=True))
    assert SINS.total(values) == total
    assert SINS.band(total)[0] == band
    assert sins_needs_surgical_opinion(total) is (total >= 7)


@pytest.mark.parametrize(("points", "total", "band"), TOKUHASHI_EXAMPLES)
def test_tokuhashi_examples(points, total, band):
    values = dict(zip(TOKU_KEYS, points, strict=True))
    assert TOKUHASHI.total(values) == total
    assert TOKUHASHI.band(total)[0] == band


def test_score_ranges_match_the_tables():
    assert SINS.maximum == 18
    assert TOKUHASHI.maximum == 15
    assert MIRELS.maximum == 12


MIRELS_KEYS = ("site", "pain", "lesion", "size")
FIXATION = "9 or more: prophylactic fixation recommended."
CONSIDER = "8, borderline: consider prophylactic fixation."
OBSERVE = "Under 8: radiotherapy and observation."
MIRELS_EXAMPLES = [
    # (site, pain, lesion, size), total, band, recommendation
    ((1, 1, 1, 1), 4, "low_risk", OBSERVE),  # humerus, mild pain, blastic, small: the least
    ((1, 2, 3, 1), 7, "low_risk", OBSERVE),  # humerus, lytic but small: under 8
    ((2, 2, 2, 2), 8, "borderline", CONSIDER),  # tibia, mixed, a third to two thirds
    ((3, 1, 3, 1), 8, "borderline", CONSIDER),  # peritrochanteric lytic, small, mild pain
    ((2, 2, 3, 2), 9, "fixation_recommended", FIXATION),  # femoral shaft, lytic: fix
    ((3, 3, 3, 2), 11, "fixation_recommended", FIXATION),  # peritrochanteric, functional pain
    ((3, 3, 3, 3), 12, "fixation_recommended", FIXATION),  # the most
]


@pytest.mark.parametrize(("points", "total", "band", "words"), MIRELS_EXAMPLES)
def test_mirels_examples(points, total, band, words):
    values = dict(zip(MIRELS_KEYS, points, strict=True))
    assert MIRELS.total(values) == total
    assert MIRELS.band(total)[0] == band
    assert mirels_recommendation(total) == words


def test_mirels_recommendation_turns_at_8_and_9():
    assert [mirels_recommendation(t) for t in (7, 8, 9)] == [OBSERVE, CONSIDER, FIXATION]
    with pytest.raises(ValueError, match="outside its range"):
        MIRELS.band(3)  # every component scores at least 1


LESION = {"lesion_ref": "left femur", "bone": "femur", "side": "left", "finding": "new"}


def test_a_lesion_stores_mirels_components_and_computed_total():
    mirels = dict(zip(MIRELS_KEYS, (2, 2, 3, 2), strict=True))
    data = validate_event_data("record_lesion", "imaging", {**LESION, "mirels": mirels})
    assert data["mirels"] == mirels
    assert data["mirels_total"] == 9 and data["mirels_band"] == "fixation_recommended"


@pytest.mark.parametrize(
    ("mirels", "message"),
    [
        ({**dict.fromkeys(MIRELS_KEYS, 1), "site": 0}, "site must be one of the points 1, 2, 3"),
        ({**dict.fromkeys(MIRELS_KEYS, 1), "size": 4}, "size must be one of the points 1, 2, 3"),
        ({**dict.fromkeys(MIRELS_KEYS, 1), "pain": "2"}, "pain must be one of the points"),
        ({**dict.fromkeys(MIRELS_KEYS, 1), "pain": True}, "pain must be one of the points"),
        ({"site": 2, "pain": 2}, "missing components: lesion, size"),
        ({**dict.fromkeys(MIRELS_KEYS, 1), "cortex": 1}, "unknown components: cortex"),
        (9, "must give the Mirels components"),
    ],
)
def test_invalid_mirels_components_are_refused(mirels, message):
    with pytest.raises(DataError) as refused:
        validate_event_data("record_lesion", "imaging", {**LESION, "mirels": mirels})
    assert message in " ".join(refused.value.errors["mirels"])


def test_a_mirels_total_cannot_be_typed():
    with pytest.raises(DataError) as refused:
        validate_event_data("record_lesion", "imaging", {**LESION, "mirels_total": 9})
    assert "computed from the score's components" in refused.value.errors["mirels_total"][0]


MDT = {
    "meeting_date": "2026-01-05",
    "disciplines": ["spinal_surgery", "radiology"],
    "rationale": "Agreed.",
}


def test_mdt_outcome_stores_components_and_computed_totals():
    data = validate_event_data(
        "plan_surgery",
        "mdt_review",
        {
            **MDT,
            "sins": dict(zip(SINS_KEYS, (3, 3, 2, 0, 2, 0), strict=True)),
            "tokuhashi": dict(zip(TOKU_KEYS, (2, 1, 1, 1, 5, 2), strict=True)),
        },
    )
    assert data["sins_total"] == 10 and data["sins_band"] == "potentially_unstable"
    assert data["tokuhashi_total"] == 12 and data["tokuhashi_band"] == "1_year_or_more"
    assert data["sins"]["collapse"] == 2


@pytest.mark.parametrize(
    ("sins", "message"),
    [
        (
            {**dict.fromkeys(SINS_KEYS, 0), "location": 4},
            "location must be one of the points 0, 1, 2, 3",
        ),
        ({**dict.fromkeys(SINS_KEYS, 0), "pain": 2}, "pain must be one of the points 0, 1, 3"),
        ({"location": 3}, "missing components"),
        ({**dict.fromkeys(SINS_KEYS, 0), "extra": 1}, "unknown components"),
        ({**dict.fromkeys(SINS_KEYS, 0), "collapse": True}, "collapse must be one of"),
    ],
)
def test_invalid_components_are_refused(sins, message):
    with pytest.raises(DataError) as refused:
        validate_event_data("plan_surgery", "mdt_review", {**MDT, "sins": sins})
    assert message in " ".join(refused.value.errors["sins"])


def test_totals_cannot_be_typed():
    with pytest.raises(DataError) as refused:
        validate_event_data("plan_surgery", "mdt_review", {**MDT, "sins_total": 12})
    assert "computed from the score's components" in refused.value.errors["sins_total"][0]
