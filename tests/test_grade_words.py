"""Graded scales read in words: Clavien-Dindo, ASIA, ECOG, Bilsky and Enneking choices
carry their short descriptions on the forms and wherever a recorded value is shown."""

from __future__ import annotations

import html

import pytest

from tests.helpers import driver
from tracker.engine import dictionary as dd
from tracker.engine import steps as d

GRADED = {
    "clavien_dindo": ("record_complication", "II", "II - drug treatment needed"),
    "asia_grade": ("record_assessment", "C", "C - motor incomplete, most below 3"),
    "bilsky_grade": ("record_imaging", "1c", "1c - cord abutted, not compressed"),
    "enneking_stage": (None, "IIB", "IIB - high grade, beyond the compartment"),
}


def _field(name: str):
    for t in d.transitions():
        for f in d.all_fields_for(t.trigger, t.sources[0]):
            if f.name == name:
                return f
    raise AssertionError(f"no step records {name}")


@pytest.mark.parametrize("name", [*GRADED, "ecog"])
def test_every_grade_has_its_words(name):
    f = _field(name)
    if name == "ecog":
        assert [n for n, _ in f.words] == [0, 1, 2, 3, 4]
        assert (
            dd.describe(f, 2) == "2 - walks and cares for self, up more than half the day, no work"
        )
        assert "2 walks and cares for self" in f.help  # the form lists them
        return
    for code, words in f.choices:
        assert words.startswith(f"{code} - ") and len(words) > len(code) + 6, words
    _, code, expected = GRADED[name]
    assert dd.describe(f, code).startswith(expected)


def test_the_pathway_page_shows_grades_in_words(client, login, users, session):
    drive = driver(users)
    drive.walk_to("post_op")
    drive.do("record_complication", {"complication": "csf_leak", "clavien_dindo": "II"})
    drive.do("record_assessment", {"ecog": 2, "asia_grade": "C"})
    session.commit()
    login("coordinator")
    page = html.unescape(client.get(f"/pathways/{drive.pathway.id}").get_data(as_text=True))
    assert "II - drug treatment needed (including transfusion or parenteral nutrition)" in page
    assert "2 - walks and cares for self, up more than half the day, no work" in page
    assert "C - motor incomplete, most below 3" in page
