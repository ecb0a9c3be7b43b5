"""Raising alerts as notifications, reading and marking them, and emailing them as one
digest per person. Flush, never commit: tracker.alerts.run is the boundary of a run.

Nothing here remembers anything but the notification rows: a run finds every alert the
rules see now, adds those not raised before (the unique user + key), and emails what is
due and not yet emailed. A run that comes late (the worker was down) raises and sends
what it missed; a second run finds nothing new.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import contains_eager

from tracker.alerts import rules, schedule
from tracker.alerts.models import IMMEDIATE_KINDS, KINDS, Notification
from tracker.audit.services import record
from tracker.core.runtime import db_session
from tracker.engine.models import Pathway
from tracker.mail import link, send_mail
from tracker.users.models import User

CHUNK = 500


def _existing(pairs: list[tuple[int, str]]) -> set[tuple[int, str]]:
    found: set[tuple[int, str]] = set()
    for start in range(0, len(pairs), CHUNK):
        chunk = pairs[start : start + CHUNK]
        keys = {key for _, key in chunk}
        rows = db_session().execute(
            select(Notification.user_id, Notification.dedupe_key).where(
                Notification.dedupe_key.in_(keys)
            )
        )
        found.update((user_id, key) for user_id, key in rows)
    return found


def raise_alerts(now: datetime) -> list[Notification]:
    """Add a notification for each alert the rules find now and no earlier run raised,
    to each of its recipients who has an active account; each one audited."""
    alerts = rules.evaluate(now)
    wanted = [(user_id, alert) for alert in alerts for user_id in alert.recipients]
    if not wanted:
        return []
    done = _existing([(user_id, alert.key) for user_id, alert in wanted])
    users = {
        u.id: u
        for u in db_session().scalars(
            select(User).where(User.id.in_({user_id for user_id, _ in wanted}), User.active)
        )
    }
    added = []
    for user_id, alert in wanted:
        if (user_id, alert.key) in done or user_id not in users:
            continue
        done.add((user_id, alert.key))
        email_due = now if alert.kind in IMMEDIATE_KINDS else schedule.next_digest(now)
        note = Notification(
            user_id=user_id,
            kind=alert.kind,
            pathway_id=alert.pathway_id,
            dedupe_key=alert.key,
            detail=alert.detail[:300],
            due_at=alert.due_at,
            created_at=now,
            email_due_at=email_due,
        )
        db_session().add(note)
        record(
            "alert_raised",
            username="alerts",
            pathway_id=alert.pathway_id,
            detail={"kind": alert.kind, "to": users[user_id].username, "key": alert.key},
        )
        added.append(note)
    db_session().flush()
    return added


# -- reading and marking (the notifications page) --------------------------------------------


def unread_count(user: User, visible) -> int:
    """The user's unread notifications about pathways ``visible`` (a condition on
    Pathway: the teams' scope) admits."""
    return db_session().scalar(
        select(func.count())
        .select_from(Notification)
        .join(Pathway, Pathway.id == Notification.pathway_id)
        .where(Notification.user_id == user.id, Notification.read_at.is_(None), visible)
    )


def notifications_of(user: User, visible, limit: int = 200) -> list[Notification]:
    """The user's notifications about pathways ``visible`` admits, unread first, newest
    first (with their pathway and patient, in the same query)."""
    return list(
        db_session().scalars(
            select(Notification)
            .join(Pathway, Pathway.id == Notification.pathway_id)
            .options(contains_eager(Notification.pathway).joinedload(Pathway.patient))
            .where(Notification.user_id == user.id, visible)
            .order_by(Notification.read_at.is_not(None), Notification.created_at.desc())
            .limit(limit)
        )
    )


def mark_read(user: User, notification_id: int | None, now: datetime) -> int:
    """Mark one of the user's notifications read (None: all of them); how many changed.
    Another user's notification is not found, as if it did not exist."""
    query = update(Notification).where(
        Notification.user_id == user.id, Notification.read_at.is_(None)
    )
    if notification_id is not None:
        query = query.where(Notification.id == notification_id)
    return db_session().execute(query.values(read_at=now)).rowcount


def owns(user: User, notification_id: int) -> bool:
    return (
        db_session().scalar(
            select(Notification.id).where(
                Notification.id == notification_id, Notification.user_id == user.id
            )
        )
        is not None
    )


# -- email -----------------------------------------------------------------------------------


@dataclass
class Digest:
    """What one person is emailed in one run."""

    user: User
    notifications: list[Notification] = field(default_factory=list)


def _settle_unwanted(now: datetime) -> int:
    """Notifications falling due for email to someone with no address or no email wanted,
    or about a pathway closed since: never to be emailed (email_due_at cleared)."""
    unwanted_users = select(User.id).where(
        (User.email.is_(None)) | (User.email == "") | (User.alert_email == "none") | ~User.active
    )
    closed = select(Pathway.id).where(Pathway.closed_at.is_not(None))
    query = (
        update(Notification)
        .where(
            Notification.emailed_at.is_(None),
            Notification.email_due_at <= now,
            Notification.user_id.in_(unwanted_users) | Notification.pathway_id.in_(closed),
        )
        .values(email_due_at=None)
    )
    return db_session().execute(query).rowcount


def due_digests(now: datetime, ignore_schedule: bool = False) -> list[Digest]:
    """Per person, the notifications to email now: those whose time has come (a breach at
    once, the rest at the daily digest time), or every one not yet emailed for a user
    who wants each alert as it comes (and for everyone with ``ignore_schedule``). None
    during quiet hours: they are held, and go at the first run after."""
    if schedule.in_quiet_hours(now):
        return []
    _settle_unwanted(now)
    every = User.alert_email == "immediately"
    if ignore_schedule:
        every = User.id.is_not(None)
    query = (
        select(Notification, User)
        .join(User, User.id == Notification.user_id)
        .join(Pathway, Pathway.id == Notification.pathway_id)
        .where(
            Notification.emailed_at.is_(None),
            Notification.email_due_at.is_not(None),
            (Notification.email_due_at <= now) | every,
            Pathway.closed_at.is_(None),
            User.active,
            User.email.is_not(None),
            User.email != "",
            User.alert_email != "none",
        )
        .order_by(User.id, Notification.kind != "breached", Notification.created_at)
    )
    digests: dict[int, Digest] = {}
    for note, user in db_session().execute(query):
        digests.setdefault(user.id, Digest(user)).notifications.append(note)
    return list(digests.values())


def initials(pathway: Pathway) -> str:
    patient = pathway.patient
    return "".join(
        f"{name.strip()[0].upper()}." for name in (patient.given_name, patient.family_name) if name
    )


def digest_message(digest: Digest) -> tuple[str, str]:
    """(subject, body): the kind of each alert, the patient's MRN and initials, and the
    link to the pathway; no diagnosis, clock name or note (mail leaves the hospital)."""
    notes = digest.notifications
    breached = sum(1 for n in notes if n.kind == "breached")
    subject = f"Pathway tracker: {len(notes)} alert{'s' if len(notes) != 1 else ''}"
    if breached:
        subject += f", {breached} target{'s' if breached != 1 else ''} breached"
    lines = [f"Hello {digest.user.display_name},", ""]
    lines.append("The tracker has these alerts for pathways you coordinate or lead:")
    lines.append("")
    for note in notes:
        pathway = note.pathway
        lines.append(f"- {KINDS[note.kind]}: MRN {pathway.patient.mrn} ({initials(pathway)})")
        lines.append(f"  {link('pathway.show', pathway_id=pathway.id)}")
    lines += [
        "",
        f"All your notifications: {link('notifications.index')}",
        f"How often you get these emails: {link('account.index', _anchor='alerts')}",
    ]
    return subject, "\n".join(lines) + "\n"


def send_digest(digest: Digest, now: datetime) -> bool:
    """Claim the digest's notifications as emailed, audit it, and send it (MailError when
    the server refuses: the caller rolls back, and the next run tries again). False, and
    nothing sent, when another run claimed them first."""
    ids = [n.id for n in digest.notifications]
    claimed = db_session().execute(
        update(Notification)
        .where(Notification.id.in_(ids), Notification.emailed_at.is_(None))
        .values(emailed_at=now)
    )
    if claimed.rowcount != len(ids):
        return False
    subject, body = digest_message(digest)
    record(
        "alert_emailed",
        username="alerts",
        detail={
            "to": digest.user.username,
            "notifications": ids,
            "pathways": sorted({n.pathway_id for n in digest.notifications}),
        },
    )
    db_session().flush()
    send_mail([digest.user.email], subject, body)
    return True


in_quiet_hours = schedule.in_quiet_hours
