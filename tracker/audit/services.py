"""Writing the audit log. Flush, never commit: an entry is part of its transaction.

Changes are written by a session hook (every new or changed row of an audited model),
so no change can forget its entry; views, logins and refusals are written by the web
layer (tracker.web.auditing) and the CLI. Who and from where come from the request, or
from :func:`acting_as` in the command line.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from flask import g, has_request_context, request
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from tracker.audit.models import AuditEntry
from tracker.core.db import utcnow
from tracker.core.text import shown_safely
from tracker.extensions import db

# Actions, as stored and as filtered on the audit page.
ACTIONS = {
    "login": "Logged in",
    "login_failed": "Login failed",
    "login_locked": "Account locked",
    "logout": "Logged out",
    "session_expired": "Session expired",
    "password_changed": "Password changed",
    "two_factor_enrolled": "Set up two-factor login",
    "two_factor_failed": "Wrong second-factor code",
    "recovery_code_used": "Used a recovery code",
    "recovery_codes_renewed": "Renewed recovery codes",
    "two_factor_reset": "Reset two-factor login",
    "view": "Viewed",
    "export": "Exported",
    "refused": "Refused",
    "api_token_failed": "API token refused (counted per address)",
    "rate_limited": "Rate limit hit (counted per address)",
    "record_event": "Recorded a step",
    "register_patient": "Registered a patient",
    "update_patient": "Changed a patient",
    "create_user": "Created an account",
    "update_user": "Changed an account",
    "create_token": "Created an API token",
    "revoke_token": "Revoked an API token",
    "password_reset_issued": "Issued a password reset link",
    "password_reset_used": "Used a password reset link",
    "password_reset_refused": "Refused a password reset link",
    "import": "Imported events",
    "backup": "Backed up the database",
    "emergency_access": "Emergency access",
    "mdt_meeting_created": "Created an MDT meeting",
    "mdt_meeting_changed": "Changed an MDT meeting",
    "mdt_case_listed": "Listed a case on an MDT meeting",
    "mdt_case_moved": "Moved a case on an MDT list",
    "mdt_attendance": "Recorded attendance at an MDT meeting",
    "mdt_cases_rolled_over": "Rolled cases not reached over to the next MDT meeting",
    "mdt_case_rolled_over": "Rolled a case not reached over to the next MDT meeting",
    "letter_generated": "Generated an outcome letter",
    "letter_template_changed": "Changed an outcome letter template",
    "seal_mismatch": "Row changed outside the app (seal mismatch)",
    "reseal": "Sealed a row again",
    "alert_raised": "Raised an alert (notification)",
    "alert_emailed": "Emailed alerts",
}

_cli_actor: ContextVar = ContextVar("audit_cli_actor", default=None)
_signing_in: ContextVar = ContextVar("audit_signing_in", default=None)
_bulk: ContextVar = ContextVar("audit_bulk", default=None)


def command_line_actor() -> str:
    """Who runs a command, as the operating system knows them: 'cli:alice@host'."""
    try:
        who = getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (some containers)
        who = f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return f"cli:{who}@{socket.gethostname()}"[:64]


@contextmanager
def acting_as(user, address: str | None = None) -> Iterator[None]:
    """Who the entries written outside a request belong to (the CLI): ``user`` of the app,
    from ``address`` (by default the operating system's user and host)."""
    token = _cli_actor.set((user, address))
    try:
        yield
    finally:
        _cli_actor.reset(token)


@contextmanager
def signing_in(user) -> Iterator[None]:
    """Within a request, before its login: the changes a sign-in makes to the account (a
    single sign-on's link, role or new account) are the user's own."""
    token = _signing_in.set(user)
    try:
        yield
    finally:
        _signing_in.reset(token)


@contextmanager
def summarised(action: str, **detail) -> Iterator[dict]:
    """One entry for a bulk change (an import) instead of one per row: the rows are in the
    chained event log already, each with who recorded it. ``detail`` can be added to."""
    counts: dict = {"events": 0, **detail}
    token = _bulk.set(counts)
    try:
        yield counts
    finally:
        _bulk.reset(token)
    record(action, detail=counts)


def _actor():
    """(user, address, method, path) of whoever is acting now."""
    if has_request_context():
        from flask_login import current_user

        user = getattr(g, "api_user", None) or _signing_in.get()
        if user is None and current_user and current_user.is_authenticated:
            user = current_user._get_current_object()
        address = (request.remote_addr or "")[:64]
        # The path as sent, its control characters escaped (PostgreSQL refuses NUL); a
        # secret in it (a password reset link's token) is left out.
        path = request.path
        secret = (request.view_args or {}).get("token")
        if isinstance(secret, str) and secret:
            path = path.replace(secret, "…")
        return user, address, request.method, shown_safely(path)[:300]
    # Outside a request: the command line, which always names the operating system's user
    # and host, with or without a user of the app (`acting_as`).
    user, address = _cli_actor.get() or (None, None)
    return user, address or command_line_actor(), "", ""


def unknown_username(typed: str) -> str:
    """What the log keeps of a username that matched no account: its length and a keyed
    hash (HMAC-SHA256 under the audit key, 12 hex digits), never the text, which may be a
    password typed into the wrong box. The same text always gives the same hash, so
    repeated tries of one name show as such; without the key it cannot be guessed back."""
    from flask import current_app

    key = current_app.extensions["audit_key"]
    digest = hmac.new(key, b"unknown-username:" + typed.encode(), hashlib.sha256)
    return f"unknown:{digest.hexdigest()[:12]}:{len(typed)}"


def record(
    action: str,
    *,
    user=None,
    username: str | None = None,
    outcome: str = "ok",
    patient_id: int | None = None,
    pathway_id: int | None = None,
    detail: dict | str | None = None,
) -> AuditEntry:
    """Add one entry to the session (the caller's transaction writes it)."""
    acting, address, method, path = _actor()
    user = user if user is not None else acting
    if user is None and username is None and method == "":
        username = address  # the command line with no user of the app: 'cli:alice@host'
    if isinstance(detail, dict):
        detail = json.dumps(detail, sort_keys=True, default=str, ensure_ascii=False)
    entry = AuditEntry(
        at=utcnow(),
        user_id=user.id if user is not None else None,
        username=(username if username is not None else getattr(user, "username", ""))[:64],
        action=action,
        outcome=outcome,
        patient_id=patient_id,
        pathway_id=pathway_id,
        detail=(detail or "")[:4000],
        address=address,
        method=method,
        path=path,
    )
    db.session.add(entry)
    return entry


# -- changes, by a session hook ----------------------------------------------------------

# Columns whose changes are not worth an entry of their own: written by the login itself
# (audited as logins and failures). A pathway's columns change only with its events.
_QUIET = {
    "User": {"failed_logins", "locked_until", "last_login_at"}
    # The second factor's columns: its changes are audited by name where they happen
    # (two_factor_enrolled, two_factor_reset, a login); the secret never appears.
    | {"totp_secret", "totp_enabled_at", "totp_last_step"},
    "Patient": {"mrn_key", "search_key"},  # follow the MRN and names, whose changes are written
}


def _changed(obj) -> list[str]:
    """The columns of ``obj`` changed in this flush (a password shows as 'password')."""
    state = inspect(obj)
    quiet = _QUIET.get(type(obj).__name__, set())
    changed = []
    for column in state.mapper.column_attrs:
        if column.key in quiet or not state.attrs[column.key].history.has_changes():
            continue
        changed.append("password" if column.key == "password_hash" else column.key)
    return changed


def _old_and_new(obj) -> dict[str, dict]:
    """``{column: {"old": ..., "new": ...}}`` of the columns of ``obj`` changed in this
    flush: a correction of a patient's details keeps what it replaced. The old value is
    the one loaded before the change (the services read a value before they set it)."""
    state = inspect(obj)
    quiet = _QUIET.get(type(obj).__name__, set())
    out = {}
    for column in state.mapper.column_attrs:
        if column.key in quiet:
            continue
        history = state.attrs[column.key].history
        if history.has_changes():
            old = history.deleted[0] if history.deleted else None
            new = history.added[0] if history.added else None
            if old != new:
                out[column.key] = {"old": old, "new": new}
    return out


def _entries_for(obj, new: bool) -> list[dict]:
    kind = type(obj).__name__
    if kind == "Event" and new:
        pathway = obj.pathway
        return [
            {
                "action": "record_event",
                "pathway": pathway,
                "detail": {"trigger": obj.trigger, "seq": obj.seq, "request_id": obj.request_id},
            }
        ]
    if kind == "Patient":
        if new:
            return [{"action": "register_patient", "patient": obj, "detail": {"mrn": obj.mrn}}]
        changes = _old_and_new(obj)
        if changes:
            return [{"action": "update_patient", "patient": obj, "detail": {"changes": changes}}]
    if kind == "User":
        if new:
            return [
                {"action": "create_user", "detail": {"username": obj.username, "role": obj.role}}
            ]
        changed = _changed(obj)
        if changed == ["password"]:
            return [{"action": "password_changed", "detail": {"username": obj.username}}]
        if changed:
            detail = {"username": obj.username, "fields": changed}
            if "role" in changed:
                detail["role"] = obj.role
            if "active" in changed:
                detail["active"] = obj.active
            return [{"action": "update_user", "detail": detail}]
    if kind == "EmergencyAccess" and new:
        return [
            {
                "action": "emergency_access",
                "patient_id": obj.patient_id,
                "detail": {"reason": obj.reason, "until": obj.expires_at.isoformat()},
            }
        ]
    if kind == "ApiToken":
        if new:
            return [
                {"action": "create_token", "detail": {"name": obj.name, "user_id": obj.user_id}}
            ]
        if "revoked_at" in _changed(obj):
            return [
                {"action": "revoke_token", "detail": {"name": obj.name, "user_id": obj.user_id}}
            ]
    if kind == "MdtMeeting":
        if new:
            detail = {
                "team": obj.team,
                "date": obj.meeting_date,
                "time": obj.start_time,
                "status": obj.status,
            }
            return [{"action": "mdt_meeting_created", "detail": detail}]
        changes = _old_and_new(obj)
        if changes:
            return [{"action": "mdt_meeting_changed", "detail": {"id": obj.id, "changes": changes}}]
    if kind == "MdtAttendance" and new:
        detail = {
            "meeting_id": obj.meeting.id,
            "user": obj.user.username,
            "specialty": obj.specialty,
        }
        return [{"action": "mdt_attendance", "detail": detail}]
    if kind == "MdtCase":
        # The listing itself is the pathway's schedule_mdt step (audited as recorded);
        # this entry names the meeting and the place on its list.
        detail = {"meeting_id": obj.meeting_id, "position": obj.position}
        if new:
            return [{"action": "mdt_case_listed", "pathway": obj.pathway, "detail": detail}]
        changes = _old_and_new(obj)
        if "rolled_to_id" in changes:
            return [
                {
                    "action": "mdt_case_rolled_over",
                    "pathway": obj.pathway,
                    "detail": {**detail, "rolled_to": obj.rolled_to_id},
                }
            ]
        if changes:
            return [
                {
                    "action": "mdt_case_moved",
                    "pathway": obj.pathway,
                    "detail": {**detail, "changes": changes},
                }
            ]
    if kind == "GeneratedDocument" and new:
        detail = {
            "kind": obj.kind,
            "case_id": obj.case_id,
            "meeting_id": obj.meeting_id,
            "sha256": obj.sha256,
            "filename": obj.filename,
        }
        return [{"action": "letter_generated", "pathway": obj.pathway, "detail": detail}]
    if kind == "LetterTemplate" and not new:
        changes = _changed(obj)
        if changes:
            return [
                {
                    "action": "letter_template_changed",
                    "detail": {"kind": obj.kind, "fields": changes},
                }
            ]
    if kind == "PasswordReset":
        # The user is set on the row by the services (no query inside a flush).
        who = {"username": obj.user.username, "user_id": obj.user.id}
        if new:
            return [
                {"action": "password_reset_issued", "detail": {**who, "expires": obj.expires_at}}
            ]
        if "used_at" in _changed(obj):
            return [{"action": "password_reset_used", "detail": who}]
    return []


@event.listens_for(Session, "before_flush")
def _audit_changes(session: Session, flush_context, instances) -> None:
    bulk = _bulk.get()
    pending = []
    for obj in list(session.new):
        if isinstance(obj, AuditEntry):
            continue
        kind = type(obj).__name__
        if bulk is not None and kind in ("Event", "Pathway", "Patient"):
            bulk[f"{kind.lower()}s"] = bulk.get(f"{kind.lower()}s", 0) + 1
            continue
        pending.extend(_entries_for(obj, new=True))
    for obj in list(session.dirty):
        if isinstance(obj, AuditEntry):
            continue
        pending.extend(_entries_for(obj, new=False))
    for spec in pending:
        # Ids of rows inserted by this same flush are not known yet: the relationships
        # carry them into the entry when the flush runs.
        patient = spec.pop("patient", None)
        pathway = spec.pop("pathway", None)
        entry = record(spec.pop("action"), **spec)
        if pathway is not None:
            entry.pathway = pathway
            patient = patient or pathway.patient
        if patient is not None:
            entry.patient = patient
