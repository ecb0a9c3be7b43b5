"""Notifications in a real browser: the top bar's counter, the list, marking read; axe.
Uses the fixtures of tests/test_browser.py (Debian's Chromium, a live app on a scratch
database of each backend)."""

# ruff: noqa: F811 - the fixtures imported from test_browser are parameters here

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import PASSWORD
from tests.helpers import new_pathway
from tests.test_browser import (  # noqa: F401 - the fixtures
    SHOTS,
    live_app,
    live_server,
    page,
    pytestmark,  # skipped without Chromium, as test_browser is
    serious_violations,
)
from tracker.alerts import services as alerts
from tracker.extensions import db
from tracker.users.models import User


@pytest.fixture
def alerted(live_app):
    """Two breached pathways and one due soon, coordinated by 'coordinator', alerted."""
    with live_app.app_context():
        coordinator = db.session.query(User).filter_by(username="coordinator").one()
        now = datetime.now(UTC)
        new_pathway(coordinator, now - timedelta(days=40))
        new_pathway(coordinator, now - timedelta(days=35))
        new_pathway(coordinator, now - timedelta(days=24))
        db.session.commit()
        alerts.raise_alerts(now)
        db.session.commit()
        db.session.remove()


def counter(page) -> str:
    return page.locator("#notification-counter").inner_text().strip()


def test_the_counter_shows_and_marking_read_clears_it(alerted, page, backend):
    page.goto("/login")
    page.get_by_label("Username").fill("coordinator")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="My work").wait_for()  # a coordinator's landing page
    assert counter(page).startswith("Notifications 3")

    page.locator("#notification-counter").click()
    page.get_by_role("heading", name="Notifications").wait_for()
    assert page.locator("#notifications tbody tr").count() == 3
    assert not serious_violations(page)
    if backend == "sqlite":
        page.screenshot(path=SHOTS / "notifications.png", full_page=True)

    page.get_by_role("button", name="Mark as read").first.click()
    page.get_by_role("heading", name="Notifications").wait_for()
    assert counter(page).startswith("Notifications 2")
    page.get_by_role("button", name="Mark all 2 as read").click()
    page.get_by_text("Marked 2 notifications as read.").wait_for()
    assert counter(page) == "Notifications"
    assert page.get_by_role("button", name="Mark as read").count() == 0
    assert not serious_violations(page)


def test_a_user_sets_their_email_for_alerts(page, backend):
    page.goto("/login")
    page.get_by_label("Username").fill("surgeon")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.goto("/account/")
    page.get_by_label("Email address for alerts").fill("not an address")
    page.get_by_role("button", name="Save email settings").click()
    page.get_by_text("'not an address' is not an email address").wait_for()
    assert not serious_violations(page)
    page.get_by_label("Email address for alerts").fill("s.smith@hospital.example")
    page.get_by_label("Every alert as it comes").check()
    page.get_by_role("button", name="Save email settings").click()
    page.get_by_text("Your email settings for alerts are saved.").wait_for()
    assert page.get_by_label("Email address for alerts").input_value() == (
        "s.smith@hospital.example"
    )
    assert page.get_by_label("Every alert as it comes").is_checked()
    assert not serious_violations(page)
    if backend == "sqlite":
        page.locator("#alerts").scroll_into_view_if_needed()
        page.screenshot(path="/tmp/alerts-account.png")
