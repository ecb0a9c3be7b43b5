"""Tracking notes and tasks: the steps, their refusals, the derived rows, verify and voids."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.helpers import driver, make_user
from tracker.engine import derive, services, tags, verify
from tracker.engine import steps as d
from tracker.engine.errors import InvalidData, TriggerNotAllowed
from tracker.engine.history import History
from tracker.engine.models import Event, PathwayTask
from tracker.extensions import db
from tracker.teams.models import UserTeam
from tracker.tracking import services as tracking


def _today() -> date:
    return datetime.now(UTC).date()


def _run(users, state="imaging"):
    run = driver(users).walk_to(state)
    db.session.flush()
    return run


def _tasks(pathway) -> list[PathwayTask]:
    return list(
        db.session.scalars(
            select(PathwayTask)
            .where(PathwayTask.pathway_id == pathway.id)
            .order_by(PathwayTask.seq)
        )
    )


def _verify(pathway) -> list[str]:
    db.session.flush()
    db.session.expire_all()
    events = list(
        db.session.scalars(select(Event).where(Event.pathway_id == pathway.id).order_by(Event.seq))
    )
    return verify.check(pathway, events)


def test_the_tracking_steps_are_declared_with_their_tags():
    for trigger, tag in (
        (d.TRACKING_NOTE_TRIGGER, tags.TRACKING_NOTE),
        (d.ADD_TASK_TRIGGER, tags.TASK_ADDED),
        (d.UPDATE_TASK_TRIGGER, tags.TASK_CHANGED),
        (d.COMPLETE_TASK_TRIGGER, tags.TASK_DONE),
        (d.CANCEL_TASK_TRIGGER, tags.TASK_CANCELLED),
    ):
        step = d.entry(trigger)
        assert tag in step.tags and tags.VOID_TRANSPARENT in step.tags
        assert not d.changes_state(trigger) and d.is_step(trigger)
        assert d.roles_for(trigger) == frozenset({"coordinator", "surgeon"})
    assert d.label(d.ADD_TASK_TRIGGER) == "Add task"


def test_a_task_is_added_changed_and_done_and_each_is_a_step(users):
    run = _run(users)
    pathway = run.pathway
    due = _today() + timedelta(days=3)
    added = tracking.add_task(pathway, "Chase MRI report", "surgeon", due, users["coordinator"])
    assert added.created and added.event.trigger == d.ADD_TASK_TRIGGER
    [task] = _tasks(pathway)
    assert (task.seq, task.what, task.owner.username, task.due_on, task.status) == (
        added.event.seq,
        "Chase MRI report",
        "surgeon",
        due,
        "open",
    )
    assert task.created_by_id == users["coordinator"].id and task.closed_at is None

    later = _today() + timedelta(days=10)
    tracking.update_task(
        pathway, task.seq, users["coordinator"], owner="coordinator2", due_on=later
    )
    db.session.flush()
    assert (task.owner.username, task.due_on) == ("coordinator2", later)

    done = tracking.complete_task(pathway, task.seq, users["surgeon"], note="Reported today")
    db.session.flush()
    assert task.status == "done" and task.closed_seq == done.event.seq
    assert task.closed_by_id == users["surgeon"].id and task.close_note == "Reported today"
    assert _verify(pathway) == []
    triggers = [e.trigger for e in services.load_events(pathway)][-3:]
    assert triggers == [d.ADD_TASK_TRIGGER, d.UPDATE_TASK_TRIGGER, d.COMPLETE_TASK_TRIGGER]


def test_cancelling_needs_a_reason_and_a_closed_task_cannot_be_closed_again(users):
    pathway = _run(users).pathway
    added = tracking.add_task(pathway, "Book CT", "coordinator", _today(), users["coordinator"])
    number = added.event.seq
    with pytest.raises(InvalidData) as refused:
        tracking.cancel_task(pathway, number, "", users["coordinator"])
    assert "Reason for cancelling is required" in str(refused.value.errors["reason"])
    tracking.cancel_task(pathway, number, "Done elsewhere", users["coordinator"])
    db.session.flush()
    [task] = _tasks(pathway)
    assert (task.status, task.close_note) == ("cancelled", "Done elsewhere")
    with pytest.raises(InvalidData) as again:
        tracking.complete_task(pathway, number, users["coordinator"])
    assert "is already cancelled" in again.value.errors["task"][0]


def test_the_refusals_say_what_is_wrong(users):
    pathway = _run(users).pathway
    coordinator = users["coordinator"]
    tomorrow = _today() + timedelta(days=1)
    with pytest.raises(InvalidData) as missing:
        services.record(
            pathway,
            d.ADD_TASK_TRIGGER,
            {"what": "Chase"},
            datetime.now(UTC),
            coordinator,
            pathway.version,
            services.new_request_id(),
        )
    assert set(missing.value.errors) == {"owner", "due_on"}
    assert "Owner is required" in missing.value.errors["owner"][0]
    assert "Due by is required" in missing.value.errors["due_on"][0]

    with pytest.raises(InvalidData) as past:
        tracking.add_task(
            pathway, "Chase", "coordinator", _today() - timedelta(days=1), coordinator
        )
    assert "in the past" in past.value.errors["due_on"][0]

    with pytest.raises(InvalidData) as nobody:
        tracking.add_task(pathway, "Chase", "nobody", tomorrow, coordinator)
    assert "no active user is called 'nobody'" in nobody.value.errors["owner"][0]

    users["surgeon2"].active = False
    db.session.flush()
    with pytest.raises(InvalidData) as inactive:
        tracking.add_task(pathway, "Chase", "surgeon2", tomorrow, coordinator)
    assert "no active user" in inactive.value.errors["owner"][0]

    with pytest.raises(InvalidData) as viewer:
        tracking.add_task(pathway, "Chase", "viewer", tomorrow, coordinator)
    assert "not a coordinator or surgeon" in viewer.value.errors["owner"][0]

    outsider = make_user("outsider", "coordinator")
    db.session.flush()
    db.session.execute(UserTeam.__table__.delete().where(UserTeam.user_id == outsider.id))
    db.session.add(UserTeam(user_id=outsider.id, team="bone"))
    db.session.flush()
    with pytest.raises(InvalidData) as other_team:
        tracking.add_task(pathway, "Chase", "outsider", tomorrow, coordinator)
    assert "cannot see the pathway" in other_team.value.errors["owner"][0]

    with pytest.raises(InvalidData) as long_note:
        tracking.add_tracking_note(pathway, "x" * 281, coordinator)
    assert "at most 280" in long_note.value.errors["note"][0]

    with pytest.raises(InvalidData) as no_change:
        tracking.update_task(pathway, 1, coordinator)
    assert "Give a new owner, a new due date or both" in no_change.value.errors["owner"][0]
    assert _tasks(pathway) == []  # nothing was written by any refusal


def test_a_task_of_another_pathway_cannot_be_named(users):
    first, second = _run(users).pathway, _run(users).pathway
    added = tracking.add_task(first, "Chase", "coordinator", _today(), users["coordinator"])
    with pytest.raises(InvalidData) as refused:
        tracking.complete_task(second, added.event.seq, users["coordinator"])
    assert "is not a task of this pathway" in refused.value.errors["task"][0]
    [row] = _tasks(first)
    assert tracking.task_by_id(second, row.id) is None
    assert tracking.task_by_id(first, row.id) is row


def test_the_latest_tracking_note_is_kept_on_the_pathway(users):
    pathway = _run(users).pathway
    first = datetime.now(UTC) - timedelta(hours=2)
    tracking.add_tracking_note(
        pathway, "Awaiting MRI slot", users["coordinator"], occurred_at=first
    )
    tracking.add_tracking_note(pathway, "MRI booked for Friday", users["coordinator"])
    assert pathway.tracking_note == "MRI booked for Friday"
    assert pathway.tracking_note_at > first
    entry = d.entry(d.TRACKING_NOTE_TRIGGER)
    assert entry.label == "Tracking note"
    assert _verify(pathway) == []


def test_verify_finds_task_rows_and_notes_that_differ_from_the_replay(users):
    pathway = _run(users).pathway
    tracking.add_task(pathway, "Chase", "coordinator", _today(), users["coordinator"])
    tracking.add_tracking_note(pathway, "On track", users["coordinator"])
    db.session.flush()
    [task] = _tasks(pathway)
    task.status, task.closed_at = "done", datetime.now(UTC)
    pathway.tracking_note = "Edited by hand"
    problems = _verify_without_expiring(pathway)
    assert any("pathway_task rows" in p and "done" in p for p in problems)
    assert any(p.startswith("tracking_note is Edited by hand") for p in problems)
    db.session.delete(task)
    db.session.flush()
    assert any("pathway_task rows []" in p for p in _verify_without_expiring(pathway))


def _verify_without_expiring(pathway):
    db.session.flush()
    events = services.load_events(pathway)
    return verify.check(pathway, events, task_rows=_tasks(pathway))


def test_verify_all_checks_the_task_rows(users, app):
    pathway = _run(users).pathway
    tracking.add_task(pathway, "Chase", "coordinator", _today(), users["coordinator"])
    db.session.flush()
    assert verify.verify_all()[0] == []
    db.session.execute(
        PathwayTask.__table__.update().where(PathwayTask.pathway_id == pathway.id).values(what="X")
    )
    found = verify.verify_all()[0]
    assert any(pid == pathway.id and "pathway_task rows" in why for pid, why in found)


def test_tracking_steps_do_not_stop_a_void_and_a_voided_task_is_gone(users):
    run = _run(users, "imaging")
    pathway = run.pathway
    tracking.add_task(pathway, "Chase", "coordinator", _today(), users["coordinator"])
    tracking.add_tracking_note(pathway, "Waiting", users["coordinator"])
    # The tracking steps are void-transparent: the last state change can still be voided.
    assert (
        services.void_refusal(pathway, users["coordinator"], services.load_history(pathway)) is None
    )
    services.void_last_step(
        pathway, "Wrong patient", users["coordinator"], pathway.version, services.new_request_id()
    )
    db.session.flush()
    assert pathway.state == "referred"
    assert [t.status for t in _tasks(pathway)] == ["open"]  # the task still stands
    assert _verify(pathway) == []

    # The derivation honours a void of the step that created a task: no row, no note.
    events = services.load_events(pathway)
    add = next(e for e in events if e.trigger == d.ADD_TASK_TRIGGER)
    note = next(e for e in events if e.trigger == d.TRACKING_NOTE_TRIGGER)
    history = History.from_events(events)
    history.by_seq[add.seq].voided_by = 99
    history.by_seq[note.seq].voided_by = 99
    derived = derive.derive_for(pathway, history, datetime.now(UTC))
    assert derived.tasks == () and derived.tracking_note is None


def test_an_amended_task_is_derived_as_corrected(users):
    pathway = _run(users).pathway
    added = tracking.add_task(pathway, "Chase MRI", "coordinator", _today(), users["coordinator"])
    services.amend(
        pathway,
        added.event.seq,
        {"what": "Chase CT", "owner": "surgeon"},
        "Wrong scan",
        users["coordinator"],
        pathway.version,
        services.new_request_id(),
    )
    db.session.flush()
    [task] = _tasks(pathway)
    assert (task.what, task.owner.username) == ("Chase CT", "surgeon")
    assert _verify(pathway) == []


def test_a_correction_gives_a_task_only_to_someone_who_may_own_it(users):
    """A correction is held to the owner rule of a new task (a coordinator or surgeon of
    the pathway's team), but not to a due date of today or later: it says what was
    agreed at the time."""
    pathway = _run(users).pathway
    coordinator = users["coordinator"]
    added = tracking.add_task(pathway, "Chase MRI", "coordinator", _today(), coordinator)
    outsider = make_user("outsider", "coordinator")
    db.session.flush()
    db.session.execute(UserTeam.__table__.delete().where(UserTeam.user_id == outsider.id))
    db.session.add(UserTeam(user_id=outsider.id, team="bone"))
    db.session.flush()

    def amend(changes):
        return services.amend(
            pathway,
            added.event.seq,
            changes,
            "Wrong owner",
            coordinator,
            pathway.version,
            services.new_request_id(),
        )

    for owner, words in (("outsider", "cannot see the pathway"), ("viewer", "coordinator or")):
        with pytest.raises(InvalidData) as refused:
            amend({"owner": owner})
        assert list(refused.value.errors) == ["changes.owner"]
        assert words in refused.value.errors["changes.owner"][0]
    assert [t.owner.username for t in _tasks(pathway)] == ["coordinator"]  # nothing written
    amend({"owner": "surgeon"})  # of the pathway's team: taken
    db.session.flush()
    [task] = _tasks(pathway)
    assert task.owner.username == "surgeon"
    assert _verify(pathway) == []


def test_a_correction_may_set_a_task_due_date_before_today(users):
    run = _run(users)
    pathway = run.pathway
    coordinator = users["coordinator"]
    three_days_ago = datetime.now(UTC) - timedelta(days=3)
    added = tracking.add_task(
        pathway, "Chase MRI", "coordinator", _today(), coordinator, occurred_at=three_days_ago
    )
    services.amend(
        pathway,
        added.event.seq,
        {"due_on": (_today() - timedelta(days=2)).isoformat()},
        "It was agreed for the day after",
        coordinator,
        pathway.version,
        services.new_request_id(),
    )
    db.session.flush()
    [task] = _tasks(pathway)
    assert task.due_on == _today() - timedelta(days=2)
    assert _verify(pathway) == []


def test_the_worklist_csv_carries_the_tracking_note(client, login, users):
    pathway = _run(users).pathway
    tracking.add_tracking_note(pathway, "=MRI booked for Friday", users["coordinator"])
    db.session.commit()
    login("coordinator")
    response = client.get("/worklist.csv")
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    note, written = rows[0].index("Tracking note"), rows[0].index("Tracking note written")
    [row] = [r for r in rows[1:] if r[0] == pathway.patient.mrn]
    assert row[note] == "'=MRI booked for Friday"  # text, never a formula
    db.session.refresh(pathway)
    assert row[written] == pathway.tracking_note_at.isoformat(timespec="minutes")


def test_a_closed_pathways_tasks_are_left_as_they_stand(users):
    run = _run(users)
    pathway = run.pathway
    added = tracking.add_task(pathway, "Chase", "coordinator", _today(), users["coordinator"])
    run.do("withdraw")
    with pytest.raises(TriggerNotAllowed):
        tracking.add_task(pathway, "Chase", "coordinator", _today(), users["coordinator"])
    with pytest.raises(TriggerNotAllowed):
        tracking.complete_task(pathway, added.event.seq, users["coordinator"])
    db.session.flush()
    assert [t.status for t in _tasks(pathway)] == ["open"]


# -- the pathway page -----------------------------------------------------------------------


def test_the_tracking_panel_adds_and_closes_a_task_through_the_step_forms(users, client, login):
    pathway = _run(users).pathway
    db.session.commit()
    login("coordinator")
    page = client.get(f"/pathways/{pathway.id}")
    assert page.status_code == 200
    assert 'id="tracking-heading"' in page.text and "No open task." in page.text
    assert "Add task</a>" in page.text and "Add tracking note</a>" in page.text
    form = client.get(f"/pathways/{pathway.id}/record/{d.ADD_TASK_TRIGGER}")
    assert "What needs doing" in form.text and "Owner" in form.text and "Due by" in form.text
    due = _today() + timedelta(days=2)
    response = client.post(
        f"/pathways/{pathway.id}/record/{d.ADD_TASK_TRIGGER}",
        data={
            "occurred_at": datetime.now().strftime("%Y-%m-%dT%H:%M"),
            "expected_version": str(pathway.version),
            "request_id": services.new_request_id(),
            "what": "Chase the biopsy slot",
            "owner": "surgeon",
            "due_on": due.isoformat(),
        },
    )
    assert response.status_code == 302, response.text
    page = client.get(f"/pathways/{pathway.id}").text
    assert "Chase the biopsy slot" in page and "Surgeon · due" in page
    [task] = _tasks(pathway)
    done_form = client.get(
        f"/pathways/{pathway.id}/record/{d.COMPLETE_TASK_TRIGGER}?task={task.seq}"
    )
    assert f'value="{task.seq}"' in done_form.text
    assert (
        "Open tasks of this pathway" in done_form.text and "Chase the biopsy slot" in done_form.text
    )

    past = client.post(
        f"/pathways/{pathway.id}/record/{d.ADD_TASK_TRIGGER}",
        data={
            "occurred_at": datetime.now().strftime("%Y-%m-%dT%H:%M"),
            "expected_version": str(db.session.get(type(pathway), pathway.id).version),
            "request_id": services.new_request_id(),
            "what": "Too late",
            "owner": "surgeon",
            "due_on": (_today() - timedelta(days=3)).isoformat(),
        },
    )
    assert past.status_code == 422 and "in the past" in past.text


def test_an_overdue_task_is_marked_and_a_viewer_gets_no_buttons(users, client, login):
    pathway = _run(users).pathway
    yesterday = datetime.now(UTC) - timedelta(days=2)
    tracking.add_task(
        pathway,
        "Ring the GP",
        "coordinator",
        yesterday.date(),
        users["coordinator"],
        occurred_at=yesterday,
        now=yesterday,
    )
    db.session.commit()
    login("viewer")
    page = client.get(f"/pathways/{pathway.id}").text
    assert "Ring the GP" in page and "Overdue" in page
    assert "Add task</a>" not in page and ">Done<" not in page
    assert "Add tracking note</a>" not in page


# -- the CSV import -------------------------------------------------------------------------


def test_the_csv_import_records_tracking_notes_and_tasks(users, session):
    from tracker.engine.models import Pathway
    from tracker.pathway.importer import import_rows

    now = datetime.now(UTC)
    at = now - timedelta(days=2)
    opening = {
        "mrn": "TRK001",
        "pathway_ref": "A",
        "trigger": d.OPEN_TRIGGER,
        "occurred_at": at.isoformat(),
        "family_name": "Ward",
        "given_name": "Iris",
        "birth_date": "1955-03-02",
        "sex": "female",
        "referral_source": "gp",
        "urgency": "urgent",
        "diagnosis_category": "metastatic_spinal",
        "tumour_site": "L2",
        "primary_cancer_site": "kidney",
        "presenting_symptoms": "back_pain",
    }
    rows = [
        opening,
        {
            "mrn": "TRK001",
            "pathway_ref": "A",
            "trigger": d.TRACKING_NOTE_TRIGGER,
            "occurred_at": (at + timedelta(hours=1)).isoformat(),
            "note": "Waiting for the MRI slot",
        },
        {
            "mrn": "TRK001",
            "pathway_ref": "A",
            "trigger": d.ADD_TASK_TRIGGER,
            "occurred_at": (at + timedelta(hours=2)).isoformat(),
            "what": "Chase the MRI slot",
            "owner": "coordinator",
            "due_on": (_today() + timedelta(days=1)).isoformat(),
        },
        {
            "mrn": "TRK001",
            "pathway_ref": "A",
            "trigger": d.COMPLETE_TASK_TRIGGER,
            "occurred_at": (at + timedelta(hours=3)).isoformat(),
            "task": "3",
        },
    ]
    header = sorted({name for row in rows for name in row})
    result = import_rows(
        [dict.fromkeys(header, "") | row for row in rows], header, users["coordinator"]
    )
    assert result.errors == []
    session.flush()
    pathway = session.scalars(select(Pathway).order_by(Pathway.id.desc())).first()
    assert pathway.tracking_note == "Waiting for the MRI slot"
    assert [(t.seq, t.status) for t in _tasks(pathway)] == [(3, "done")]
    assert _verify(pathway) == []

    past = [*rows[:2], {**rows[2], "due_on": (_today() - timedelta(days=5)).isoformat()}]
    refused = import_rows(
        [dict.fromkeys(header, "") | row for row in past], header, users["coordinator"]
    )
    assert any("in the past" in why for _, why in refused.errors)
