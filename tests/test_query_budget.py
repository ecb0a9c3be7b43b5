"""The lists, the reports and the pathway page run a fixed number of queries, whatever the
number of pathways and events."""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy import event, select

from tests.helpers import Driver, driver
from tracker.demo import DEMO_PASSWORD, seed
from tracker.engine import services
from tracker.extensions import db
from tracker.saved_views import services as saved_views
from tracker.users.models import User


@contextmanager
def counted():
    """The SELECTs run meanwhile: what grows with the data when a page is written badly.
    (Each page also writes its audit entry and, now and then, its session's last activity:
    a fixed number of statements, whatever the data.)"""
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


def page_queries(client, url: str) -> int:
    # The test's session spans requests; start each measurement as a new request would.
    db.session.expire_all()
    with counted() as statements:
        response = client.get(url)
    assert response.status_code == 200, response.text[:500]
    return len(statements)


def test_worklist_queries_do_not_grow_with_pathways(client, session):
    # A seed whose ten pathways include every kind the pages read (one in MDT review
    # among them), as the thousand of the large seed do: only then may the counts agree.
    seed(10, seed_value=6)
    # Saved views, the navigation's (shared) and the page's own: one query for both.
    coordinator = session.scalar(select(User).where(User.username == "coordinator"))
    saved_views.save(coordinator, "Breaches", "worklist", {"target": "breached"}, True)
    saved_views.save(coordinator, "Mine", "worklist", {"mine": "1"}, False)
    session.commit()
    client.post("/login", data={"username": "coordinator", "password": DEMO_PASSWORD})
    client.get("/")  # the first page after a login completes the session once; not counted
    urls = [
        "/",
        "/?target=breached",
        "/?sort=name&page=2",
        "/?mine=1&q=smith",
        "/?state=imaging",
        "/ptl?band=0-28",
        "/mdt/",
        "/this-week?who=all",
        "/reports/",
    ]
    small = [page_queries(client, url) for url in urls]
    seed(990, seed_value=4)
    session.commit()
    large = [page_queries(client, url) for url in urls]
    assert small == large
    *lists, reports = large
    assert max(lists) <= 8
    # Ten report queries (the monthly trend too), the session, the user, and the top bar's
    # unread notifications with the reader's teams they are counted in.
    assert reports <= 15


def test_pathway_page_queries_do_not_grow_with_events(client, session, users, login):
    run = driver(users, referral=datetime.now(UTC) - timedelta(days=400), actor="surgeon").walk_to(
        "surveillance"
    )
    short = run.pathway
    long = driver(users, referral=datetime.now(UTC) - timedelta(days=400)).pathway
    long_run = Driver(
        long, users["coordinator"], long.referral_received_at, step=timedelta(minutes=30)
    )
    long_run.walk_to("surveillance")
    while long.version < 500:
        long_run.do("add_note", {"note": f"Phone call {long.version}"}, request_id=uuid.uuid4().hex)
    services.amend(
        long, 3, {"note": "corrected"}, "typo", users["coordinator"], long.version, uuid.uuid4().hex
    )
    session.commit()
    login("coordinator")
    assert short.version < 15 and long.version >= 500
    assert page_queries(client, f"/pathways/{short.id}") == page_queries(
        client, f"/pathways/{long.id}"
    )
    # One of them reads the session, one the reader's teams, one the pathway's letters,
    # one its tasks (the Tracking panel), one the reader's unread notifications (the top
    # bar's counter).
    assert page_queries(client, f"/pathways/{long.id}") <= 10


def test_the_lesion_map_adds_no_query(client, session, users, login):
    """The spine and skeleton map, today's or as at an MDT, is read from the history the
    page loads anyway: a pathway with three lesions, an operation and radiotherapy costs the
    queries of one with none."""
    from tests.test_lesion_map import treated_pathway

    plain = driver(users, referral=datetime.now(UTC) - timedelta(days=40)).walk_to("mdt_review")
    run, mdt = treated_pathway(users)
    session.commit()
    login("surgeon")
    plain_count = page_queries(client, f"/pathways/{plain.pathway.id}")
    assert page_queries(client, f"/pathways/{run.pathway.id}") == plain_count
    assert page_queries(client, f"/pathways/{run.pathway.id}?map_at={mdt.seq}") == plain_count
    assert page_queries(client, f"/pathways/{run.pathway.id}/print") <= plain_count
