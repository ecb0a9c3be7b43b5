"""My work: a coordinator's or surgeon's tasks, targets due and sign-off queue; the landing
page after login; a fixed number of queries."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from tests.conftest import PASSWORD
from tests.helpers import driver, log_in, new_pathway
from tests.test_query_budget import page_queries
from tracker.engine import clocks
from tracker.engine.models import PathwayClock
from tracker.extensions import db
from tracker.teams.models import UserTeam
from tracker.tracking import services as tracking


def _task(pathway, what, owner, days, actor, done=False):
    """A task due ``days`` from today (in the past: recorded back then, now overdue)."""
    now = datetime.now(UTC)
    at = min(now, now + timedelta(days=days))
    result = tracking.add_task(
        pathway, what, owner, (now + timedelta(days=days)).date(), actor, occurred_at=at, now=at
    )
    if done:
        tracking.complete_task(pathway, result.event.seq, actor)
    return result


def _task_order(page: str) -> list[str]:
    table = page.split('id="my-tasks"', 1)[1].split("</table>", 1)[0]
    return re.findall(r"#\d+ ([^<]+)</a>", table)


def test_open_tasks_overdue_first_then_by_due_date(client, login, users, session):
    coordinator = users["coordinator"]
    first = driver(users).walk_to("imaging").pathway
    second = new_pathway(coordinator)
    _task(first, "In five days", "coordinator", 5, coordinator)
    _task(second, "Overdue by three", "coordinator", -3, coordinator)
    _task(first, "Today", "coordinator", 0, coordinator)
    _task(second, "Overdue by one", "coordinator", -1, coordinator)
    _task(first, "The surgeon's", "surgeon", 1, coordinator)
    _task(first, "Done already", "coordinator", 2, coordinator, done=True)
    closed = new_pathway(coordinator)
    _task(closed, "On a closed pathway", "coordinator", 1, coordinator)
    driver_closed = driver(users)
    driver_closed.pathway = closed
    driver_closed.do("withdraw")
    session.commit()
    login("coordinator")
    page = client.get("/my-work/").text
    assert _task_order(page) == ["Overdue by three", "Overdue by one", "Today", "In five days"]
    assert page.count(">Overdue<") == 2 and ">Today<" in page
    assert "Awaiting my sign-off" not in page  # a coordinator's page has no sign-off queue
    assert 'href="/"' in page and "Open the worklist" in page


def test_a_task_on_another_teams_pathway_is_not_shown(client, login, users, session):
    pathway = driver(users).walk_to("imaging").pathway
    _task(pathway, "Hidden later", "coordinator2", 2, users["coordinator"])
    session.execute(
        UserTeam.__table__.delete().where(
            UserTeam.user_id == users["coordinator2"].id, UserTeam.team == pathway.team
        )
    )
    session.commit()
    login("coordinator2")
    assert "Hidden later" not in client.get("/my-work/").text


def _clock_limits(pathway) -> tuple[PathwayClock, timedelta, timedelta]:
    row = db.session.scalars(
        select(PathwayClock).where(
            PathwayClock.pathway_id == pathway.id, PathwayClock.status == "running"
        )
    ).first()
    return row, row.warn_at - row.started_at, row.due_at - row.started_at


def test_targets_due_soon_or_breached_on_my_pathways(client, login, users, session):
    now = datetime.now(UTC)
    fresh = new_pathway(users["coordinator"], referral=now - timedelta(hours=1))
    session.flush()
    clock, warn, due = _clock_limits(fresh)
    due_soon = new_pathway(users["coordinator"], referral=now - (warn + (due - warn) / 2))
    breached = new_pathway(users["coordinator"], referral=now - due - timedelta(days=2))
    other = new_pathway(
        users["coordinator"],
        referral=now - due - timedelta(days=2),
        coordinator="coordinator2",
        lead_surgeon="surgeon2",
    )
    tracking.add_tracking_note(breached, "Chasing the MRI slot", users["coordinator"])
    session.commit()
    login("coordinator")
    page = client.get("/my-work/").text
    table = page.split('id="my-clocks"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r'href="/pathways/(\d+)"', table)
    assert str(due_soon.id) in rows and str(breached.id) in rows
    assert str(fresh.id) not in rows and str(other.id) not in rows
    # The most overdue first: the breached clock before the one due soon.
    assert rows.index(str(breached.id)) < rows.index(str(due_soon.id))
    assert f'data-clock="{clock.clock}" data-status="breached"' in table
    assert f'data-clock="{clock.clock}" data-status="due_soon"' in table
    assert "Chasing the MRI slot" in table and clocks.LABELS[clock.clock] in table


def test_a_surgeon_sees_what_awaits_their_sign_off(client, login, users, session):
    led = driver(users).walk_to("imaging").pathway  # led by "surgeon", recorded by others
    other = new_pathway(users["coordinator"], lead_surgeon="surgeon2")
    session.commit()
    login("surgeon")
    page = client.get("/my-work/").text
    section = page.split('id="my-sign-off"', 1)[1].split("</table>", 1)[0]
    assert f'href="/pathways/{led.id}"' in section
    assert f'href="/pathways/{other.id}"' not in section


def test_tracking_steps_do_not_ask_for_a_sign_off(users, session):
    pathway = new_pathway(users["coordinator"])
    session.flush()
    before = pathway.unreviewed_steps
    tracking.add_tracking_note(pathway, "Waiting for the GP letter", users["coordinator"])
    _task(pathway, "Ring the GP", "coordinator", 1, users["coordinator"])
    assert pathway.unreviewed_steps == before


def test_coordinators_and_surgeons_land_on_my_work(client, users, session):
    session.commit()
    for username, landing in (
        ("coordinator", "/my-work/"),
        ("surgeon", "/my-work/"),
        ("viewer", "/"),
    ):
        response = log_in(client, username, PASSWORD)
        assert response.status_code == 302 and response.headers["Location"] == landing, username
        client.post("/logout")


def test_my_work_is_in_the_navigation_for_clinical_roles_only(client, login, users, session):
    session.commit()
    login("coordinator")
    assert 'href="/my-work/">My work</a>' in client.get("/").text
    client.post("/logout")
    login("viewer")
    assert "My work" not in client.get("/").text
    assert client.get("/my-work/").status_code == 403


def test_my_work_queries_do_not_grow_with_tasks_and_pathways(client, login, users, session):
    now = datetime.now(UTC)

    def add(count: int):
        for n in range(count):
            pathway = new_pathway(users["coordinator"], referral=now - timedelta(days=200))
            _task(pathway, f"Task {n}", "surgeon", n - 2, users["coordinator"])
            tracking.add_tracking_note(pathway, f"Note {n}", users["coordinator"])
        session.commit()

    add(1)
    login("surgeon")
    client.get("/my-work/")  # the first page after a login completes the session once
    small = page_queries(client, "/my-work/")
    add(8)
    large = page_queries(client, "/my-work/")
    assert small == large
    # The session, the user, the teams, one query per list, the notification counter.
    assert large <= 7


def test_the_worklist_and_ptl_show_tracking_notes_in_a_fixed_number_of_queries(
    client, login, users, session
):
    now = datetime.now(UTC)

    def add(count: int, start: int):
        for n in range(start, start + count):
            pathway = new_pathway(
                users["coordinator"], referral=now - timedelta(days=10), urgency="urgent"
            )
            tracking.add_tracking_note(pathway, f"Tracking note number {n}", users["coordinator"])
        session.commit()

    add(1, 0)
    login("coordinator")
    client.get("/")
    small = [page_queries(client, url) for url in ("/", "/ptl")]
    add(7, 1)
    large = [page_queries(client, url) for url in ("/", "/ptl")]
    assert small == large
    for url in ("/", "/ptl"):
        page = client.get(url).text
        assert all(f"Tracking note number {n}" in page for n in range(8)), url
