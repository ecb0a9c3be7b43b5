"""Reports, the week ahead, and their CSV exports."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, current_app, render_template, request
from flask_login import current_user
from sqlalchemy import or_, select
from sqlalchemy.orm import joinedload

from tracker.engine import clocks
from tracker.engine import steps as d
from tracker.engine.clocks import LABELS as TARGET_LABELS
from tracker.engine.dictionary import DIAGNOSIS_CATEGORY, URGENCY_SHORT
from tracker.engine.models import Pathway, PathwayClock
from tracker.extensions import db
from tracker.reports import figures
from tracker.teams import scope
from tracker.users.models import User
from tracker.web.csv import csv_response

bp = Blueprint("reports", __name__)
# The clocks of visits (follow-up): overdue ones are listed apart on "This week".
VISIT_CLOCKS = [c.code for c in clocks.CLOCKS if c.due_field]
MAX_RANGE_DAYS = 3 * 366


def _zone() -> ZoneInfo:
    return ZoneInfo(current_app.config.get("TIMEZONE", "Europe/London"))


def _filters(args) -> tuple[figures.Filters | None, list[str]]:
    """The report's filters from the query string, or the problems with them."""
    problems = []
    today = datetime.now(_zone()).date()

    def day(name: str, default: date) -> date:
        raw = (args.get(name) or "").strip()
        if not raw:
            return default
        try:
            value = date.fromisoformat(raw)
        except ValueError:
            problems.append(f"The {name} date '{raw[:20]}' is not a date; use YYYY-MM-DD.")
            return default
        if not 1900 <= value.year <= 2999:
            problems.append(f"The {name} date '{raw[:20]}' is out of range: 1900 to 2999.")
            return default
        return value

    start = day("start", today - timedelta(days=89))
    end = day("end", today)
    if start > end:
        problems.append("The start date is after the end date; swap them.")
    if (end - start).days > MAX_RANGE_DAYS:
        problems.append("The range is longer than three years; choose a shorter one.")
    urgency = args.get("urgency") or None
    if urgency and urgency not in URGENCY_SHORT:
        problems.append(f"Urgency must be one of: {', '.join(URGENCY_SHORT)}.")
    category = args.get("diagnosis_category") or None
    if category and category not in dict(DIAGNOSIS_CATEGORY):
        problems.append("Unknown diagnosis category; choose one from the list.")
    surgeon = args.get("lead_surgeon") or None
    if problems:
        return None, problems
    # The user's teams' pathways (every team's for those who see them all).
    teams = None if scope.sees_every_team(current_user) else tuple(scope.team_codes(current_user))
    return figures.Filters(start, end, urgency, category, surgeon, teams), []


def _surgeons() -> list[User]:
    return list(
        db.session.scalars(
            select(User).where(User.role == "surgeon").order_by(User.full_name, User.username)
        )
    )


@bp.get("/reports/")
def index():
    filters, problems = _filters(request.args)
    context = {
        "args": request.args,
        "surgeons": _surgeons(),
        "problems": problems,
        "categories": DIAGNOSIS_CATEGORY,
        "urgencies": URGENCY_SHORT,
    }
    if filters is None:
        return render_template("reports/index.html", report=None, **context), 422
    report = figures.build(filters, datetime.now(UTC), _zone())
    return render_template(
        "reports/index.html",
        report=report,
        tables=figures.tables(report),
        charts=figures.charts(report),
        **context,
    )


@bp.get("/reports/<name>.csv")
def table_csv(name: str):
    filters, problems = _filters(request.args)
    if filters is None:
        abort(422, " ".join(problems))
    report = figures.build(filters, datetime.now(UTC), _zone())
    tables = figures.tables(report)
    if name not in tables:
        abort(404)
    _, header, rows = tables[name]
    return csv_response(f"{name}_{filters.start}_{filters.end}.csv", header, rows)


@bp.get("/this-week")
def this_week():
    """Targets already breached, clocks that will breach in the next 7 days, and follow-up
    visits overdue: the running rows of pathway_clock (every clock, not only each
    pathway's next one)."""
    now = datetime.now(UTC)
    everyone = request.args.get("who", "me" if current_user.role == "coordinator" else "all")
    mine = everyone == "me"
    base = (
        select(PathwayClock, Pathway)
        .join(Pathway, Pathway.id == PathwayClock.pathway_id)
        .options(joinedload(Pathway.patient))
        .where(
            PathwayClock.status == "running",
            Pathway.closed_at.is_(None),
            scope.pathways(current_user, now),
        )
        .order_by(PathwayClock.due_at, Pathway.id)
    )
    if mine:
        base = base.where(
            or_(
                Pathway.coordinator_id == current_user.id,
                Pathway.lead_surgeon_id == current_user.id,
            )
        )
    # One read: every running clock due before the week is out, split below.
    rows = db.session.execute(base.where(PathwayClock.due_at < now + timedelta(days=7))).all()
    # Targets already breached first (follow-up visits have their own list below), the
    # longest breached at the top; then those that will breach within the week.
    breached = [(c, p) for c, p in rows if c.due_at < now and c.clock not in VISIT_CLOCKS]
    breaching = [(c, p) for c, p in rows if c.due_at >= now]
    overdue = [(c, p) for c, p in rows if c.due_at < now and c.clock in VISIT_CLOCKS]
    return render_template(
        "reports/this_week.html",
        breached=breached,
        breaching=breaching,
        overdue=overdue,
        mine=mine,
        now=now,
        target_labels=TARGET_LABELS,
        state_labels=d.STATE_LABELS,
    )
