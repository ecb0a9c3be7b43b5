"""A surgeon reads the overview of three demo patients in a real browser: the spine and
skeleton map, the key facts, the journey. axe finds nothing serious; the screenshots go to
docs/screenshots/ (the surgeons' guide shows them)."""

from __future__ import annotations

import pytest

from tests.conftest import PASSWORD
from tests.test_browser import (  # noqa: F401 - the fixtures
    CHROMIUM,
    SHOTS,
    live_app,
    live_server,
    page,
    serious_violations,
)
from tracker.extensions import db

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not __import__("os").path.exists(CHROMIUM), reason="needs Debian's chromium"
    ),
]


def demo_patients(app) -> dict[str, int]:
    """Three demo pathways: one spinal lesion; several lesions with a recurrence and an
    operation; a femoral lesion scored by Mirels."""
    from sqlalchemy import select

    from tracker.demo import seed
    from tracker.engine import services
    from tracker.engine.models import Pathway

    with app.app_context():
        seed(120, seed_value=11)
        db.session.commit()
        candidates: dict[str, list[int]] = {"single": [], "recurrence": [], "femur": []}
        for pathway in db.session.scalars(select(Pathway).order_by(Pathway.id)):
            history = services.load_history(pathway)
            lesions = history.lesions()
            triggers = {s.trigger for s in history.counting()}
            spinal = [lesion for lesion in lesions if lesion.levels]
            if (
                len(lesions) == 1
                and spinal
                and spinal[0].latest("sins_total")
                and "record_surgery" in triggers
            ):
                candidates["single"].append(pathway.id)
            if pathway.recurrence_count and len(spinal) >= 3 and "record_surgery" in triggers:
                candidates["recurrence"].append(pathway.id)
            if any(lesion.bone == "femur" and lesion.latest("mirels_total") for lesion in lesions):
                candidates["femur"].append(pathway.id)
        db.session.remove()
    found: dict[str, int] = {}
    for kind in ("recurrence", "single", "femur"):
        left = [i for i in candidates[kind] if i not in found.values()]
        if left:
            found[kind] = left[0]
    assert set(found) == {"single", "recurrence", "femur"}, found
    return found


def test_surgeon_reads_the_lesion_map_of_three_patients(live_app, page, backend):  # noqa: F811
    patients = demo_patients(live_app)
    page.goto("/login")
    page.get_by_label("Username").fill("surgeon")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/login" not in url)
    for kind, pathway_id in patients.items():
        for width in (1366, 1024):
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(f"/pathways/{pathway_id}")
            lesion_map = page.locator("svg#lesion-map")
            box = lesion_map.bounding_box()
            assert box and box["width"] > 400 and box["height"] > 300, (kind, width, box)
            # Above the fold: the map starts in the first screen.
            assert box["y"] < 900, (kind, width, box)
            levels = lesion_map.locator("rect.lm-vertebra")
            assert levels.count() == 29
            assert lesion_map.locator("g.lm-lesion").count() >= 1
            if kind == "femur":
                assert lesion_map.locator("g.lm-lesion[data-lesion*='femur' i]").count() == 1
            assert not serious_violations(page), (kind, width)
            if backend == "sqlite":
                page.screenshot(path=SHOTS / f"overview-lesions-{kind}-{width}.png")
                if kind == "recurrence" and width == 1366:
                    page.locator("section.overview").screenshot(
                        path=SHOTS / "overview-lesions-journey-1366.png"
                    )
        if backend == "sqlite" and kind == "recurrence":
            page.goto(f"/pathways/{pathway_id}/print")
            assert page.locator("svg#lesion-map").count() == 1
            page.screenshot(path=SHOTS / "overview-lesions-print.png", full_page=True)
            page.goto(f"/pathways/{pathway_id}")
        # The map as at an MDT: a link per decision, no script needed.
        dates = page.locator(".lesion-map-dates a")
        if dates.count() > 1:
            dates.first.click()
            page.wait_for_url("**map_at=*")
            assert "as they stood at the MDT" in page.locator(".lesion-map-as-of").inner_text()
            assert not serious_violations(page)
