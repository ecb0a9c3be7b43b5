"""Pages: what a bulk action will do to the patients ticked on a list (GET), and doing it
(POST). Thin: the rules are in ``tracker.bulk.services``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

from flask import Blueprint, abort, flash, redirect, render_template, request
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import HiddenField, SelectField, StringField, SubmitField, TextAreaField

from tracker.bulk import services
from tracker.core.clock import local_zone
from tracker.core.db import utcnow
from tracker.engine import steps as d
from tracker.engine import teams
from tracker.engine.errors import InvalidData
from tracker.engine.models import Pathway
from tracker.extensions import db
from tracker.mdt import services as mdt
from tracker.mdt.models import TRIAGE, MdtMeeting
from tracker.users.roles import CLINICAL, ROLE_LABELS
from tracker.web.back import LISTS, list_url
from tracker.web.boundary import discard
from tracker.web.forms import options, put_errors
from tracker.web.helpers import users_by_role

bp = Blueprint("bulk", __name__, url_prefix="/bulk")


@bp.app_template_global()
def bulk_actions() -> list[services.Action]:
    """The bulk actions the reader may take (none: the list shows no tick boxes)."""
    return services.available(current_user) if current_user.is_authenticated else []


class BulkForm(FlaskForm):
    action = HiddenField()
    request_id = HiddenField()
    back_page = HiddenField()
    back_query = HiddenField()
    lead_surgeon = SelectField("New lead surgeon", validate_choice=False)
    coordinator = SelectField("New coordinator", validate_choice=False)
    meeting_id = SelectField("Meeting", validate_choice=False)
    question = TextAreaField("Clinical question", description="The same question for each.")
    presenter = SelectField("Presenter", validate_choice=False)
    triage = SelectField(
        "Triage", choices=options([("", ""), *TRIAGE.items()]), validate_choice=False
    )
    late_reason = TextAreaField(
        "Reason for a late addition", description="Needed once the meeting's list has closed."
    )
    what = StringField("What needs doing", description="The same task on each pathway.")
    owner = SelectField(
        "Owner",
        validate_choice=False,
        description="A coordinator or surgeon in each patient's team.",
    )
    # Text, not a DateField: a mistyped date is answered by the action's own check, saying
    # what is wrong, rather than refusing the form.
    due_on = StringField("Due by", description="Not in the past.", render_kw={"type": "date"})
    note = TextAreaField("Note (optional)", description="Recorded with the step on each pathway.")
    submit = SubmitField("Apply to these patients")

    def values(self) -> dict:
        return {
            name: getattr(self, name).data or ""
            for name in (
                "lead_surgeon",
                "coordinator",
                "meeting_id",
                "question",
                "presenter",
                "triage",
                "late_reason",
                "what",
                "owner",
                "due_on",
                "note",
            )
        }


@dataclass
class Row:
    chosen: services.Selected
    pathway: Pathway | None  # None: not found, or outside the reader's teams
    warning: str | None


def _people(people: dict[str, list], role: str) -> list[tuple[str, str]]:
    return [("", "")] + [(u.username, u.display_name) for u in people.get(role, [])]


def _owners(people: dict[str, list]) -> list[tuple[str, str]]:
    """Who may own a task: the active coordinators and surgeons, as the 'Add task' step's
    owner field lists them."""
    return [("", "")] + [
        (u.username, f"{u.display_name} ({ROLE_LABELS[u.role].lower()})")
        for role in sorted(CLINICAL)
        for u in people.get(role, [])
    ]


def _meetings(team_codes: set[str]) -> list[tuple[str, str]]:
    """Scheduled meetings ahead of the selected pathways' teams."""
    today = utcnow().astimezone(local_zone()).date()
    found = db.session.scalars(
        select(MdtMeeting)
        .where(
            MdtMeeting.team.in_(sorted(team_codes) or [""]),
            MdtMeeting.status == "scheduled",
            MdtMeeting.meeting_date >= today,
        )
        .order_by(MdtMeeting.meeting_date, MdtMeeting.start_time)
        .limit(40)
    )
    now = utcnow()
    out = [("", "")]
    for m in found:
        if mdt.starts_at(m) <= now:
            continue
        late = " (list closed: a reason is needed)" if now >= mdt.closes_at(m) else ""
        out.append(
            (str(m.id), f"{teams.label(m.team)}: {_day(m.meeting_date)} {m.start_time:%H:%M}{late}")
        )
    return out


def _day(value: date) -> str:
    return f"{value:%a %d %b %Y}"


def _rows(selection: list[services.Selected], action: services.Action) -> list[Row]:
    pathways = services.selected_pathways(selection, current_user, utcnow())
    rows = []
    for chosen in selection:
        pathway = pathways.get(chosen.pathway_id)
        warning = None
        if pathway is None:
            warning = "Not found, or not in your teams."
        elif pathway.version != chosen.version:
            warning = "Changed since the list was shown: check it first."
        elif d.transition_for(action.trigger, pathway.state) is None:
            warning = f"'{d.label(action.trigger)}' does not apply in its state."
        rows.append(Row(chosen, pathway, warning))
    return rows


def _page(form: BulkForm, action, selection, status=200, failures=(), problems=()):
    rows = _rows(selection, action)
    people = users_by_role()  # the active users, one query for every list of names
    form.lead_surgeon.choices = options(_people(people, "surgeon"))
    form.coordinator.choices = options(_people(people, "coordinator"))
    form.presenter.choices = options(
        _people(people, "surgeon") + _people(people, "coordinator")[1:]
    )
    form.owner.choices = options(_owners(people))
    form.meeting_id.choices = options(_meetings({r.pathway.team for r in rows if r.pathway}))
    back = list_url(form.back_page.data or "worklist", form.back_query.data or "")
    return render_template(
        "bulk/review.html",
        form=form,
        action=action,
        rows=rows,
        failures=list(failures),
        problems=list(problems),
        back=back,
        back_label=LISTS.get(form.back_page.data or "", LISTS["worklist"])[1],
    ), status


@bp.route("/", methods=["GET", "POST"])
def act():
    if request.method == "GET":
        return _review()
    form = BulkForm()
    action = services.check_action(form.action.data or "", current_user)
    try:
        selection = services.parse_selection(request.form.getlist("pathway"))
    except InvalidData as exc:
        abort(400, exc.errors["pathway"][0])
    if not form.validate():
        abort(400, "The form expired: open the list again and retry.")
    try:
        done = services.apply(
            action.code, form.values(), selection, current_user, form.request_id.data or ""
        )
    except services.BulkRefused as exc:
        discard()
        return _page(form, action, selection, 409, failures=exc.failures)
    except InvalidData as exc:
        discard()
        # A hidden field's message (the form's request id) is shown above the form, as
        # the messages of no field are: beside a hidden field, nobody would see it.
        errors = dict(exc.errors)
        hidden = [m for f in form if f.type == "HiddenField" for m in errors.pop(f.name, [])]
        problems = hidden + put_errors(form, errors)
        return _page(form, action, selection, 422, problems=problems)
    flash(done.summary, "success")
    return redirect(list_url(form.back_page.data or "worklist", form.back_query.data or ""))


def _review():
    """What the list's action form sent: the action and the ticked rows (or every row of
    the page), with the way back to the list as it was."""
    args = request.args
    page = args.get("back_page") if args.get("back_page") in LISTS else "worklist"
    query = args.get("back_query", "")
    back = list_url(page, query)
    tokens = args.getlist("page_row") if args.get("scope") == "page" else args.getlist("pathway")
    if not tokens:
        flash("Tick at least one patient, or choose 'Every patient on this page'.", "warning")
        return redirect(back)
    code = args.get("action", "")
    if code not in services.ACTIONS:
        flash("Choose what to do with the patients you ticked.", "warning")
        return redirect(back)
    action = services.check_action(code, current_user)
    try:
        selection = services.parse_selection(tokens)
    except InvalidData as exc:
        abort(400, exc.errors["pathway"][0])
    if len(selection) > services.MAX_SELECTED:
        flash(f"Select at most {services.MAX_SELECTED} patients at once.", "warning")
        return redirect(back)
    form = BulkForm(
        formdata=None,
        action=action.code,
        request_id=uuid.uuid4().hex,
        back_page=page,
        back_query=query,
    )
    return _page(form, action, selection)
