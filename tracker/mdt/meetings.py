"""MDT meetings as pages: the list of meetings, a week or month calendar, creating and
editing a meeting or a weekly series, one meeting with its cases in order, and listing
a pathway on a meeting. Thin: the rules are in ``tracker.mdt.services``."""

from __future__ import annotations

import uuid
from calendar import monthrange
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import groupby

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import (
    DateField,
    HiddenField,
    IntegerField,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
    TimeField,
)
from wtforms.validators import Optional

from tracker.core.clock import local_zone
from tracker.core.db import utcnow
from tracker.engine import services as engine
from tracker.engine import steps as d
from tracker.engine import teams
from tracker.engine.errors import InvalidData, PathwayError, RoleNotAllowed, StaleVersion
from tracker.engine.history import History
from tracker.engine.models import Event, Pathway
from tracker.extensions import db
from tracker.mdt import agenda, mailing, services
from tracker.mdt.models import MEETING_STATUSES, TRIAGE, MdtCase, MdtMeeting
from tracker.mdt.routes import bp
from tracker.users.models import User
from tracker.web.boundary import discard
from tracker.web.forms import INCOMPLETE, RequestIdField, options, put_errors
from tracker.web.helpers import users_by_role

PAST_SHOWN = 30  # past meetings on the list


def _today() -> date:
    return utcnow().astimezone(local_zone()).date()


def _user_choices(roles=("surgeon", "coordinator", "viewer")) -> list[tuple[str, str]]:
    grouped = users_by_role()
    people = [u for role in roles for u in grouped.get(role, [])]
    people.sort(key=lambda u: (u.full_name or u.username).lower())
    return [("", "")] + [(u.username, u.full_name or u.username) for u in people]


class MeetingForm(FlaskForm):
    team = SelectField("Team", validate_choice=False)
    meeting_date = DateField("Date", validators=[Optional()])
    start_time = TimeField("Start time", validators=[Optional()])
    location = StringField("Location", description="A room, or leave blank for a video meeting.")
    video_link = StringField("Video link", description="https://... (optional)")
    chair = SelectField("Chair", validate_choice=False)
    status = SelectField("Status", choices=options(MEETING_STATUSES.items()), validate_choice=False)
    submit = SubmitField("Save meeting")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.team.choices = options([("", ""), *teams.teams()])
        self.chair.choices = options(_user_choices())

    def values(self) -> dict:
        return {
            "team": self.team.data,
            "meeting_date": day.isoformat()
            if (day := getattr(self.meeting_date, "data", None))
            else "",
            "start_time": self.start_time.data.strftime("%H:%M") if self.start_time.data else "",
            "location": self.location.data,
            "video_link": self.video_link.data,
            "chair": self.chair.data,
            "status": self.status.data,
        }


class SeriesForm(MeetingForm):
    meeting_date = None  # a series has weekdays, not one date
    weekday = SelectField(
        "Every",
        choices=options((w, w.capitalize()) for w in services.WEEKDAYS),
        default="tuesday",
    )
    weeks = IntegerField("Weeks ahead", default=8, validators=[Optional()])
    submit = SubmitField("Create the meetings")


class ListingForm(FlaskForm):
    meeting_id = SelectField("Meeting", validate_choice=False)
    question = TextAreaField("Clinical question")
    presenter = SelectField("Presenter", validate_choice=False)
    triage = SelectField(
        "Triage", choices=options([("", ""), *TRIAGE.items()]), validate_choice=False
    )
    late_reason = TextAreaField(
        "Reason for a late addition",
        description="Needed once the list has closed; shown on the list.",
    )
    expected_version = HiddenField()
    request_id = RequestIdField()
    submit = SubmitField("List on this meeting")


def _problems(form, exc: InvalidData) -> list[str]:
    return put_errors(form, exc.errors)


# -- meetings -------------------------------------------------------------------------------


@dataclass
class MeetingRow:
    meeting: MdtMeeting
    cases: int
    outstanding: int

    @property
    def past(self) -> bool:
        return services.starts_at(self.meeting) <= utcnow()


def _outstanding(cases: list[MdtCase]) -> dict[int, int]:
    """Per meeting, how many of its listed cases have no outcome recorded since."""
    ids = {c.pathway_id for c in cases}
    if not ids:
        return {}
    events = db.session.scalars(
        select(Event).where(Event.pathway_id.in_(ids)).order_by(Event.pathway_id, Event.seq)
    )
    histories = {
        pid: History.from_events(list(evs)) for pid, evs in groupby(events, lambda e: e.pathway_id)
    }
    out: dict[int, int] = {}
    for case in cases:
        history = histories[case.pathway_id]
        if case.rolled_to_id is not None or _voided(case, history):
            continue
        if not services.outcome_recorded(case, history):
            out[case.meeting_id] = out.get(case.meeting_id, 0) + 1
    return out


def _voided(case: MdtCase, history: History) -> bool:
    step = next(
        (s for s in history.steps if s.event is not None and s.event.id == case.event_id), None
    )
    return step is None or step.voided_by is not None


def _rows(meetings: list[MdtMeeting]) -> list[MeetingRow]:
    ids = [m.id for m in meetings]
    cases = (
        list(db.session.scalars(select(MdtCase).where(MdtCase.meeting_id.in_(ids)))) if ids else []
    )
    counts: dict[int, int] = {}
    for case in cases:
        counts[case.meeting_id] = counts.get(case.meeting_id, 0) + 1
    now = utcnow()
    past = [c for c in cases if services.starts_at(c.meeting) <= now]
    outstanding = _outstanding(past)
    return [MeetingRow(m, counts.get(m.id, 0), outstanding.get(m.id, 0)) for m in meetings]


@bp.get("/meetings")
def meetings():
    today = _today()
    team = request.args.get("team", "")
    query = select(MdtMeeting)
    if team in teams.codes():
        query = query.where(MdtMeeting.team == team)
    upcoming = db.session.scalars(
        query.where(MdtMeeting.meeting_date >= today).order_by(
            MdtMeeting.meeting_date, MdtMeeting.start_time, MdtMeeting.id
        )
    ).all()
    past = db.session.scalars(
        query.where(MdtMeeting.meeting_date < today)
        .order_by(MdtMeeting.meeting_date.desc(), MdtMeeting.start_time.desc())
        .limit(PAST_SHOWN)
    ).all()
    return render_template(
        "mdt/meetings.html",
        upcoming=_rows(list(upcoming)),
        past=_rows(list(past)),
        team=team,
        teams=teams.teams(),
        may_organise=current_user.role in services.MAY_ORGANISE,
    )


@bp.get("/calendar")
def calendar():
    view = request.args.get("view", "week")
    if view not in ("week", "month"):
        view = "week"
    try:
        day = date.fromisoformat(request.args.get("day", "")) if request.args.get("day") else None
    except ValueError:
        day = None
    # A day the calendar can show, with the weeks either side of it.
    if day is not None and not date(2000, 1, 1) <= day <= date(2999, 12, 1):
        day = None
    day = day or _today()
    if view == "month":
        first = day.replace(day=1)
        last = first.replace(day=monthrange(first.year, first.month)[1])
        start = first - timedelta(days=first.weekday())
        end = last + timedelta(days=6 - last.weekday())
        previous = (first - timedelta(days=1)).replace(day=1)
        following = last + timedelta(days=1)
        title = f"{first:%B %Y}"
    else:
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=6)
        previous, following = start - timedelta(days=7), start + timedelta(days=7)
        title = f"Week of {start.day} {start:%B %Y}"
    found = db.session.scalars(
        select(MdtMeeting)
        .where(MdtMeeting.meeting_date.between(start, end))
        .order_by(MdtMeeting.meeting_date, MdtMeeting.start_time)
    ).all()
    by_day: dict[date, list[MdtMeeting]] = {}
    for meeting in found:
        by_day.setdefault(meeting.meeting_date, []).append(meeting)
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    weeks = [days[i : i + 7] for i in range(0, len(days), 7)]
    return render_template(
        "mdt/calendar.html",
        view=view,
        weeks=weeks,
        by_day=by_day,
        title=title,
        month=day.month,
        today=_today(),
        previous=previous,
        following=following,
        team_label=teams.label,
    )


def _meeting_form_page(form, meeting: MdtMeeting | None, template="mdt/meeting_form.html"):
    return render_template(template, form=form, meeting=meeting)


@bp.route("/meetings/new", methods=["GET", "POST"])
def new_meeting():
    form = MeetingForm()
    if request.method == "GET":
        form.chair.data = current_user.username if current_user.role == "surgeon" else ""
        return _meeting_form_page(form, None)
    if not form.validate():
        return _meeting_form_page(form, None), 422
    try:
        # A new meeting is scheduled: its form has no status to choose.
        meeting = services.create_meeting({**form.values(), "status": "scheduled"}, current_user)
    except InvalidData as exc:
        discard()
        put_errors(form, exc.errors)
        return _meeting_form_page(form, None), 422
    flash("Meeting created.", "success")
    return redirect(url_for("mdt.meeting", meeting_id=meeting.id))


@bp.route("/meetings/<int:meeting_id>/edit", methods=["GET", "POST"])
def edit_meeting(meeting_id: int):
    meeting = db.get_or_404(MdtMeeting, meeting_id)
    form = MeetingForm()
    if request.method == "GET":
        form.team.data = meeting.team
        form.meeting_date.data = meeting.meeting_date
        form.start_time.data = meeting.start_time
        form.location.data = meeting.location
        form.video_link.data = meeting.video_link
        form.chair.data = meeting.chair.username if meeting.chair else ""
        form.status.data = meeting.status
        return _meeting_form_page(form, meeting)
    if not form.validate():
        return _meeting_form_page(form, meeting), 422
    try:
        changed = services.update_meeting(meeting, form.values(), current_user)
    except InvalidData as exc:
        discard()
        put_errors(form, exc.errors)
        return _meeting_form_page(form, db.session.get(MdtMeeting, meeting_id)), 422
    flash(
        "Meeting changed." if changed else "Nothing was changed.", "success" if changed else "info"
    )
    return redirect(url_for("mdt.meeting", meeting_id=meeting.id))


@bp.route("/meetings/series", methods=["GET", "POST"])
def new_series():
    form = SeriesForm()
    if request.method == "GET":
        return _meeting_form_page(form, None, "mdt/series_form.html")
    if not form.validate():
        return _meeting_form_page(form, None, "mdt/series_form.html"), 422
    values = {**form.values(), "status": "scheduled"}  # new meetings are scheduled
    values.pop("meeting_date")
    try:
        created, existing = services.create_series(
            values, form.weekday.data, form.weeks.data, current_user, _today()
        )
    except InvalidData as exc:
        discard()
        put_errors(form, exc.errors)
        return _meeting_form_page(form, None, "mdt/series_form.html"), 422
    flash(
        f"{len(created)} meeting{'s' if len(created) != 1 else ''} created"
        + (f"; {existing} already existed" if existing else "")
        + ".",
        "success",
    )
    return redirect(url_for("mdt.meetings", team=values["team"]))


# -- one meeting ----------------------------------------------------------------------------


@bp.get("/meetings/<int:meeting_id>")
def meeting(meeting_id: int):
    meeting = db.get_or_404(MdtMeeting, meeting_id)
    now = utcnow()
    rows = agenda.build(meeting, current_user, now)
    past = now >= services.starts_at(meeting)
    quorum = services.quorum(meeting)
    return render_template(
        "mdt/meeting.html",
        meeting=meeting,
        rows=rows,
        starts_at=services.starts_at(meeting),
        closes_at=services.closes_at(meeting),
        closed=now >= services.closes_at(meeting),
        past=past,
        team_label=teams.label(meeting.team),
        triage=TRIAGE,
        statuses=MEETING_STATUSES,
        may_organise=current_user.role in services.MAY_ORGANISE,
        quorum=quorum,
        specialties=services.SPECIALTIES,
        attendance_form=AttendanceForm(),
        outstanding=[r for r in rows if r.visible and r.outstanding] if past else [],
        rolled_to={m.id: m for m in _rolled_to(rows)},
        decision_words=agenda.decision_words,
        list_sent=mailing.last_sent(meeting),
    )


@bp.post("/meetings/<int:meeting_id>/send-list")
def send_list(meeting_id: int):
    """Email the meeting's list (when, where, how many cases, a link) to its team."""
    meeting = db.get_or_404(MdtMeeting, meeting_id)
    if not FlaskForm().validate():
        abort(400, "The form expired: open the meeting again and retry.")
    try:
        sent = mailing.send_list(meeting, current_user, utcnow())
    except InvalidData as exc:
        discard()
        flash(" ".join(m for ms in exc.errors.values() for m in ms), "danger")
        return redirect(url_for("mdt.meeting", meeting_id=meeting_id)), 303
    flash(f"List sent to {sent} {'person' if sent == 1 else 'people'} of the team.", "success")
    return redirect(url_for("mdt.meeting", meeting_id=meeting_id))


def _rolled_to(rows) -> list[MdtMeeting]:
    ids = {r.case.rolled_to_id for r in rows if r.case.rolled_to_id}
    return list(db.session.scalars(select(MdtMeeting).where(MdtMeeting.id.in_(ids)))) if ids else []


class AttendanceForm(FlaskForm):
    user = SelectField("Who attended", validate_choice=False)
    specialty = SelectField("As", validate_choice=False)
    submit = SubmitField("Add to the attendance")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.user.choices = options(_user_choices())
        self.specialty.choices = options([("", ""), *services.SPECIALTIES.items()])


@bp.post("/meetings/<int:meeting_id>/attendance")
def add_attendance(meeting_id: int):
    meeting = db.get_or_404(MdtMeeting, meeting_id)
    form = AttendanceForm()
    if not form.validate():
        abort(400, "The form expired: open the meeting again and retry.")
    try:
        attended = services.record_attendance(
            meeting, form.user.data, form.specialty.data, current_user
        )
    except InvalidData as exc:
        discard()
        flash(" ".join(m for ms in exc.errors.values() for m in ms), "danger")
        return redirect(url_for("mdt.meeting", meeting_id=meeting_id) + "#attendance"), 303
    flash(f"{attended.user.full_name or attended.user.username} added.", "success")
    return redirect(url_for("mdt.meeting", meeting_id=meeting_id) + "#attendance")


@bp.post("/meetings/<int:meeting_id>/cases/<int:case_id>/move")
def move_case(meeting_id: int, case_id: int):
    case = db.get_or_404(MdtCase, case_id)
    if case.meeting_id != meeting_id:
        abort(404)
    form = FlaskForm()
    if not form.validate():
        abort(400, "The form expired: open the meeting again and retry.")
    try:
        moved = services.move_case(case, request.form.get("direction", ""), current_user)
    except InvalidData as exc:
        discard()
        abort(400, "; ".join(m for ms in exc.errors.values() for m in ms))
    if not moved:
        flash("That case is already at the end of the list.", "info")
    return redirect(url_for("mdt.meeting", meeting_id=meeting_id) + f"#case-{case.id}")


# -- listing a pathway ----------------------------------------------------------------------


def _meeting_choices(pathway: Pathway) -> list[tuple[str, str]]:
    found = db.session.scalars(
        select(MdtMeeting)
        .where(
            MdtMeeting.team == pathway.team,
            MdtMeeting.status == "scheduled",
            MdtMeeting.meeting_date >= _today(),
        )
        .order_by(MdtMeeting.meeting_date, MdtMeeting.start_time)
        .limit(20)
    )
    now = utcnow()
    out = [("", "")]
    for m in found:
        if services.starts_at(m) <= now:
            continue
        late = " (list closed: a reason is needed)" if now >= services.closes_at(m) else ""
        out.append((str(m.id), f"{m.meeting_date:%a %d %b %Y} {m.start_time:%H:%M}{late}"))
    return out


@bp.route("/pathways/<int:pathway_id>/list", methods=["GET", "POST"])
def list_case(pathway_id: int):
    pathway = db.get_or_404(Pathway, pathway_id)
    form = ListingForm()
    form.meeting_id.choices = options(_meeting_choices(pathway))
    form.presenter.choices = options(_user_choices(("surgeon", "coordinator")))
    context = {
        "pathway": pathway,
        "team_label": teams.label(pathway.team),
        "no_meetings": len(form.meeting_id.choices) == 1,
    }
    if request.method == "GET":
        if services.LISTING not in engine.allowed_triggers(pathway, current_user):
            abort(
                409,
                f"A pathway is listed on an MDT meeting in "
                f"'{d.STATE_LABELS['mdt_review']}'; this one is in '{pathway.state_label}'.",
            )
        form.meeting_id.data = request.args.get("meeting_id", "")
        form.expected_version.data = str(pathway.version)
        form.request_id.data = uuid.uuid4().hex
        return render_template("mdt/list_case.html", form=form, **context)
    version_sent = form.expected_version.data or ""
    version_ok = version_sent.isascii() and version_sent.isdigit() and len(version_sent) <= 18
    if not form.validate() or not form.request_id.data or not version_ok:
        problems = [] if form.request_id.data and version_ok else [INCOMPLETE]
        return render_template("mdt/list_case.html", form=form, problems=problems, **context), 422
    chosen = form.meeting_id.data or ""
    data = {
        "meeting_id": int(chosen) if chosen.isascii() and chosen.isdigit() else None,
        "question": form.question.data,
        "presenter": form.presenter.data,
        "triage": form.triage.data,
        "late_reason": form.late_reason.data,
    }
    data = {k: v for k, v in data.items() if v not in (None, "")}
    if "meeting_id" not in data:
        form.meeting_id.errors = ["Choose the meeting"]
        return render_template("mdt/list_case.html", form=form, **context), 422
    try:
        version = int(form.expected_version.data or 0)
        result = engine.record(
            pathway,
            services.LISTING,
            data,
            utcnow(),
            current_user,
            version,
            form.request_id.data,
        )
    except InvalidData as exc:
        discard()
        problems = put_errors(form, exc.errors)
        return render_template("mdt/list_case.html", form=form, problems=problems, **context), 422
    except StaleVersion as exc:
        discard()
        form.expected_version.data = str(db.session.get(Pathway, pathway_id).version)
        return render_template(
            "mdt/list_case.html", form=form, problems=[exc.message], **context
        ), 409
    except RoleNotAllowed as exc:
        discard()
        abort(403, exc.message)
    except PathwayError as exc:
        discard()
        return render_template(
            "mdt/list_case.html", form=form, problems=[exc.message], **context
        ), 409
    if result.created:
        flash("Listed on the meeting.", "success")
    return redirect(url_for("mdt.meeting", meeting_id=data["meeting_id"]))


def presenter_name(user: User | None) -> str:
    return (user.full_name or user.username) if user else ""
