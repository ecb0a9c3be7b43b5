"""SINS and revised Tokuhashi against worked examples from the published tables."""

from __future__ import annotations

import pytest

from tracker.engine.dictionary import DataError
from tracker.engine.scores import SINS, TOKUHASHI, sins_needs_surgical_opinion
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
