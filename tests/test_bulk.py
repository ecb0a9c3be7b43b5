"""Bulk actions on the patients ticked on the worklist or the PTL: a handover of the lead
surgeon or coordinator, a listing on an MDT meeting; all or nothing, each pathway at the
version the list showed, one step (and audit entry) per pathway, a summary afterwards."""

from __future__ import annotations

import html
import uuid
from datetime import date, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import delete, func, select

from tests.helpers import driver, new_pathway
from tracker.audit.models import AuditEntry
from tracker.bulk import services as bulk
from tracker.core.clock import local_zone
from tracker.engine.models import Event, Pathway, PathwayTask
from tracker.extensions import db
from tracker.mdt import services as mdt
from tracker.mdt.models import MdtCase
from tracker.teams.models import UserTeam

HANDOVER = bulk.HANDOVER


def shown(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def fresh(pathway_id: int) -> Pathway:
    db.session.expire_all()
    return db.session.get(Pathway, pathway_id)


def events(trigger: str) -> list[Event]:
    return list(db.session.scalars(select(Event).where(Event.trigger == trigger)))


def audited(action: str) -> list[AuditEntry]:
    return list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def tokens(*pathways, stale: Pathway | None = None) -> list[str]:
    """The rows as the list showed them; ``stale`` as it was one step ago."""
    return [f"{p.id}:{p.version - (1 if p is stale else 0)}" for p in pathways]


def form(action: str, rows: list[str], **values) -> dict:
    return {
        "action": action,
        "pathway": rows,
        "request_id": uuid.uuid4().hex,
        "back_page": "worklist",
        "back_query": "state=mdt_review&sort=name&page=1",
        **values,
    }


def switch(client, login, username: str) -> None:
    client.post("/logout")
    login(username)


@pytest.fixture
def three(users, session):
    """Three open pathways, lead surgeon 'surgeon', coordinator 'coordinator'."""
    return [driver(users).pathway for _ in range(3)]


@pytest.fixture
def in_review(users, session):
    return [driver(users).walk_to("mdt_review").pathway for _ in range(3)]


def meeting(users, days: int = 7):
    day = (datetime.now(local_zone()) + timedelta(days=days)).date()
    return mdt.create_meeting(
        {
            "team": "metastatic",
            "meeting_date": day.isoformat(),
            "start_time": "08:00",
            "location": "Seminar room 2",
            "chair": "surgeon",
        },
        users["coordinator"],
    )


# -- handing over ---------------------------------------------------------------------------


def test_the_review_page_shows_the_ticked_patients_and_the_way_back(
    client, login, users, session, three
):
    session.commit()
    login("coordinator")
    query = {
        "action": "lead_surgeon",
        "scope": "ticked",
        "pathway": tokens(*three[:2]),
        "page_row": tokens(*three),
        "back_page": "worklist",
        "back_query": "state=referred&page=2",
    }
    page = shown(client.get("/bulk/", query_string=query))
    assert "Assign a lead surgeon: 2 patients" in page
    assert page.count('name="pathway"') == 2
    assert 'href="/?state=referred&page=2"' in page
    # Every patient on the page, without a tick (no JavaScript needed).
    page = shown(client.get("/bulk/", query_string={**query, "scope": "page"}))
    assert "Assign a lead surgeon: 3 patients" in page
    # Nothing ticked: back to the list, saying what to do.
    response = client.get("/bulk/", query_string={**query, "pathway": []})
    assert response.status_code == 302
    assert response.headers["Location"] == "/?state=referred&page=2"
    assert "Tick at least one patient" in shown(client.get(response.headers["Location"]))


def test_bulk_handover_of_the_lead_surgeon(client, login, users, session, three):
    session.commit()
    versions = {p.id: p.version for p in three}
    login("coordinator")
    response = client.post(
        "/bulk/", data=form("lead_surgeon", tokens(*three), lead_surgeon="surgeon2", note="Leave")
    )
    assert response.status_code == 302, shown(response)
    location = urlsplit(response.headers["Location"])
    assert (location.path, parse_qs(location.query)) == (
        "/",
        {"state": ["mdt_review"], "sort": ["name"], "page": ["1"]},
    )
    assert "Lead surgeon set to Surgeon2 on 3 pathways." in shown(
        client.get(response.headers["Location"])
    )
    for p in three:
        p = fresh(p.id)
        assert p.lead_surgeon.username == "surgeon2" and p.coordinator.username == "coordinator"
        assert p.version == versions[p.id] + 1
    handovers = events(HANDOVER)
    assert sorted(e.pathway_id for e in handovers) == sorted(p.id for p in three)
    assert all(e.data == {"lead_surgeon": "surgeon2", "note": "Leave"} for e in handovers)
    assert all(e.recorded_by_id == users["coordinator"].id for e in handovers)
    # One audit entry per pathway, as recording the step from its page writes.
    entries = [a for a in audited("record_event") if f'"trigger": "{HANDOVER}"' in a.detail]
    assert sorted(a.pathway_id for a in entries) == sorted(p.id for p in three)
    assert all(a.username == "coordinator" for a in entries)


def test_bulk_handover_of_the_coordinator_by_a_surgeon_skips_those_already_theirs(
    client, login, users, session, three
):
    driver_ = driver(users)
    driver_.do(HANDOVER, {"coordinator": "coordinator2"})
    already = driver_.pathway
    session.commit()
    login("surgeon")
    response = client.post(
        "/bulk/", data=form("coordinator", tokens(*three, already), coordinator="coordinator2")
    )
    assert response.status_code == 302
    text = shown(client.get(response.headers["Location"]))
    assert "Coordinator set to Coordinator2 on 3 pathways." in text
    assert f"Coordinator2 is already the coordinator): {already.patient.name}." in text
    assert len(events(HANDOVER)) == 4  # three now, the one before


def test_the_form_sent_twice_records_once(client, login, users, session, three):
    session.commit()
    login("coordinator")
    data = form("lead_surgeon", tokens(*three), lead_surgeon="surgeon2")
    assert client.post("/bulk/", data=data).status_code == 302
    again = client.post("/bulk/", data=data)
    assert again.status_code == 302
    assert "This was done already" in shown(client.get(again.headers["Location"]))
    assert len(events(HANDOVER)) == 3


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({}, "Choose the new lead surgeon"),
        ({"lead_surgeon": "nobody"}, "No active user is called 'nobody'"),
        (
            {"lead_surgeon": "coordinator2"},
            "Coordinator2 is a care coordinator, not a lead surgeon",
        ),
    ],
)
def test_a_bad_choice_is_refused_saying_why_and_nothing_written(
    client, login, users, session, three, values, words
):
    session.commit()
    login("coordinator")
    response = client.post("/bulk/", data=form("lead_surgeon", tokens(*three), **values))
    assert response.status_code == 422
    assert words in shown(response)
    assert events(HANDOVER) == []


# -- all or nothing -------------------------------------------------------------------------


def assert_nothing_changed(three, versions):
    for p in three:
        p = fresh(p.id)
        assert p.lead_surgeon.username == "surgeon"
        assert p.version == versions[p.id]
    assert events(HANDOVER) == []
    assert [a for a in audited("record_event") if HANDOVER in a.detail] == []


def test_one_pathway_changed_meanwhile_changes_none(client, login, users, session, three):
    session.commit()
    versions = {p.id: p.version for p in three}
    login("coordinator")
    stale = three[1]
    response = client.post(
        "/bulk/", data=form("lead_surgeon", tokens(*three, stale=stale), lead_surgeon="surgeon2")
    )
    assert response.status_code == 409
    text = shown(response)
    assert "Nothing was changed." in text
    name = f"{stale.patient.name} (MRN {stale.patient.mrn})"
    assert f"{name}: This pathway changed since you opened it" in text
    assert text.count("changed since you opened it") == 1
    assert_nothing_changed(three, versions)


def test_one_pathway_whose_state_does_not_allow_it_changes_none(
    client, login, users, session, three
):
    closed = driver(users)
    closed.do("withdraw", {"reason": "declined"})
    session.commit()
    versions = {p.id: p.version for p in three}
    login("coordinator")
    rows = tokens(three[0], closed.pathway, *three[1:])
    response = client.post("/bulk/", data=form("lead_surgeon", rows, lead_surgeon="surgeon2"))
    assert response.status_code == 409
    assert (
        f"{closed.pathway.patient.name} (MRN {closed.pathway.patient.mrn}): 'Handover' cannot be "
        "recorded while the pathway is in 'Withdrawn'"
    ) in shown(response)
    assert_nothing_changed(three, versions)


def test_stale_and_not_allowed_together_are_both_named(users, session, three):
    closed = driver(users)
    closed.do("withdraw", {"reason": "declined"})
    selection = bulk.parse_selection(tokens(*three, closed.pathway, stale=three[2]))
    with pytest.raises(bulk.BulkRefused) as refused:
        bulk.apply(
            "lead_surgeon", {"lead_surgeon": "surgeon2"}, selection, users["coordinator"], "r1"
        )
    failed = {f.pathway_id: f.reason for f in refused.value.failures}
    assert set(failed) == {three[2].id, closed.pathway.id}
    assert "changed since you opened it" in failed[three[2].id]
    assert "'Withdrawn'" in failed[closed.pathway.id]
    assert events(HANDOVER) == []


@pytest.fixture
def guarded_action():
    """An action whose step a guard may refuse only as it is recorded (after the steps of
    the pathways before it were written): biopsy requested, which needs imaging reported.
    Registered as any other feature registers one."""
    trigger = "request_biopsy"
    action = bulk.register(
        bulk.Action(
            "test_biopsy",
            "Request a biopsy",
            trigger,
            check=lambda values, now: ({}, {}),
            data=lambda values, pathway: {},
            summary=lambda values, count: f"Biopsy requested on {count} pathways.",
        )
    )
    yield action
    bulk.ACTIONS.pop(action.code)


def test_a_step_refused_as_it_is_recorded_undoes_those_written_before(
    client, login, users, session, guarded_action
):
    ready = [driver(users) for _ in range(2)]
    for drive in ready:
        drive.do("request_imaging")
        drive.do("record_imaging")
    unready = driver(users)
    unready.do("request_imaging")  # no imaging reported yet: the guard refuses
    session.commit()
    pathways = [r.pathway for r in ready] + [unready.pathway]
    login("coordinator")
    response = client.post("/bulk/", data=form("test_biopsy", tokens(*pathways)))
    assert response.status_code == 409
    assert f"{unready.pathway.patient.name} (MRN {unready.pathway.patient.mrn}):" in shown(response)
    assert all(fresh(p.id).state == "imaging" for p in pathways)
    assert events(guarded_action.trigger) == []
    assert [a for a in audited("record_event") if guarded_action.trigger in a.detail] == []


def test_every_row_is_one_a_list_showed(client, login, users, session, three):
    session.commit()
    login("coordinator")
    for bad in (["x:1"], [f"{three[0].id}"], ["0:1"], [f"{three[0].id}:-1"]):
        response = client.post("/bulk/", data=form("lead_surgeon", bad, lead_surgeon="surgeon2"))
        assert response.status_code == 400
        assert "The selection is not one a list showed" in shown(response)
    response = client.post("/bulk/", data=form("lead_surgeon", [], lead_surgeon="surgeon2"))
    assert response.status_code == 422
    assert "Tick at least one patient" in shown(response)
    response = client.post("/bulk/", data=form("paint_it_red", tokens(*three)))
    assert response.status_code == 422
    assert "Choose what to do: Assign a lead surgeon" in shown(response)
    assert events(HANDOVER) == []


# -- access ---------------------------------------------------------------------------------


def test_a_viewer_and_an_administrator_take_no_bulk_action(client, login, users, session, three):
    session.commit()
    for who in ("viewer", "admin"):
        switch(client, login, who)
        page = shown(client.get("/"))
        assert 'name="pathway"' not in page and "bulk-form" not in page
        response = client.post(
            "/bulk/", data=form("lead_surgeon", tokens(*three), lead_surgeon="surgeon2")
        )
        assert response.status_code == 403
        assert (
            client.get(
                "/bulk/", query_string={"action": "lead_surgeon", "pathway": tokens(*three)}
            ).status_code
            == 403
        )
    assert events(HANDOVER) == []


def test_the_worklist_and_ptl_offer_tick_boxes_to_who_may_act(client, login, users, session, three):
    session.commit()
    login("coordinator")
    page = client.get("/").get_data(as_text=True)
    for p in three:
        assert f'name="pathway" value="{p.id}:{p.version}"' in page
        assert f'name="page_row" value="{p.id}:{p.version}"' in page
    assert '<option value="lead_surgeon">Assign a lead surgeon</option>' in page
    assert '<option value="mdt">List on an MDT meeting</option>' in page
    ptl = client.get("/ptl").get_data(as_text=True)
    assert 'id="bulk-form"' in ptl and 'name="back_page" value="ptl"' in ptl


def test_only_pathways_the_user_may_see_are_acted_on(client, login, users, session, three):
    # coordinator2 works in the spine team only; the three are the metastatic team's.
    session.execute(
        delete(UserTeam).where(
            UserTeam.user_id == users["coordinator2"].id, UserTeam.team != "spine"
        )
    )
    session.commit()
    login("coordinator2")
    response = client.post(
        "/bulk/", data=form("lead_surgeon", tokens(*three), lead_surgeon="surgeon2")
    )
    assert response.status_code == 409
    text = shown(response)
    assert f"Pathway {three[0].id}: not found, or not in your teams" in text
    for p in three:  # nothing said of whose they are
        assert p.patient.name not in text and p.patient.mrn not in text
    page = shown(
        client.get("/bulk/", query_string={"action": "lead_surgeon", "pathway": tokens(*three)})
    )
    assert "Not found, or not in your teams." in page
    assert all(p.patient.name not in page for p in three)
    assert events(HANDOVER) == []


# -- MDT listing ----------------------------------------------------------------------------


def test_bulk_listing_on_an_mdt_meeting(client, login, users, session, in_review):
    chosen = meeting(users)
    session.commit()
    login("coordinator")
    query = {
        "action": "mdt",
        "pathway": tokens(*in_review),
        "back_page": "ptl",
        "back_query": "band=0-28",
    }
    review = shown(client.get("/bulk/", query_string=query))
    assert f'<option value="{chosen.id}">Metastatic' in review
    values = {
        "meeting_id": str(chosen.id),
        "question": "Surgery or radiotherapy first?",
        "presenter": "surgeon",
        "triage": "full_discussion",
    }
    data = {
        **form("mdt", tokens(*in_review), **values),
        "back_page": "ptl",
        "back_query": "band=0-28",
    }
    response = client.post("/bulk/", data=data)
    assert response.status_code == 302, shown(response)
    assert response.headers["Location"] == "/ptl?band=0-28"
    summary = shown(client.get("/"))
    assert f"Listed 3 pathways on the MDT meeting of {bulk.meeting_words(chosen)}." in summary
    cases = list(db.session.scalars(select(MdtCase).where(MdtCase.meeting_id == chosen.id)))
    assert sorted(c.pathway_id for c in cases) == sorted(p.id for p in in_review)
    assert [c.position for c in sorted(cases, key=lambda c: c.id)] == [1, 2, 3]
    listed = events(bulk.LISTING)
    assert all(e.data["meeting_id"] == chosen.id for e in listed)
    assert all(e.data["question"] == "Surgery or radiotherapy first?" for e in listed)
    entries = [a for a in audited("record_event") if bulk.LISTING in a.detail]
    assert sorted(a.pathway_id for a in entries) == sorted(p.id for p in in_review)
    assert len(audited("mdt_case_listed")) == 3


def test_bulk_listing_with_one_pathway_not_in_review_lists_none(
    client, login, users, session, in_review
):
    chosen = meeting(users)
    referred = driver(users).pathway
    session.commit()
    login("coordinator")
    values = {
        "meeting_id": str(chosen.id),
        "question": "Q",
        "presenter": "surgeon",
        "triage": "full_discussion",
    }
    rows = tokens(*in_review, referred)
    response = client.post("/bulk/", data=form("mdt", rows, **values))
    assert response.status_code == 409
    assert (
        f"{referred.patient.name} (MRN {referred.patient.mrn}): 'MDT meeting scheduled' cannot "
        "be recorded while the pathway is in 'Referred'"
    ) in shown(response)
    assert db.session.scalar(select(func.count()).select_from(MdtCase)) == 0
    assert events(bulk.LISTING) == []
    # And with one already listed on that meeting: refused by the meeting's own rule.
    drive = driver(users).walk_to("mdt_review")
    bulk.apply(
        "mdt", values, bulk.parse_selection(tokens(drive.pathway)), users["coordinator"], "first"
    )
    session.commit()
    response = client.post(
        "/bulk/", data=form("mdt", tokens(*in_review, fresh(drive.pathway.id)), **values)
    )
    assert response.status_code == 409
    assert "This pathway is already listed on that meeting" in shown(response)
    assert db.session.scalar(select(func.count()).select_from(MdtCase)) == 1


def test_bulk_listing_needs_a_meeting_ahead_and_its_details(
    client, login, users, session, in_review
):
    session.commit()
    login("coordinator")
    response = client.post("/bulk/", data=form("mdt", tokens(*in_review)))
    assert response.status_code == 422
    text = shown(response)
    for words in ("Choose the meeting", "Give the clinical question", "Choose who presents"):
        assert words in text
    response = client.post("/bulk/", data=form("mdt", tokens(*in_review), meeting_id="99999"))
    assert "There is no MDT meeting 99999" in shown(response)
    assert events(bulk.LISTING) == []


# -- a task on each -------------------------------------------------------------------------


def in_days(days: int) -> date:
    return datetime.now(local_zone()).date() + timedelta(days=days)


def task_rows() -> list[PathwayTask]:
    db.session.expire_all()
    return list(db.session.scalars(select(PathwayTask).order_by(PathwayTask.pathway_id)))


def task_values(**values) -> dict:
    return {"what": "Chase MRI report", "owner": "surgeon2", "due_on": in_days(7), **values}


def assert_no_task_written(pathways, versions):
    assert task_rows() == []
    assert events(bulk.ADD_TASK) == []
    assert [a for a in audited("record_event") if bulk.ADD_TASK in a.detail] == []
    assert all(fresh(p.id).version == versions[p.id] for p in pathways)


def test_bulk_add_a_task_to_each(client, login, users, session, three):
    session.commit()
    versions = {p.id: p.version for p in three}
    login("coordinator")
    review = shown(client.get("/bulk/", query_string={"action": "task", "pathway": tokens(*three)}))
    assert "Add a task: 3 patients" in review
    assert '<option value="surgeon2">Surgeon2 (surgeon)</option>' in review
    assert '<option value="coordinator2">Coordinator2 (care coordinator)</option>' in review
    assert 'value="viewer"' not in review and 'value="admin"' not in review
    assert 'name="due_on" type="date"' in review and 'name="what"' in review
    due = in_days(7)
    response = client.post("/bulk/", data=form("task", tokens(*three), **task_values()))
    assert response.status_code == 302, shown(response)
    assert (
        f"Task 'Chase MRI report' added for Surgeon2 on 3 pathways, due by {due:%d %b %Y}."
        in shown(client.get(response.headers["Location"]))
    )
    rows = task_rows()
    assert sorted(t.pathway_id for t in rows) == sorted(p.id for p in three)
    for task in rows:
        assert (task.what, task.owner_id, task.due_on, task.status) == (
            "Chase MRI report",
            users["surgeon2"].id,
            due,
            "open",
        )
    added = events(bulk.ADD_TASK)
    assert sorted(e.pathway_id for e in added) == sorted(p.id for p in three)
    assert all(
        e.data == {"what": "Chase MRI report", "owner": "surgeon2", "due_on": due.isoformat()}
        for e in added
    )
    assert all(e.recorded_by_id == users["coordinator"].id for e in added)
    assert {t.pathway_id: t.seq for t in rows} == {e.pathway_id: e.seq for e in added}
    for p in three:
        assert fresh(p.id).version == versions[p.id] + 1
    entries = [a for a in audited("record_event") if f'"trigger": "{bulk.ADD_TASK}"' in a.detail]
    assert sorted(a.pathway_id for a in entries) == sorted(p.id for p in three)
    assert all(a.username == "coordinator" for a in entries)


def test_bulk_task_with_one_pathway_changed_meanwhile_adds_none(
    client, login, users, session, three
):
    session.commit()
    versions = {p.id: p.version for p in three}
    login("surgeon")
    stale = three[2]
    response = client.post(
        "/bulk/", data=form("task", tokens(*three, stale=stale), **task_values())
    )
    assert response.status_code == 409
    text = shown(response)
    assert "Nothing was changed." in text
    name = f"{stale.patient.name} (MRN {stale.patient.mrn})"
    assert f"{name}: This pathway changed since you opened it" in text
    assert text.count("changed since you opened it") == 1
    assert_no_task_written(three, versions)


@pytest.mark.parametrize(
    ("values", "words"),
    [
        (
            {"what": "", "owner": "", "due_on": ""},
            [
                "Say what needs doing",
                "Choose who the task is for: a coordinator or a surgeon",
                "Give the date the task is due by",
            ],
        ),
        ({"due_on": "yesterday"}, ["The due date {yesterday} is in the past: give today or"]),
        ({"due_on": "31/01/2030"}, ["'31/01/2030' is not a date: give it as YYYY-MM-DD"]),
        ({"owner": "nobody"}, ["No active user is called 'nobody'"]),
        ({"owner": "viewer"}, ["Viewer is a viewer: give the task to a coordinator or a surgeon"]),
        ({"what": "x" * 201}, ["at most 200 characters (it has 201)"]),
    ],
)
def test_a_bad_task_is_refused_saying_why_and_nothing_written(
    client, login, users, session, three, values, words
):
    session.commit()
    versions = {p.id: p.version for p in three}
    yesterday = in_days(-1)
    if values.get("due_on") == "yesterday":
        values = {"due_on": yesterday.isoformat()}
    login("coordinator")
    response = client.post("/bulk/", data=form("task", tokens(*three), **task_values(**values)))
    assert response.status_code == 422
    text = shown(response)
    for expected in words:
        assert expected.format(yesterday=f"{yesterday:%d %b %Y}") in text
    assert_no_task_written(three, versions)


def test_an_owner_outside_one_pathways_team_adds_the_task_to_none(
    client, login, users, session, three
):
    spine = new_pathway(users["coordinator"], team="spine")
    # surgeon2 works in the metastatic team only: they could not see the spine patient.
    session.execute(
        delete(UserTeam).where(
            UserTeam.user_id == users["surgeon2"].id, UserTeam.team != "metastatic"
        )
    )
    session.commit()
    pathways = [*three, spine]
    versions = {p.id: p.version for p in pathways}
    login("coordinator")
    response = client.post("/bulk/", data=form("task", tokens(*pathways), **task_values()))
    assert response.status_code == 409
    text = shown(response)
    assert "Nothing was changed." in text and "1 of the selected pathway cannot" in text
    assert (
        f"{spine.patient.name} (MRN {spine.patient.mrn}): Owner: Surgeon2 is not in Spine"
    ) in text
    failures = text.split('id="bulk-failures"')[1].split("</div>")[0]
    assert failures.count("<li>") == 1  # the other three could take it
    assert_no_task_written(pathways, versions)


def test_a_form_without_its_request_id_says_so(client, login, users, session, three):
    session.commit()
    login("coordinator")
    data = {**form("task", tokens(*three), **task_values()), "request_id": ""}
    response = client.post("/bulk/", data=data)
    assert response.status_code == 422
    assert "The form is incomplete: open it again from the list" in shown(response)
    assert task_rows() == []
