"""The worklist (filters, search, sort, pages, state counts) and the MDT list."""

from __future__ import annotations

import html
import re
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from tests.helpers import Driver
from tracker.engine import services
from tracker.patients.services import register_patient
from tracker.worklist import routes as worklist_routes


def shown(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def row_ids(response) -> list[int]:
    """The pathway ids of the worklist's rows, in the order shown."""
    return [
        int(i)
        for i in re.findall(
            # (a first cell with the row's tick boxes, for who may take a bulk action)
            r'<tr class="target-[^"]*">\s*(?:<td>(?:\s*<input[^>]*>)*\s*</td>\s*)?'
            r'<td><a href="/pathways/(\d+)"',
            shown(response),
        )
    ]


@pytest.fixture
def make(users, session):
    """An open pathway for a named patient, walked to ``state`` by the coordinator.

    The pathway carries its Driver as ``.drive``, to record more steps on it.
    """

    def do(
        family: str,
        *,
        given: str = "Ann",
        mrn: str | None = None,
        urgency: str = "routine",
        referral_days: float = 300,
        state: str = "referred",
        coordinator: str = "coordinator",
        lead_surgeon: str = "surgeon",
    ):
        actor = users["coordinator"]
        patient = register_patient(
            actor,
            mrn=mrn or f"W{uuid.uuid4().hex[:8]}",
            family_name=family,
            given_name=given,
            birth_date=date(1955, 3, 4),
            sex="female",
        )
        referral = datetime.now(UTC) - timedelta(days=referral_days)
        pathway = services.open_pathway(
            actor,
            patient,
            referral_received_at=referral,
            referral_source="gp",
            urgency=urgency,
            diagnosis_category="metastatic_spinal",
            tumour_site="T8",
            primary_cancer_site="breast",
            lead_surgeon=lead_surgeon,
            coordinator=coordinator,
        )
        drive = Driver(pathway, actor, referral, step=timedelta(minutes=10))
        if state != "referred":
            drive.walk_to(state)
        pathway.drive = drive
        return pathway

    return do


# -- the worklist --------------------------------------------------------------------------------


def test_worklist_shows_active_pathways_only(client, login, make, session):
    active = make("Active", state="imaging")
    closed = make("Closed", state="withdrawn")
    session.commit()
    login("coordinator")
    response = client.get("/")
    assert response.status_code == 200
    assert row_ids(response) == [active.id]
    assert "1 active pathway shown" in shown(response)
    assert f"/pathways/{closed.id}" not in shown(response)


def test_state_counts_count_every_active_pathway(client, login, make, session):
    make("One", state="imaging")
    make("Two", state="imaging")
    make("Three")
    make("Four", state="withdrawn")
    session.commit()
    login("viewer")
    page = shown(client.get("/?urgency=emergency"))  # the counts ignore the filters
    assert "Imaging: 2</a>" in page and "Referred: 1</a>" in page
    assert "MDT review: 0</a>" in page and "Withdrawn:" not in page


def test_filter_by_state(client, login, make, session):
    imaging = make("Imaging", state="imaging")
    review = make("Review", state="mdt_review")
    referred = make("Referred")
    session.commit()
    login("coordinator")
    assert row_ids(client.get("/?state=imaging")) == [imaging.id]
    assert row_ids(client.get("/?state=mdt_review")) == [review.id]
    assert row_ids(client.get("/?state=surveillance")) == []
    assert "No active pathway matches these filters." in shown(client.get("/?state=surveillance"))
    # A state that is not an active one is no filter.
    assert set(row_ids(client.get("/?state=withdrawn"))) == {imaging.id, review.id, referred.id}


def test_filter_by_urgency(client, login, make, session):
    emergency = make("Em", urgency="emergency", referral_days=0.1)
    urgent = make("Ur", urgency="urgent")
    routine = make("Ro")
    session.commit()
    login("coordinator")
    assert row_ids(client.get("/?urgency=emergency")) == [emergency.id]
    assert row_ids(client.get("/?urgency=urgent")) == [urgent.id]
    assert row_ids(client.get("/?urgency=routine")) == [routine.id]
    assert len(row_ids(client.get("/?urgency=whenever"))) == 3


def test_filter_by_target(client, login, make, session):
    breached = make("Late", referral_days=300)  # 28-day diagnosis target long past
    due_soon = make("Soon", referral_days=25)  # in the last fifth of its 28 days
    on_track = make("Fine", referral_days=1)
    session.commit()
    login("coordinator")
    response = client.get("/?target=breached")
    assert row_ids(response) == [breached.id]
    assert '<tr class="target-breached">' in shown(response) and "Breached" in shown(response)
    response = client.get("/?target=due_soon")
    assert row_ids(response) == [due_soon.id]
    assert "Due soon" in shown(response)
    assert set(row_ids(client.get("/?target=attention"))) == {breached.id, due_soon.id}
    assert set(row_ids(client.get("/"))) == {breached.id, due_soon.id, on_track.id}


def test_filter_mine(client, login, make, session):
    ours = make("Ours", coordinator="coordinator2")
    operated_by = make("Operated", lead_surgeon="surgeon2")
    make("Others")
    session.commit()
    login("coordinator2")
    assert row_ids(client.get("/?mine=1")) == [ours.id]
    assert len(row_ids(client.get("/"))) == 3
    client.post("/logout")
    login("surgeon2")
    assert row_ids(client.get("/?mine=1")) == [operated_by.id]


def test_search_by_mrn_or_name(client, login, make, session):
    smith = make("Smith", given="Joan", mrn="MRN-4471")
    jones = make("Jones", given="Peter", mrn="MRN-4472")
    session.commit()
    login("coordinator")
    assert row_ids(client.get("/?q=mrn-4471")) == [smith.id]
    assert sorted(row_ids(client.get("/?q=MRN-44"))) == sorted([jones.id, smith.id])  # prefix
    assert row_ids(client.get("/?q=4471")) == []  # not a part inside it
    assert row_ids(client.get("/?q=smi")) == [smith.id]
    assert row_ids(client.get("/?q=PETER")) == [jones.id]
    assert row_ids(client.get("/?q=%20jones%20")) == [jones.id]
    assert row_ids(client.get("/?q=nobody")) == []
    assert row_ids(client.get("/?q=smith&state=imaging")) == []  # filters combine


def test_search_treats_wildcards_as_text(client, login, make, session):
    make("Smith")
    session.commit()
    login("coordinator")
    assert row_ids(client.get("/?q=%25")) == []
    assert row_ids(client.get("/?q=_")) == []


def test_sort_orders(client, login, make, session):
    # Created out of every order; referral and due times differ by whole days.
    brown = make("Brown", referral_days=20)
    adams = make("Adams", referral_days=40)
    clark = make("Clark", referral_days=5, state="imaging")
    quiet = make("Davis", referral_days=300, state="surveillance")
    # Seen at the visit booked when surveillance started, no next one booked: no target open.
    quiet.drive.do("record_follow_up", {"imaging_done": True, "status": "ned"})
    session.commit()
    login("coordinator")
    assert row_ids(client.get("/?sort=name")) == [adams.id, brown.id, clark.id, quiet.id]
    assert row_ids(client.get("/?sort=referral")) == [clark.id, brown.id, adams.id, quiet.id]
    # Next target due: the soonest first; a pathway with no open target last.
    assert row_ids(client.get("/?sort=due")) == [adams.id, brown.id, clark.id, quiet.id]
    assert row_ids(client.get("/")) == row_ids(client.get("/?sort=due"))
    assert "None open" in shown(client.get("/?sort=due"))
    # Longest in the current state first.
    assert row_ids(client.get("/?sort=in_state")) == [quiet.id, adams.id, brown.id, clark.id]
    assert row_ids(client.get("/?sort=bogus")) == row_ids(client.get("/?sort=due"))


def test_sort_by_urgency_puts_the_most_urgent_first(client, login, make, session):
    routine = make("Routine", urgency="routine")
    urgent = make("Urgent", urgency="urgent")
    emergency = make("Emergency", urgency="emergency")
    session.commit()
    login("coordinator")
    assert row_ids(client.get("/?sort=urgency")) == [emergency.id, urgent.id, routine.id]


def test_pages(client, login, make, session, app, monkeypatch):
    monkeypatch.setitem(app.config, "WORKLIST_PAGE_SIZE", 2)
    made = [make(name) for name in ("Aa", "Bb", "Cc", "Dd", "Ee")]
    session.commit()
    login("coordinator")
    ids = [p.id for p in made]
    first = client.get("/?sort=name")
    assert row_ids(first) == ids[:2]
    assert "Page 1 of 3" in shown(first) and "5 active pathways shown" in shown(first)
    assert 'href="/?sort=name&amp;page=2"' in first.get_data(as_text=True)  # keeps the sort
    assert row_ids(client.get("/?sort=name&page=2")) == ids[2:4]
    last = client.get("/?sort=name&page=3")
    assert row_ids(last) == ids[4:] and "Page 3 of 3" in shown(last)
    assert row_ids(client.get("/?sort=name&page=4")) == []
    assert row_ids(client.get("/?sort=name&page=0")) == ids[:2]
    assert row_ids(client.get("/?sort=name&page=-3")) == ids[:2]
    assert row_ids(client.get("/?sort=name&page=two")) == ids[:2]
    assert "Page 1 of" not in shown(client.get("/?sort=name&q=Aa"))  # one page: no pager


def test_an_absurd_page_number_is_an_empty_page(client, login, make, session):
    make("Only")
    session.commit()
    login("coordinator")
    response = client.get("/?page=99999999999999999999")
    assert response.status_code == 200
    assert row_ids(response) == []


# -- the MDT list -----------------------------------------------------------------------------


def headings(response) -> list[str]:
    return re.findall(r'<h2 class="h5" id="meeting-\d+">(.*?) <small', shown(response))


def test_mdt_list_groups_by_meeting_with_unscheduled_first(client, login, make, session):
    today = date.today()
    later, sooner = today + timedelta(days=14), today + timedelta(days=7)
    make("Waiting", state="mdt_review")
    make("Imaged", state="imaging")  # not in MDT review: not listed
    second = make("Second", state="mdt_review")
    second.drive.do("schedule_mdt", {"meeting_date": later.isoformat()})
    first = make("First", state="mdt_review")
    first.drive.do("schedule_mdt", {"meeting_date": later.isoformat()})
    first.drive.do("schedule_mdt", {"meeting_date": sooner.isoformat()})  # moved earlier
    session.commit()
    login("viewer")
    response = client.get("/mdt/")
    assert response.status_code == 200
    page = shown(response)
    assert "3 patients in MDT review" in page and "IMAGED" not in page
    assert headings(response) == [
        "Not yet scheduled",
        f"Meeting {sooner:%d %b %Y}",
        f"Meeting {later:%d %b %Y}",
    ]
    sections = page.split('<section class="mdt-group')[1:]
    assert "WAITING, Ann" in sections[0]
    assert "FIRST, Ann" in sections[1] and "SECOND" not in sections[1]
    assert "SECOND, Ann" in sections[2]


def test_mdt_list_shows_what_the_meeting_needs(client, login, make, session):
    case = make("Case", state="mdt_review")
    case.drive.do("record_assessment", {"ecog": 2, "asia_grade": "D"})
    session.commit()
    login("surgeon")
    page = shown(client.get("/mdt/"))
    assert "MRI, Thoracic spine, T7-T9, Bilsky 1b" in page
    assert "No biopsy result" in page
    assert "ASIA D; ECOG 2; Bilsky 1b" in page


def test_a_meeting_before_the_pathway_returned_to_review_does_not_count(
    client, login, make, session
):
    back = make("Back", state="mdt_review")
    back.drive.do("schedule_mdt", {"meeting_date": date.today().isoformat()})
    back.drive.fire("request_imaging")  # the MDT asked for more imaging
    back.drive.fire("refer_to_mdt")
    session.commit()
    login("coordinator")
    assert headings(client.get("/mdt/")) == ["Not yet scheduled"]


def test_empty_mdt_list(client, login, users, session):
    session.commit()
    login("coordinator")
    assert "No pathway is waiting for MDT review." in shown(client.get("/mdt/"))


def test_the_worklist_shows_where_the_clock_that_matters_stands(client, login, make, session):
    """Where the clock that matters stands: "day 20 of 28" for a clock in days (the
    referral's day is day 0), "7 h left" for one in hours, from the pathway row alone."""
    import time_machine

    # Noon in London: the referral 20.25 days before is the morning of 20 calendar days ago.
    with time_machine.travel(datetime(2026, 6, 30, 11, tzinfo=UTC), tick=False):
        days = make("Daycount", referral_days=20.25)  # routine: the 28-day standard
        hours = make("Hourcount", urgency="emergency", referral_days=17 / 24)  # MRI in 24 h
        late = make("Latecount", urgency="emergency", referral_days=27 / 24)
        session.commit()
        login("coordinator")
        page = client.get("/").text

    def countdown(pathway) -> str:
        row = page[page.index(f"/pathways/{pathway.id}") :]
        row = row[: row.index("</tr>")]
        return re.search(r'class="small countdown">([^<]*)<', row).group(1)

    assert countdown(days) == "day 20 of 28"
    assert countdown(hours) == "7 h left"
    assert countdown(late) == "3 h over"


def test_countdown_reads_the_due_time_in_the_clocks_unit():
    from tracker.engine.clocks import countdown

    now = datetime(2026, 6, 30, 12, tzinfo=UTC)
    assert countdown("rtt_62", now + timedelta(days=5, hours=6), now) == "day 57 of 62"
    assert countdown("rtt_62", now + timedelta(days=62), now) == "day 0 of 62"
    assert countdown("rtt_62", now + timedelta(hours=1), now) == "day 62 of 62"
    assert countdown("rtt_62", now - timedelta(days=2, hours=1), now) == "day 64 of 62"
    assert countdown("mscc_mri", now + timedelta(hours=6, minutes=30), now) == "7 h left"
    assert countdown("mscc_mri", now - timedelta(minutes=5), now) == "1 h over"
    assert countdown("follow_up", datetime(2026, 7, 4, 23, tzinfo=UTC), now) == "due in 4 days"
    assert countdown("follow_up", datetime(2026, 6, 28, 23, tzinfo=UTC), now) == "2 days overdue"
    assert countdown(None, None, now) == ""


def test_a_filtered_total_is_counted_up_to_a_limit(client, login, make, session, monkeypatch):
    """Past COUNT_LIMIT the page says "more than" instead of counting every match (the
    breached filter at 100,000 pathways); below it the total is exact, as before."""
    late = [make(f"Late{i}", referral_days=300 + i) for i in range(4)]
    session.commit()
    login("coordinator")
    monkeypatch.setattr(worklist_routes, "COUNT_LIMIT", 4)
    page = shown(client.get("/?target=breached"))
    assert "4 active pathways shown" in page and "More than" not in page
    monkeypatch.setattr(worklist_routes, "COUNT_LIMIT", 3)
    monkeypatch.setitem(client.application.config, "WORKLIST_PAGE_SIZE", 2)
    response = client.get("/?target=breached")
    page = shown(response)
    assert "More than 3 active pathways shown" in page
    assert "Page 1 of more than 2" in page
    assert len(row_ids(response)) == 2
    # The pages go on past the limit: the other two are on page 2.
    assert set(row_ids(client.get("/?target=breached&page=2"))) | set(row_ids(response)) == {
        p.id for p in late
    }
