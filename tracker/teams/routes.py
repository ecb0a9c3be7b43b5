"""Break-glass pages and the check every page of one patient or pathway passes.

The role matrix (``tracker.web.access``) says who may use a page; here, after it, the
record itself must belong to one of the user's teams, or the user must hold emergency
access to its patient. Lists add ``tracker.teams.scope`` to their queries.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from flask import Blueprint, Flask, abort, g, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import HiddenField, SubmitField, TextAreaField
from wtforms.validators import DataRequired

from tracker.core.clock import local_zone
from tracker.core.db import utcnow
from tracker.engine import teams
from tracker.engine.models import Pathway
from tracker.extensions import db
from tracker.teams import scope
from tracker.teams.models import EmergencyAccess
from tracker.teams.services import AccessError, grant_emergency_access, minutes
from tracker.web.access import rule_for
from tracker.web.helpers import safe_next

bp = Blueprint("teams", __name__)


class EmergencyAccessForm(FlaskForm):
    reason = TextAreaField(
        "Clinical reason", validators=[DataRequired("Give the clinical reason.")]
    )
    next = HiddenField()
    submit = SubmitField("Open with emergency access")


def _record_of_request() -> tuple[int, list[str]] | None:
    """(patient id, the teams of what the URL names) for a page of one record."""
    args = request.view_args or {}
    if "pathway_id" in args:
        # The page loads the same row next, from the session's identity map.
        pathway = db.session.get(Pathway, args["pathway_id"])
        return (pathway.patient_id, [pathway.team]) if pathway is not None else None
    if "patient_id" in args:
        return args["patient_id"], scope.patient_teams(args["patient_id"])
    return None


def check_record() -> object:
    """Before every page of one patient or pathway: theirs, or emergency access."""
    if request.blueprint == "api" or not current_user.is_authenticated:
        return None  # the API checks its own records; the login comes first
    if rule_for(request.endpoint).shows not in ("patient", "pathway"):
        return None
    found = _record_of_request()
    if found is None:
        return None  # the page answers 404 itself
    patient_id, record_teams = found
    if not scope.outside(current_user, patient_id, record_teams):
        return None
    now = utcnow()
    access = scope.grant(current_user, patient_id, now)
    if access is not None:
        g.emergency_access = access
        return None
    g.refusal = (
        f"This patient is cared for by {', '.join(teams.label(t) for t in record_teams)}, "
        "not one of your teams."
    )
    form = EmergencyAccessForm(next=request.full_path.rstrip("?"))
    return _refused(form, patient_id, record_teams, 403)


def _refused(form, patient_id: int, record_teams: list[str], status: int):
    """The page that says whose patient this is and offers emergency access."""
    return (
        render_template(
            "teams/refused.html",
            form=form,
            patient_id=patient_id,
            team_labels=[teams.label(t) for t in record_teams],
            minutes=minutes(),
        ),
        status,
    )


def init_app(app: Flask) -> None:
    app.before_request(check_record)

    app.add_template_filter(teams.label, "team_label")

    @app.context_processor
    def emergency_banner():
        return {"emergency_access": g.get("emergency_access")}


@bp.post("/patients/<int:patient_id>/emergency-access")
def emergency_access(patient_id: int):
    record_teams = scope.patient_teams(patient_id)
    if not record_teams:
        abort(404)  # no such patient, or one every team sees (no pathway yet)
    form = EmergencyAccessForm()
    target = safe_next(form.next.data, url_for("patients.show", patient_id=patient_id))
    if form.validate_on_submit():
        try:
            # The pages it opens say so in a red banner, with the time it ends.
            grant_emergency_access(current_user, patient_id, form.reason.data, utcnow())
        except AccessError as exc:
            form.reason.errors = [str(exc)]
        else:
            return redirect(target)
    return _refused(form, patient_id, record_teams, 422)


@bp.get("/audit/emergency-access")
def report():
    """The administrators' report: emergency access by day, yesterday by default."""
    zone = local_zone()
    today = utcnow().astimezone(zone).date()
    raw = request.args.get("day", "")
    yesterday, error = today - timedelta(days=1), None
    try:
        day = datetime.strptime(raw, "%Y-%m-%d").date() if raw else yesterday
    except ValueError:
        day, error = yesterday, "Give the day as YYYY-MM-DD, e.g. 2026-11-28."
    if not date(2000, 1, 1) <= day <= today:
        day, error = yesterday, f"Give a day from 2000-01-01 to today ({today.isoformat()})."
    start = datetime.combine(day, time(), zone)
    grants = db.session.scalars(
        select(EmergencyAccess)
        .where(EmergencyAccess.granted_at >= start)
        .where(EmergencyAccess.granted_at < start + timedelta(days=1))
        .order_by(EmergencyAccess.granted_at)
    ).all()
    return render_template(
        "teams/report.html",
        grants=grants,
        day=day,
        today=today,
        error=error,
        previous=day - timedelta(days=1),
        following=day + timedelta(days=1) if day < today else None,
    )
