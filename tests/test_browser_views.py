"""Saved views and bulk actions in a real browser (Chromium through Playwright, as
tests/test_browser.py): save a view, open it again from the navigation, come back to it
from a patient, tick three patients and hand them over to another lead surgeon."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

from tests.conftest import PASSWORD
from tests.test_browser import (  # noqa: F401 - the fixtures, shared
    SHOTS,
    live_app,
    live_server,
    nav,
    page,
    pytestmark,
    serious_violations,
)
from tracker.extensions import db

NAMES = (("Adeyemi", "Tola"), ("Brennan", "Siobhan"), ("Castellanos", "Ines"), ("Dunmore", "Peter"))


def _seed(app) -> dict[str, int]:
    from sqlalchemy import select

    from tracker.engine import services
    from tracker.patients.services import register_patient
    from tracker.users.models import User

    ids = {}
    with app.app_context():
        coordinator = db.session.scalar(select(User).where(User.username == "coordinator"))
        for i, (family, given) in enumerate(NAMES):
            patient = register_patient(
                coordinator,
                mrn=f"B{1000 + i}",
                family_name=family,
                given_name=given,
                birth_date=date(1950 + i, 3, 4),
                sex="female" if i % 2 else "male",
            )
            pathway = services.open_pathway(
                coordinator,
                patient,
                referral_received_at=datetime.now(UTC) - timedelta(days=10 + i),
                referral_source="gp",
                urgency="urgent",
                diagnosis_category="metastatic_spinal",
                tumour_site="T8",
                primary_cancer_site="lung",
                presenting_symptoms=["back_pain"],
                lead_surgeon="surgeon",
                coordinator="coordinator",
            )
            ids[family] = pathway.id
        db.session.commit()
        db.session.remove()
    return ids


def _filters(url: str) -> dict:
    return parse_qs(urlsplit(url).query)


def test_save_a_view_reload_it_and_bulk_assign_three_patients(live_app, page, backend):  # noqa: F811
    ids = _seed(live_app)
    page.goto("/login")
    page.get_by_label("Username").fill("coordinator")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="My work").wait_for()  # a coordinator's landing page
    nav(page, None, "Worklist")
    page.get_by_role("heading", name="Worklist").wait_for()

    # Filter and sort the worklist, and save that as a shared view.
    page.get_by_label("State", exact=True).select_option("referred")
    page.get_by_label("Sort by").select_option("name")
    page.get_by_role("button", name="Apply").click()
    page.get_by_label("Name of the view").fill("New referrals by name")
    page.get_by_label("Share with everyone").check()
    page.get_by_role("button", name="Save view").click()
    page.get_by_text("View 'New referrals by name' saved, shared with everyone.").wait_for()

    # Elsewhere, the navigation opens it again.
    nav(page, "Patients", "Find a patient")
    nav(page, "Views", "New referrals by name")
    page.get_by_role("heading", name="Worklist").wait_for()
    assert _filters(page.url) == {"state": ["referred"], "sort": ["name"]}
    assert page.locator("a[aria-current=true]", has_text="New referrals by name").count() == 1

    # The views' own page: the view, its filters in words, rename and delete.
    page.get_by_role("link", name="Manage views").click()
    page.get_by_role("heading", name="Saved views").wait_for()
    assert "State: Referred; Sorted by name" in page.locator("#my-views").inner_text()
    assert not serious_violations(page)
    page.go_back()

    # A patient opened from it leads back to it as it was.
    page.get_by_role("link", name=re.compile("BRENNAN")).click()
    page.wait_for_url(re.compile(rf"/pathways/{ids['Brennan']}$"))
    page.get_by_role("link", name="Back to the worklist").click()
    assert _filters(page.url) == {"state": ["referred"], "sort": ["name"]}

    # Every patient on the page ticked at once, then one unticked: three remain.
    page.get_by_label("Select every patient on this page").check()
    assert page.locator("input.bulk-tick:checked").count() == 4
    page.get_by_label("Select DUNMORE, Peter").uncheck()
    page.get_by_label("With the patients ticked below").select_option("lead_surgeon")
    page.get_by_role("button", name="Continue with the ticked patients").click()
    page.get_by_role("heading", name="Assign a lead surgeon: 3 patients").wait_for()
    assert not serious_violations(page)
    page.get_by_label("New lead surgeon").select_option("surgeon2")
    page.get_by_role("button", name="Apply to these patients").click()

    # Back on the list as it was, with the summary.
    page.get_by_text("Lead surgeon set to Surgeon2 on 3 pathways.").wait_for()
    assert _filters(page.url) == {"state": ["referred"], "sort": ["name"]}
    for family in ("Adeyemi", "Brennan", "Castellanos"):
        row = page.locator("tr", has=page.locator(f"a[href='/pathways/{ids[family]}']"))
        assert "Surgeon2" in row.inner_text()
    assert (
        "Surgeon2"
        not in page.locator(
            "tr", has=page.locator(f"a[href='/pathways/{ids['Dunmore']}']")
        ).inner_text()
    )
    assert not serious_violations(page)
    if backend == "sqlite":
        page.screenshot(path=SHOTS / "bulk-actions.png", full_page=True)


def test_bulk_add_a_task_to_two_patients(live_app, page, backend):  # noqa: F811
    ids = _seed(live_app)
    due = (datetime.now(UTC) + timedelta(days=14)).date()
    page.goto("/login")
    page.get_by_label("Username").fill("coordinator")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/my-work/$"))  # a coordinator's page after logging in
    page.goto("/")
    page.get_by_role("heading", name="Worklist").wait_for()
    page.get_by_label("Select ADEYEMI, Tola").check()
    page.get_by_label("Select CASTELLANOS, Ines").check()
    page.get_by_label("With the patients ticked below").select_option("task")
    page.get_by_role("button", name="Continue with the ticked patients").click()
    page.get_by_role("heading", name="Add a task: 2 patients").wait_for()
    page.get_by_label("What needs doing").fill("Chase MRI report")
    page.get_by_label("Owner").select_option("surgeon2")
    page.get_by_label("Due by").fill(due.isoformat())
    assert not serious_violations(page)
    if backend == "sqlite":
        page.screenshot(path=SHOTS / "bulk-task.png", full_page=True)
    page.get_by_role("button", name="Apply to these patients").click()
    page.get_by_text("Task 'Chase MRI report' added for Surgeon2 on 2 pathways").wait_for()
    page.goto(f"/pathways/{ids['Castellanos']}")
    assert "Chase MRI report" in page.locator("body").inner_text()
