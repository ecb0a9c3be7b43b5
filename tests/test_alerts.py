"""Alerts (tracker/alerts): the rules against the clock rows and MDT lists with time frozen,
notifications raised once, email digests per person at the right time (quiet hours,
preferences), the notifications page and counter, and email end to end over SMTP."""

from __future__ import annotations

import email
import html
import re
import socket
import uuid
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from email import policy

import pytest
import time_machine
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from config import ConfigError
from tests.conftest import make_app
from tests.helpers import Driver, new_pathway
from tracker.alerts import rules
from tracker.alerts import services as alerts
from tracker.alerts.models import Notification
from tracker.alerts.run import run_alerts
from tracker.alerts.schedule import in_quiet_hours, next_digest
from tracker.audit.models import AuditEntry
from tracker.engine import services
from tracker.engine.models import PathwayTask
from tracker.mail import EML_BACKEND, mail, send_mail
from tracker.mdt import services as mdt
from tracker.tracking import services as tracking

# A Tuesday in winter: London time is UTC, so the local times below read as written.
BASE = datetime(2027, 1, 12, 10, 0, tzinfo=UTC)
DIAGNOSIS_WORDS = ("metastatic", "T8", "breast", "back_pain", "Jane", "Doe", "Faster Diagnosis")


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """January 2027, local (= UTC) time."""
    return datetime(2027, 1, day, hour, minute, tzinfo=UTC)


@pytest.fixture
def outbox(app):
    state = app.extensions["mailman"]
    state.outbox = []
    yield state.outbox
    state.outbox = []


@pytest.fixture
def frozen():
    with time_machine.travel(BASE, tick=False) as traveller:
        yield traveller


def with_email(*users, preference: str = "daily") -> None:
    for user in users:
        user.email = f"{user.username}@hospital.example"
        user.alert_email = preference


def due_soon_pathway(users):
    """fds_28 due soon at BASE (day 24 of 28), rtt_62 pending."""
    return new_pathway(users["coordinator"], BASE - timedelta(days=24))


def breached_pathway(users):
    """fds_28 breached at BASE (day 30 of 28), rtt_62 pending."""
    return new_pathway(users["coordinator"], BASE - timedelta(days=30))


def notes(session, **where) -> list[Notification]:
    query = select(Notification).order_by(Notification.id)
    for name, value in where.items():
        query = query.where(getattr(Notification, name) == value)
    return list(session.scalars(query))


def audited(session, action: str) -> list[AuditEntry]:
    return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


# -- the rules ---------------------------------------------------------------------------------


def test_a_clock_entering_due_soon_alerts_its_coordinator_once(users, session, frozen):
    pathway = due_soon_pathway(users)
    session.commit()
    before = alerts.raise_alerts(BASE - timedelta(days=3))  # day 21: not yet due soon
    assert before == []
    raised = alerts.raise_alerts(BASE)
    assert [(n.kind, n.user_id, n.pathway_id) for n in raised] == [
        ("due_soon", users["coordinator"].id, pathway.id)
    ]
    # Counted in days: due by the end of 16 January (day 28), not "17 January 00:00".
    assert raised[0].detail == "Faster Diagnosis Standard (28 days): due by 16 Jan 2027"
    session.commit()
    assert alerts.raise_alerts(BASE + timedelta(hours=1)) == []  # a second run: nothing new
    assert len(notes(session)) == 1
    (entry,) = audited(session, "alert_raised")
    assert entry.pathway_id == pathway.id and '"to": "coordinator"' in entry.detail


def test_a_breached_clock_alerts_the_coordinator_and_the_lead_surgeon(users, session, frozen):
    pathway = breached_pathway(users)
    session.commit()
    raised = alerts.raise_alerts(BASE)
    assert sorted((n.kind, n.user_id) for n in raised) == sorted(
        [("breached", users["coordinator"].id), ("breached", users["surgeon"].id)]
    )
    assert {n.pathway_id for n in raised} == {pathway.id}
    # Breached when first seen: no due-soon alert for the same clock.
    assert not [a for a in rules.clocks_due_soon(BASE) if a.pathway_id == pathway.id]
    session.commit()
    assert alerts.raise_alerts(BASE + timedelta(minutes=5)) == []


def test_a_clock_due_soon_then_breached_gives_one_alert_of_each(users, session, frozen):
    due_soon_pathway(users)
    session.commit()
    alerts.raise_alerts(BASE)
    alerts.raise_alerts(at(16, 23))  # due at the end of 16 January: still due soon
    alerts.raise_alerts(at(17, 1))
    alerts.raise_alerts(at(17, 2))
    kinds = sorted(n.kind for n in notes(session, user_id=users["coordinator"].id))
    assert kinds == ["breached", "due_soon"]


def test_no_alert_about_a_closed_pathway(users, session, frozen):
    pathway = breached_pathway(users)
    Driver(pathway, users["coordinator"], BASE - timedelta(hours=2)).fire("rule_out_cancer")
    assert pathway.closed_at is not None
    session.commit()
    assert alerts.raise_alerts(BASE) == []
    assert rules.evaluate(BASE) == []


def test_a_pathway_closed_after_its_alert_is_never_emailed(users, session, frozen, outbox):
    with_email(users["coordinator"], users["surgeon"])
    pathway = due_soon_pathway(users)
    session.commit()
    alerts.raise_alerts(BASE)
    Driver(pathway, users["coordinator"], BASE - timedelta(hours=2)).fire("rule_out_cancer")
    session.commit()
    with time_machine.travel(at(13, 7, 35), tick=False):
        result = run_alerts(at(13, 7, 35))
    assert outbox == [] and result.emailed == []
    (note,) = notes(session)
    assert note.emailed_at is None and note.email_due_at is None


def _meeting(users, day: date):
    return mdt.create_meeting(
        {
            "team": "metastatic",
            "meeting_date": day.isoformat(),
            "start_time": "08:00",
            "location": "Room 1",
            "chair": "surgeon",
        },
        users["coordinator"],
    )


def _listed(users, meeting, listed_at: datetime):
    pathway = new_pathway(users["coordinator"], listed_at - timedelta(days=3))
    drive = Driver(pathway, users["coordinator"], listed_at - timedelta(days=3))
    drive.walk_to("mdt_review")
    services.record(
        pathway,
        "schedule_mdt",
        {
            "meeting_id": meeting.id,
            "question": "Stabilise T8 before radiotherapy?",
            "presenter": "surgeon",
            "triage": "full_discussion",
        },
        listed_at,
        users["coordinator"],
        pathway.version,
        uuid.uuid4().hex,
        now=listed_at,
    )
    return drive


def test_an_mdt_outcome_outstanding_the_day_after_the_meeting(users, session, frozen):
    meeting = _meeting(users, date(2027, 1, 14))
    drive = _listed(users, meeting, BASE)
    other = _listed(users, meeting, BASE + timedelta(minutes=1))
    session.commit()

    def outstanding(now):
        return sorted(a.pathway_id for a in rules.mdt_outcomes_outstanding(now))

    assert outstanding(at(14, 20)) == []  # the day of the meeting
    assert outstanding(at(15, 9)) == sorted([drive.pathway.id, other.pathway.id])
    # One pathway's outcome is recorded: only the other is still outstanding.
    with time_machine.travel(at(15, 9), tick=False):
        drive.t = at(14, 9)
        drive.do("plan_surgery")
        session.commit()
        raised = alerts.raise_alerts(at(15, 9, 5))
    outcome = [n for n in raised if n.kind == "mdt_outcome"]
    assert [(n.pathway_id, n.user_id) for n in outcome] == [
        (other.pathway.id, users["coordinator"].id)
    ]
    assert (
        outcome[0].detail == "Listed for the MDT meeting of 14 Jan 2027: no outcome recorded yet."
    )


def _task(users, due_on: date, owner: str = "surgeon", what: str = "Chase MRI report"):
    """A new pathway (referred a week before BASE: no clock alert) with one task due on
    ``due_on``, added on 8 January; (the pathway, its Driver, the task's number)."""
    added_at = at(8, 9)
    pathway = new_pathway(users["coordinator"], BASE - timedelta(days=7))
    added = tracking.add_task(
        pathway, what, owner, due_on, users["coordinator"], occurred_at=added_at, now=added_at
    )
    return pathway, Driver(pathway, users["coordinator"], added_at), added.event.seq


def _task_row(session, pathway) -> PathwayTask:
    return session.scalar(select(PathwayTask).where(PathwayTask.pathway_id == pathway.id))


def test_an_overdue_task_alerts_its_owner_once(users, session, frozen):
    pathway, _, _ = _task(users, date(2027, 1, 11))  # due yesterday
    session.commit()
    task = _task_row(session, pathway)
    raised = alerts.raise_alerts(BASE)
    assert [(n.kind, n.user_id, n.pathway_id, n.dedupe_key) for n in raised] == [
        ("task_overdue", users["surgeon"].id, pathway.id, f"task_overdue:{task.id}:2027-01-11")
    ]
    assert raised[0].detail == "Task 'Chase MRI report': was due by 11 Jan 2027"
    assert raised[0].email_due_at == at(13, 7, 30)  # the daily digest, not at once
    session.commit()
    assert alerts.raise_alerts(BASE + timedelta(hours=1)) == []  # a second run: nothing new
    assert len(notes(session)) == 1
    (entry,) = audited(session, "alert_raised")
    assert entry.pathway_id == pathway.id and '"to": "surgeon"' in entry.detail


def test_a_task_due_today_is_not_overdue_until_the_next_day(users, session, frozen):
    pathway, _, _ = _task(users, date(2027, 1, 12))
    session.commit()
    assert rules.tasks_overdue(at(12, 23, 59)) == []
    (alert,) = rules.tasks_overdue(at(13, 0, 1))
    assert alert.pathway_id == pathway.id and alert.recipients == (users["surgeon"].id,)


def test_the_local_date_decides_when_a_task_is_overdue(users, session):
    # In summer London is an hour ahead: 23:30 UTC on 1 July is already 2 July there.
    with time_machine.travel(datetime(2027, 6, 20, 10, tzinfo=UTC), tick=False):
        added_at = datetime(2027, 6, 20, 10, tzinfo=UTC)
        pathway = new_pathway(users["coordinator"], added_at - timedelta(days=7))
        tracking.add_task(
            pathway, "Chase", "surgeon", date(2027, 7, 1), users["coordinator"], now=added_at
        )
        session.commit()
    assert rules.tasks_overdue(datetime(2027, 7, 1, 22, 59, tzinfo=UTC)) == []
    (alert,) = rules.tasks_overdue(datetime(2027, 7, 1, 23, 30, tzinfo=UTC))
    assert alert.pathway_id == pathway.id


@pytest.mark.parametrize("close", ["complete_task", "cancel_task"])
def test_a_done_or_cancelled_task_is_not_overdue(users, session, frozen, close):
    pathway, drive, number = _task(users, date(2027, 1, 11))
    drive.t = at(10, 9)
    data = {"task": number, "reason": "Not needed"} if close == "cancel_task" else {"task": number}
    drive.do(close, data)
    session.commit()
    assert _task_row(session, pathway).status != "open"
    assert rules.tasks_overdue(BASE) == []
    assert alerts.raise_alerts(BASE) == []


def test_no_task_alert_about_a_closed_pathway(users, session, frozen):
    pathway, drive, _ = _task(users, date(2027, 1, 11))
    drive.t = at(10, 9)
    drive.do("withdraw")
    session.commit()
    assert pathway.closed_at is not None and _task_row(session, pathway).status == "open"
    assert rules.tasks_overdue(BASE) == []
    assert alerts.raise_alerts(BASE) == []


def test_a_task_given_a_new_due_date_is_alerted_again_when_that_passes(users, session, frozen):
    pathway, _, number = _task(users, date(2027, 1, 9))
    session.commit()
    (first,) = alerts.raise_alerts(at(10, 9))
    tracking.update_task(
        pathway,
        number,
        users["coordinator"],
        owner="coordinator",
        due_on=date(2027, 1, 11),
        occurred_at=at(10, 10),
        now=at(10, 10),
    )
    session.commit()
    (second,) = alerts.raise_alerts(BASE)
    assert (first.user_id, second.user_id) == (users["surgeon"].id, users["coordinator"].id)
    assert first.dedupe_key.endswith(":2027-01-09") and second.dedupe_key.endswith(":2027-01-11")


def test_an_inactive_owner_gets_no_task_alert(users, session, frozen):
    _task(users, date(2027, 1, 11))
    users["surgeon"].active = False
    session.commit()
    assert len(rules.tasks_overdue(BASE)) == 1
    assert alerts.raise_alerts(BASE) == []


def test_the_overdue_task_rule_runs_one_query_whatever_the_tasks(users, session, frozen):
    from tests.test_query_budget import counted

    _task(users, date(2027, 1, 11))
    session.commit()
    with counted() as few:
        assert len(rules.tasks_overdue(BASE)) == 1
    for owner in ("surgeon", "coordinator", "surgeon2", "coordinator"):
        _task(users, date(2027, 1, 10), owner=owner)
    session.commit()
    with counted() as many:
        assert len(rules.tasks_overdue(BASE)) == 5
    assert len(few) == len(many) == 1


def test_an_overdue_task_is_emailed_in_the_daily_digest(users, session, frozen, outbox):
    with_email(users["surgeon"])
    pathway, _, _ = _task(users, date(2027, 1, 11))
    session.commit()
    assert run_alerts(BASE).raised == 1
    assert outbox == []  # not a breach: it waits for the digest
    assert run_alerts(at(13, 7, 25)).emailed == []
    assert run_alerts(at(13, 7, 30)).emailed == ["surgeon"]
    (digest,) = outbox
    assert digest.to == ["surgeon@hospital.example"]
    assert f"- Task overdue: MRN {pathway.patient.mrn}" in digest.body
    assert "Chase MRI report" not in digest.body  # what the task says stays in the tracker
    assert not [word for word in DIAGNOSIS_WORDS if word in digest.body]
    assert run_alerts(at(13, 7, 35)).emailed == []


# -- the schedule --------------------------------------------------------------------------------


def test_quiet_hours_and_the_digest_time(app):
    with app.app_context():
        assert in_quiet_hours(at(12, 21, 0)) and in_quiet_hours(at(13, 6, 59))
        assert not in_quiet_hours(at(13, 7, 0)) and not in_quiet_hours(at(12, 20, 59))
        assert next_digest(at(12, 10)) == at(13, 7, 30)
        assert next_digest(at(13, 7, 0)) == at(13, 7, 30)
        assert next_digest(at(13, 7, 30)) == at(14, 7, 30)
        # In summer, 07:30 London time is 06:30 UTC.
        assert next_digest(datetime(2027, 7, 1, 12, tzinfo=UTC)) == datetime(
            2027, 7, 2, 6, 30, tzinfo=UTC
        )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ALERT_QUIET_HOURS", "9pm-7am"),
        ("ALERT_QUIET_HOURS", "21:00"),
        ("ALERT_DIGEST_TIME", "25:00"),
    ],
)
def test_a_mistyped_schedule_stops_the_start_saying_how_to_write_it(name, value):
    with pytest.raises(ConfigError) as refused:
        make_app("sqlite://", **{name: value})
    assert name in str(refused.value) and "HH:MM" in str(refused.value)


# -- email ---------------------------------------------------------------------------------------


def test_a_breach_is_emailed_at_the_next_run_the_rest_in_the_daily_digest(
    users, session, frozen, outbox
):
    with_email(users["coordinator"], users["surgeon"])
    breached = breached_pathway(users)
    soon = due_soon_pathway(users)
    session.commit()
    first = run_alerts(BASE)
    assert first.raised == 3
    assert sorted(m.to[0] for m in outbox) == [
        "coordinator@hospital.example",
        "surgeon@hospital.example",
    ]
    to_coordinator = next(m for m in outbox if m.to == ["coordinator@hospital.example"])
    assert breached.patient.mrn in to_coordinator.body
    assert soon.patient.mrn not in to_coordinator.body  # due soon waits for the digest
    assert to_coordinator.subject == "Pathway tracker: 1 alert, 1 target breached"
    outbox.clear()
    assert run_alerts(BASE + timedelta(minutes=5)).emailed == []  # nothing twice
    assert run_alerts(at(13, 7, 25)).emailed == []  # before the digest time
    assert run_alerts(at(13, 7, 30)).emailed == ["coordinator"]
    (digest,) = outbox
    assert soon.patient.mrn in digest.body and breached.patient.mrn not in digest.body
    assert run_alerts(at(13, 7, 35)).emailed == []
    assert len(outbox) == 1
    sent = audited(session, "alert_emailed")
    assert len(sent) == 3
    assert all('"to": ' in entry.detail and '"pathways": [' in entry.detail for entry in sent)


def test_one_digest_per_person_groups_their_alerts(users, session, frozen, outbox):
    with_email(users["coordinator"], users["surgeon"], users["coordinator2"])
    first, second = breached_pathway(users), breached_pathway(users)
    session.commit()
    result = run_alerts(BASE)
    assert sorted(result.emailed) == ["coordinator", "surgeon"]
    assert len(outbox) == 2
    for message in outbox:
        assert first.patient.mrn in message.body and second.patient.mrn in message.body
        assert message.subject == "Pathway tracker: 2 alerts, 2 targets breached"
        assert len(message.to) == 1


def test_quiet_hours_hold_email_until_they_end(users, session, outbox):
    with_email(users["coordinator"], users["surgeon"])
    with time_machine.travel(at(12, 22), tick=False):
        breached_pathway(users)
        session.commit()
        held = run_alerts(at(12, 22))
    assert held.raised == 2 and held.quiet and outbox == []
    assert run_alerts(at(13, 3)).emailed == []  # still quiet: late, never lost
    assert sorted(run_alerts(at(13, 7, 0)).emailed) == ["coordinator", "surgeon"]
    assert run_alerts(at(13, 7, 5)).emailed == []


def test_digest_preferences_are_respected(users, session, frozen, outbox):
    with_email(users["coordinator"], preference="immediately")
    with_email(users["surgeon"], preference="none")
    users["coordinator2"].email = None  # no address: in the app only
    due_soon_pathway(users)
    breached = breached_pathway(users)
    breached.coordinator_id = users["coordinator2"].id  # as if reassigned
    session.commit()
    result = run_alerts(BASE)
    # The coordinator wants everything at once: the due-soon alert comes now.
    assert result.emailed == ["coordinator"]
    (message,) = outbox
    assert "Target due soon" in message.body
    # The surgeon (no email wanted) and coordinator2 (no address) have notifications only.
    assert notes(session, user_id=users["surgeon"].id)[0].email_due_at is None
    assert notes(session, user_id=users["coordinator2"].id)[0].email_due_at is None
    assert run_alerts(at(13, 7, 30)).emailed == []


def test_send_alerts_now_ignores_the_digest_time_but_not_quiet_hours(app, users, session, outbox):
    with_email(users["coordinator"])
    with time_machine.travel(BASE, tick=False):
        due_soon_pathway(users)
        session.commit()
        runner = app.test_cli_runner()
        plain = runner.invoke(args=["tracker", "send-alerts"])
        assert plain.exit_code == 0, plain.output
        assert "1 new notification; 0 emails sent" in plain.output
        now = runner.invoke(args=["tracker", "send-alerts", "--now"])
        assert "0 new notifications; 1 email sent" in now.output
    assert len(outbox) == 1
    with time_machine.travel(at(12, 23), tick=False):
        due_soon_pathway(users)
        session.commit()
        quiet = app.test_cli_runner().invoke(args=["tracker", "send-alerts", "--now"])
        assert "quiet hours" in quiet.output
    assert len(outbox) == 1


def test_an_eml_file_per_message_without_a_mail_server(app, tmp_path):
    with app.app_context(), mail_backend(app, MAIL_BACKEND=EML_BACKEND, MAIL_FILE_PATH=tmp_path):
        send_mail(["a@hospital.example"], "First", "One")
        send_mail(["b@hospital.example", "c@hospital.example"], "Second", "Two")
    files = sorted(tmp_path.glob("*.eml"))
    assert len(files) == 2
    parsed = [email.message_from_bytes(f.read_bytes(), policy=policy.default) for f in files]
    assert sorted(m["Subject"] for m in parsed) == ["First", "Second"]
    second = next(m for m in parsed if m["Subject"] == "Second")
    assert second["To"] == "b@hospital.example, c@hospital.example"
    assert second["From"] == app.config["MAIL_FROM"]
    assert second.get_content().strip() == "Two"


@contextmanager
def mail_backend(app, **settings):
    """The app's mail settings changed for the test, and put back after."""
    saved = {name: app.config.get(name) for name in settings}
    state = app.extensions["mailman"]
    app.config.update(settings)
    mail.init_app(app)
    try:
        yield
    finally:
        app.config.update(saved)
        app.extensions["mailman"] = state


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Keep:
    """An aiosmtpd handler that keeps what it is sent."""

    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 OK"


def test_an_alert_arrives_by_smtp_with_its_link_and_no_clinical_detail(app, users, session, frozen):
    handler = Keep()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with mail_backend(
            app,
            MAIL_BACKEND="smtp",
            MAIL_SERVER="127.0.0.1",
            MAIL_PORT=port,
            BASE_URL="https://tracker.hospital.example",
        ):
            with_email(users["coordinator"])
            users["surgeon"].alert_email = "none"
            pathway = breached_pathway(users)
            session.commit()
            result = run_alerts(BASE)
    finally:
        controller.stop()
    assert result.emailed == ["coordinator"] and result.failed == []
    (envelope,) = handler.envelopes
    assert envelope.rcpt_tos == ["coordinator@hospital.example"]
    message = email.message_from_bytes(envelope.content, policy=policy.default)
    assert message["To"] == "coordinator@hospital.example"
    assert message["Subject"] == "Pathway tracker: 1 alert, 1 target breached"
    body = message.get_content()
    assert f"https://tracker.hospital.example/pathways/{pathway.id}" in body
    assert f"MRN {pathway.patient.mrn} (J.D.)" in body
    for word in DIAGNOSIS_WORDS:
        assert word.lower() not in (body + message["Subject"]).lower(), word


def test_a_refused_message_is_tried_again_at_the_next_run(app, users, session, frozen):
    with_email(users["coordinator"])
    users["surgeon"].alert_email = "none"
    breached_pathway(users)
    session.commit()
    port = free_port()  # nothing listens there
    with mail_backend(
        app, MAIL_BACKEND="smtp", MAIL_SERVER="127.0.0.1", MAIL_PORT=port, MAIL_TIMEOUT=5
    ):
        failed = run_alerts(BASE)
    assert failed.failed == ["coordinator"] and failed.emailed == []
    assert notes(session)[0].emailed_at is None
    assert audited(session, "alert_emailed") == []
    state = app.extensions["mailman"]
    state.outbox = []
    assert run_alerts(BASE + timedelta(minutes=5)).emailed == ["coordinator"]
    assert len(state.outbox) == 1


# -- the pages -----------------------------------------------------------------------------------


def shown(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def counter(page: str) -> str:
    match = re.search(r'id="notification-counter"[^>]*>(.*?)</a>', page, re.S)
    assert match, "no counter in the top bar"
    return re.sub(r"<[^>]+>", "", match.group(1)).split()


def test_the_counter_the_list_and_marking_read(client, login, users, session, frozen):
    breached_pathway(users)
    pathway = breached_pathway(users)
    session.commit()
    alerts.raise_alerts(BASE)
    session.commit()
    login("coordinator")
    page = shown(client.get("/notifications/"))
    assert counter(page) == ["Notifications", "2", "unread"]
    assert page.count("Target breached") >= 2 and pathway.patient.mrn in page
    mine = notes(session, user_id=users["coordinator"].id)
    theirs = notes(session, user_id=users["surgeon"].id)
    response = client.post("/notifications/read", data={"notification": mine[0].id})
    assert response.status_code == 302
    assert counter(shown(client.get("/notifications/"))) == ["Notifications", "1", "unread"]
    # Someone else's notification is not found, and stays unread.
    response = client.post("/notifications/read", data={"notification": theirs[0].id})
    assert response.status_code == 404
    session.expire_all()
    assert session.get(Notification, theirs[0].id).read_at is None
    response = client.post("/notifications/read", data={"notification": "x"})
    assert response.status_code == 302
    response = client.post("/notifications/read-all", follow_redirects=True)
    assert "Marked 1 notification as read." in shown(response)
    assert counter(shown(client.get("/"))) == ["Notifications"]
    unread = session.scalar(
        select(func.count()).select_from(Notification).where(Notification.read_at.is_(None))
    )
    assert unread == len(theirs)  # the surgeon's are untouched


def test_a_user_sees_only_their_own_notifications(client, login, users, session, frozen):
    pathway = breached_pathway(users)
    pathway.coordinator_id = users["coordinator2"].id
    session.commit()
    alerts.raise_alerts(BASE)
    session.commit()
    login("coordinator")
    page = shown(client.get("/notifications/"))
    assert pathway.patient.mrn not in page and "No notifications." in page
    assert counter(page) == ["Notifications"]


def test_the_account_page_sets_the_email_address_and_preference(client, login, users, session):
    login("surgeon")
    page = shown(client.get("/account/"))
    assert "Alerts by email" in page
    bad = client.post("/account/alerts", data={"email": "not an address", "alert_email": "daily"})
    assert bad.status_code == 422
    assert "'not an address' is not an email address" in shown(bad)
    empty = client.post("/account/alerts", data={"email": "", "alert_email": "daily"})
    assert empty.status_code == 422
    assert "Enter your email address to get alerts by email" in shown(empty)
    unknown = client.post("/account/alerts", data={"email": "", "alert_email": "hourly"})
    assert unknown.status_code == 422
    session.expire_all()
    assert users["surgeon"].email is None
    good = client.post(
        "/account/alerts",
        data={"email": " s.smith@hospital.example ", "alert_email": "immediately"},
    )
    assert good.status_code == 302
    session.expire_all()
    assert (users["surgeon"].email, users["surgeon"].alert_email) == (
        "s.smith@hospital.example",
        "immediately",
    )
    off = client.post("/account/alerts", data={"email": "", "alert_email": "none"})
    assert off.status_code == 302
    session.expire_all()
    assert (users["surgeon"].email, users["surgeon"].alert_email) == (None, "none")
    changes = [e for e in audited(session, "update_user") if '"email"' in e.detail]
    assert changes, "the change of address is audited"


def test_the_notifications_page_runs_a_fixed_number_of_queries(client, login, users, session):
    from tests.test_query_budget import page_queries

    with time_machine.travel(BASE, tick=False):
        login("coordinator")
        client.get("/")  # the first page after a login completes the session once
        breached_pathway(users)
        session.commit()
        alerts.raise_alerts(BASE)
        session.commit()
        few = page_queries(client, "/notifications/")
        for _ in range(4):
            breached_pathway(users)
        session.commit()
        alerts.raise_alerts(BASE + timedelta(minutes=5))
        session.commit()
        many = page_queries(client, "/notifications/")
    assert len(notes(session, user_id=users["coordinator"].id)) == 5
    assert few == many <= 6
