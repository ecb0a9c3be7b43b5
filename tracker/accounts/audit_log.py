"""The administrators' view of the audit log: filter, page, download."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from flask import Blueprint, abort, render_template, request, url_for
from sqlalchemy import func, select

from tracker.audit.models import AuditEntry
from tracker.audit.services import ACTIONS
from tracker.core.clock import local_zone
from tracker.core.text import identifier_key
from tracker.extensions import db
from tracker.patients.models import Patient
from tracker.users.models import User
from tracker.web.csv import csv_response

bp = Blueprint("audit", __name__, url_prefix="/audit")
PAGE_SIZE = 50
EXPORT_LIMIT = 100_000


@bp.app_template_filter("audit_detail")
def audit_detail(detail: str) -> str:
    """An entry's detail for people: 'trigger: add_note · seq: 4', not JSON."""
    import json

    try:
        value = json.loads(detail) if detail.startswith("{") else detail
    except ValueError:
        return detail
    if not isinstance(value, dict):
        return str(value)
    parts = [
        f"{key.replace('_', ' ')}: {', '.join(map(str, v)) if isinstance(v, list) else v}"
        for key, v in value.items()
        if key not in ("endpoint", "changes")
    ]
    # A correction: each field with what it was and what it became.
    changes = value.get("changes")
    if isinstance(changes, dict):
        parts += [
            f"{name.replace('_', ' ')}: {_shown(v.get('old'))} → {_shown(v.get('new'))}"
            for name, v in changes.items()
            if isinstance(v, dict)
        ]
    return " · ".join(parts)


def _shown(value) -> str:
    return "(blank)" if value is None or value == "" else str(value)


def _day(raw: str | None, name: str, errors: dict) -> datetime | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        day = datetime.strptime(raw, "%Y-%m-%d").date()
    except ValueError:
        errors[name] = f"'{raw[:20]}' is not a date: use the form YYYY-MM-DD."
        return None
    if not 1900 <= day.year <= 2999:
        errors[name] = f"'{raw[:20]}' is out of range: choose a date from 1900 to 2999."
        return None
    return datetime.combine(day, time.min, tzinfo=local_zone())


def _filtered(args):
    """The query for the request's filters, and what was wrong with them."""
    errors: dict[str, str] = {}
    query = select(AuditEntry)
    username = (args.get("user") or "").strip().lower()[:64]
    if username:
        query = query.where(AuditEntry.username == username)
    action = args.get("action") or ""
    if action:
        if action in ACTIONS:
            query = query.where(AuditEntry.action == action)
        else:
            errors["action"] = "Choose an action from the list."
    outcome = args.get("outcome") or ""
    if outcome in ("ok", "refused"):
        query = query.where(AuditEntry.outcome == outcome)
    mrn = (args.get("mrn") or "").strip()[:32]
    if mrn:
        patient_id = db.session.scalar(
            select(Patient.id).where(Patient.mrn_key == identifier_key(mrn))
        )
        if patient_id is None:
            errors["mrn"] = f"No patient has the MRN '{mrn}'."
        query = query.where(AuditEntry.patient_id == patient_id)
    start = _day(args.get("from"), "from", errors)
    end = _day(args.get("to"), "to", errors)
    if start:
        query = query.where(AuditEntry.at >= start)
    if end:
        query = query.where(AuditEntry.at < end + timedelta(days=1))
    if start and end and end < start:
        errors["to"] = "The end date is before the start date."
    return query, errors


@bp.get("/")
def index():
    query, errors = _filtered(request.args)
    page = min(max(1, request.args.get("page", 1, type=int) or 1), 100_000)
    entries = []
    total = 0
    if not errors:
        total = db.session.scalar(select(func.count()).select_from(query.subquery()))
        entries = db.session.scalars(
            query.order_by(AuditEntry.id.desc()).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)
        ).all()
    usernames = db.session.scalars(select(User.username).order_by(User.username)).all()
    args = {k: v for k, v in request.args.items() if k != "page" and v}
    return render_template(
        "audit/index.html",
        entries=entries,
        total=total,
        page=page,
        pages=max(1, -(-total // PAGE_SIZE)),
        errors=errors,
        args=args,
        actions=ACTIONS,
        usernames=usernames,
        export_url=url_for("audit.export", **args),
        page_url=lambda n: url_for("audit.index", page=n, **args),
    ), (422 if errors else 200)


@bp.get("/audit.csv")
def export():
    query, errors = _filtered(request.args)
    if errors:
        abort(422, " ".join(errors.values()))
    rows = db.session.scalars(query.order_by(AuditEntry.id).limit(EXPORT_LIMIT))
    return csv_response(
        "audit.csv",
        [
            "position",
            "when_utc",
            "username",
            "action",
            "outcome",
            "patient_mrn",
            "pathway_id",
            "address",
            "method",
            "path",
            "detail",
            "hash",
        ],
        (
            (
                e.chain_seq,
                e.at,
                e.username,
                e.action,
                e.outcome,
                e.patient.mrn if e.patient else "",
                e.pathway_id,
                e.address,
                e.method,
                e.path,
                e.detail,
                e.hash,
            )
            for e in rows
        ),
    )
