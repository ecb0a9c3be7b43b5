"""Sending a meeting's list to its team by email: when and where, how many cases, and a
link to the agenda (which asks for a login). Mail leaves the hospital's systems, so it
names no patient, MRN or diagnosis. Flush, never commit (tracker.web.boundary commits)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from tracker.audit import services as audit
from tracker.audit.models import AuditEntry
from tracker.core.runtime import db_session
from tracker.engine import teams
from tracker.engine.errors import InvalidData
from tracker.engine.history import History
from tracker.engine.models import Event
from tracker.mail import MailError, link, send_mail
from tracker.mdt.models import TRIAGE, MdtCase, MdtMeeting
from tracker.mdt.services import check_organiser
from tracker.teams.models import UserTeam
from tracker.users.models import User

ACTION = "mdt_list_sent"


@dataclass
class ListSent:
    at: datetime
    by: str
    recipients: int


def recipients(meeting: MdtMeeting) -> list[User]:
    """The active members of the meeting's team who have an email address."""
    return list(
        db_session().scalars(
            select(User)
            .join(UserTeam, UserTeam.user_id == User.id)
            .where(
                UserTeam.team == meeting.team,
                User.active.is_(True),
                User.email.is_not(None),
                User.email != "",
            )
            .order_by(User.username)
        )
    )


def case_counts(meeting: MdtMeeting) -> dict[str, int]:
    """The cases on the list (not voided, not rolled over), by triage."""
    counts = {key: 0 for key in TRIAGE}
    cases = list(
        db_session().scalars(
            select(MdtCase).where(MdtCase.meeting_id == meeting.id, MdtCase.rolled_to_id.is_(None))
        )
    )
    for case in cases:
        events = db_session().scalars(
            select(Event).where(Event.pathway_id == case.pathway_id).order_by(Event.seq)
        )
        history = History.from_events(list(events))
        listing = next(
            (s for s in history.steps if s.event is not None and s.event.id == case.event_id), None
        )
        if listing is None or listing.voided_by is not None:
            continue
        counts[case.triage] = counts.get(case.triage, 0) + 1
    return counts


def message(meeting: MdtMeeting) -> tuple[str, str]:
    """The subject and body: no patient's name, MRN or diagnosis."""
    team = teams.label(meeting.team)
    day = f"{meeting.meeting_date:%A %d %B %Y}"
    counts = case_counts(meeting)
    total = sum(counts.values())
    subject = f"{team} MDT, {day} {meeting.start_time:%H:%M}: the list ({total} cases)"
    where = []
    if meeting.location:
        where.append(f"Where: {meeting.location}")
    if meeting.video_link:
        where.append(f"Video link: {meeting.video_link}")
    lines = [
        f"The list of the {team} MDT is ready.",
        "",
        f"When: {day}, {meeting.start_time:%H:%M}",
        *(where or ["Where: not set yet"]),
        "",
        f"Cases: {total}",
        *(f"  {label}: {counts.get(key, 0)}" for key, label in TRIAGE.items()),
        "",
        "The agenda (log in to the tracker to see it):",
        link("mdt.agenda_print", meeting_id=meeting.id),
        "",
        "This message holds no patient details: they are in the tracker only.",
    ]
    return subject, "\n".join(lines) + "\n"


def send_list(meeting: MdtMeeting, actor, now: datetime) -> int:
    """Email the list to the meeting's team; the number of recipients. InvalidData when
    the meeting is cancelled, nobody has an address, or the mail server refuses it."""
    check_organiser(actor)
    if meeting.status == "cancelled":
        raise InvalidData({"meeting": ["This meeting is cancelled: its list is not sent"]})
    people = recipients(meeting)
    if not people:
        raise InvalidData(
            {
                "meeting": [
                    f"No active member of {teams.label(meeting.team)} has an email address: "
                    "nothing was sent. Add the addresses on their accounts, then send again"
                ]
            }
        )
    subject, body = message(meeting)
    audit.record(
        ACTION,
        user=actor,
        detail={"meeting": meeting.id, "recipients": len(people)},
    )
    db_session().flush()
    try:
        send_mail([u.email for u in people], subject, body)
    except MailError as exc:
        raise InvalidData({"meeting": [f"Nothing was sent: {exc}. Try again later"]}) from exc
    return len(people)


def last_sent(meeting: MdtMeeting) -> ListSent | None:
    """When the list was last sent, by whom and to how many, from the audit log."""
    entry = db_session().scalar(
        select(AuditEntry)
        .where(
            AuditEntry.action == ACTION,
            AuditEntry.outcome == "ok",
            AuditEntry.detail.like(f'{{"meeting": {meeting.id}, %'),
        )
        .order_by(AuditEntry.id.desc())
        .limit(1)
    )
    if entry is None:
        return None
    user = db_session().get(User, entry.user_id) if entry.user_id else None
    by = (user.full_name or user.username) if user else entry.username
    return ListSent(entry.at, by, json.loads(entry.detail)["recipients"])
