"""The coordinator's home: active pathways, what is due, filtered and sorted in SQL."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, current_app, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import case, func, or_, select

from tracker.engine import clocks
from tracker.engine import steps as d
from tracker.engine.dictionary import REFERRAL_PRIORITY, URGENCY_SHORT
from tracker.engine.models import Pathway
from tracker.extensions import db
from tracker.patients.models import Patient
from tracker.teams import scope
from tracker.web.back import remember_list
from tracker.web.csv import csv_response
from tracker.web.helpers import patient_search
from tracker.worklist.filters import FILTERS, SORT_LABELS, TARGET_FILTERS

bp = Blueprint("worklist", __name__)

SORTS = {
    "due": (Pathway.next_target_sort, Pathway.id),
    "in_state": (Pathway.state_entered_at, Pathway.id),
    "name": (Patient.family_name, Patient.given_name, Pathway.id),
    "referral": (Pathway.referral_received_at.desc(), Pathway.id),
    "urgency": (
        case({"emergency": 0, "urgent": 1}, value=Pathway.urgency, else_=2),
        Pathway.next_target_sort,
        Pathway.id,
    ),
}
# A filtered worklist counts its pathways up to here; beyond, it says "more than".
COUNT_LIMIT = 1000


def filtered(args, now: datetime, user, what=Pathway, sort: str | None = None):
    """The worklist query for the request's filters: every condition is SQL, on indexed
    columns of the pathway row; patients are joined only to search or sort by name."""
    query = select(what).where(Pathway.closed_at.is_(None), scope.pathways(user, now))
    q = (args.get("q") or "").strip()[:100]
    if q or sort == "name":
        query = query.join(Pathway.patient)
    state = args.get("state")
    if state in d.ACTIVE_STATES:
        query = query.where(Pathway.state == state)
    urgency = args.get("urgency")
    if urgency in URGENCY_SHORT:
        query = query.where(Pathway.urgency == urgency)
    target = args.get("target")
    breached = Pathway.next_target_sort < now  # no target sorts at the end of time
    due_soon = (Pathway.next_target_warn_at <= now) & (Pathway.next_target_sort >= now)
    if target == "breached":
        query = query.where(breached)
    elif target == "due_soon":
        query = query.where(due_soon)
    elif target == "attention":
        query = query.where(breached | due_soon)
    if args.get("mine"):
        query = query.where(
            or_(Pathway.coordinator_id == user.id, Pathway.lead_surgeon_id == user.id)
        )
    if q:
        query = query.where(patient_search(q, Patient))
    return query


@bp.get("/")
def index():
    now = datetime.now(UTC)
    args = request.args
    sort = args.get("sort") if args.get("sort") in SORTS else "due"
    # An absurd page number is an empty page, not an offset the database cannot hold.
    page = min(max(1, args.get("page", 1, type=int) or 1), 1_000_000)
    size = int(current_app.config["WORKLIST_PAGE_SIZE"])
    counts = scope.open_by_state(current_user, now)
    more = False
    if any(args.get(name) for name in FILTERS):
        # Counted up to COUNT_LIMIT and no further, so a filter that matches thousands
        # (breached, at 100,000 pathways) reads a bounded range of an index, not all of it.
        first = filtered(args, now, current_user, Pathway.id).limit(COUNT_LIMIT + 1).subquery()
        total = db.session.scalar(select(func.count()).select_from(first))
        more = total > COUNT_LIMIT
        total = min(total, COUNT_LIMIT)
    else:  # every open pathway: the per-state counts already add up to it
        total = sum(counts.values())
    rows = db.session.scalars(
        filtered(args, now, current_user, sort=sort)
        .order_by(*SORTS[sort])
        .limit(size)
        .offset((page - 1) * size)
    ).all()
    statuses = {
        p.id: clocks.status_at(p.next_target_due_at, p.next_target_warn_at, now) for p in rows
    }
    pages = max(1, -(-total // size))
    if more:  # how many pages is not known beyond the limit: one more at least
        pages = max(pages, page)
    remember_list("worklist")

    def link(**changes):
        merged = {k: v for k, v in args.items() if v}
        merged.update({k: v for k, v in changes.items()})
        return url_for("worklist.index", **{k: v for k, v in merged.items() if v})

    return render_template(
        "worklist/index.html",
        rows=rows,
        counts=counts,
        total=total,
        more=more,
        page=page,
        pages=pages,
        statuses=statuses,
        now=now,
        sort=sort,
        sorts=SORT_LABELS,
        target_filters=TARGET_FILTERS,
        args=args,
        link=link,
        target_labels=clocks.LABELS,
        active_states=d.ACTIVE_STATES,
    )


CSV_LIMIT = 200_000
# The worklist's badges' words (templates/_macros.html, target_badge).
TARGET_STATUS_LABELS = {"pending": "On track", "due_soon": "Due soon", "breached": "Breached"}
PRIORITY_LABELS = dict(REFERRAL_PRIORITY)


@bp.get("/worklist.csv")
def export():
    """The worklist with the same filters and order, every row, for Excel."""
    now = datetime.now(UTC)
    sort = request.args.get("sort") if request.args.get("sort") in SORTS else "due"
    rows = db.session.scalars(
        filtered(request.args, now, current_user, sort=sort).order_by(*SORTS[sort]).limit(CSV_LIMIT)
    )
    # Each code in its own column, as systems read it, with the words people read beside it.
    header = [
        "MRN",
        "Family name",
        "Given name",
        "Urgency",
        "Urgency (label)",
        "State",
        "State (label)",
        "In state since",
        "Days in state",
        "Next target",
        "Next target (label)",
        "Due",
        "Where the clock stands",
        "Target status",
        "Target status (label)",
        "Lead surgeon",
        "Lead surgeon (name)",
        "Coordinator",
        "Coordinator (name)",
        "Referral received",
        "NHS number",
        "GP practice",
        "Referral priority",
        "Referral priority (label)",
        "Steps not yet reviewed",
        "Tracking note",
        "Tracking note written",
    ]

    def lines():
        for p in rows:
            status = clocks.status_at(p.next_target_due_at, p.next_target_warn_at, now)
            yield (
                p.patient.mrn,
                p.patient.family_name,
                p.patient.given_name,
                p.urgency,
                URGENCY_SHORT.get(p.urgency),
                p.state,
                d.STATE_LABELS.get(p.state),
                p.state_entered_at,
                (now - p.state_entered_at).days,
                p.next_target,
                clocks.LABELS.get(p.next_target) if p.next_target else None,
                p.next_target_due_at,
                clocks.countdown(p.next_target, p.next_target_due_at, now),
                status,
                TARGET_STATUS_LABELS.get(status),
                p.lead_surgeon.username if p.lead_surgeon else None,
                p.lead_surgeon.display_name if p.lead_surgeon else None,
                p.coordinator.username if p.coordinator else None,
                p.coordinator.display_name if p.coordinator else None,
                p.referral_received_at,
                p.patient.nhs_number,
                p.patient.gp_practice,
                p.referral_priority,
                PRIORITY_LABELS.get(p.referral_priority),
                p.unreviewed_steps,
                p.tracking_note,
                p.tracking_note_at,
            )

    return csv_response(f"worklist_{now:%Y-%m-%d}.csv", header, lines())
