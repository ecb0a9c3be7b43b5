"""Pathway pages: load or 404, check permission, validate, call one service, commit, redirect."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Optional

from tracker.engine import clocks, services, tags
from tracker.engine import steps as d
from tracker.engine.dictionary import default_priority
from tracker.engine.errors import (
    InvalidData,
    PathwayError,
    RoleNotAllowed,
    StaleVersion,
)
from tracker.engine.fields import UserRef
from tracker.engine.history import OCCURRED_AT, REFERRAL_RECEIVED_AT
from tracker.engine.models import Event, Pathway
from tracker.engine.steps import all_fields_for
from tracker.engine.tasks import TASK_FIELD
from tracker.extensions import db
from tracker.mdt.models import GeneratedDocument
from tracker.overview.build import build as build_overview
from tracker.pathway.timeline import entries, recorder
from tracker.tracking import panel as tracking_panel
from tracker.users.models import User
from tracker.web import outcome_form
from tracker.web.boundary import discard
from tracker.web.forms import (
    collect,
    fill,
    form_class,
    from_local_input,
    put_errors,
    step_form,
    to_local_input,
)
from tracker.web.helpers import users_by_role

bp = Blueprint("pathway", __name__, url_prefix="/pathways")


def load(pathway_id: int) -> Pathway:
    return db.get_or_404(Pathway, pathway_id)


def _now() -> datetime:
    return datetime.now(UTC)


def _names() -> dict[str, str]:

    rows = db.session.execute(select(User.username, User.full_name)).all()
    return {username: full_name or username for username, full_name in rows}


def _actions(pathway: Pathway, history) -> dict:
    allowed = services.allowed_triggers(pathway, current_user, history)
    mdt = [t for t in allowed if d.is_mdt_outcome(t, pathway.state)]
    # The tracking steps have their own panel (tracker.tracking.panel).
    tracking = tracking_panel.tracking_triggers()
    return {
        "changes": [t for t in allowed if d.changes_state(t) and t not in mdt],
        "records": [t for t in allowed if not d.changes_state(t) and t not in tracking],
        "mdt": mdt,
        "can_amend": d.role_may(current_user.role, d.AMEND_TRIGGER),
        "void_refusal": services.void_refusal(pathway, current_user, history),
        "voidable": history.voidable_step(),
    }


def _map_at() -> int | None:
    """The MDT decision whose lesion map to show (``?map_at=seq``); anything else: today's."""
    raw = request.args.get("map_at", "")
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 9 else None


# The timeline shows this many of the latest steps; "Show the earlier steps" shows them all
# (a pathway of 200 steps rendered its timeline in two thirds of the page's time).
TIMELINE_SHOWN = 50


@bp.get("/<int:pathway_id>")
def show(pathway_id: int):
    pathway = load(pathway_id)
    history = services.load_history(pathway)
    statuses = clocks.compute(
        pathway.urgency, pathway.referral_received_at, history, _now(), pathway.closed_at
    )
    amendable = {s.seq for s in services.amendable_steps(history)}
    timeline = entries(history, _names())
    # A long history shows its latest steps; the earlier ones are a click away.
    shown = timeline if request.args.get("timeline") == "all" else timeline[-TIMELINE_SHOWN:]
    return render_template(
        "pathway/show.html",
        o=build_overview(pathway, history, _now(), _map_at()),
        pathway=pathway,
        history=history,
        entries=shown,
        folded=len(timeline) - len(shown),
        shown_seqs={entry.step.seq for entry in shown},
        targets=statuses,
        actions=_actions(pathway, history),
        amendable=amendable,
        recorder=recorder,
        now=_now(),
        documents=db.session.scalars(
            select(GeneratedDocument)
            .where(GeneratedDocument.pathway_id == pathway.id)
            .order_by(GeneratedDocument.generated_at.desc(), GeneratedDocument.id.desc())
        ).all(),
        tracking=tracking_panel.build(pathway, history, current_user, _now()),
    )


@bp.get("/<int:pathway_id>/print")
def print_view(pathway_id: int):
    """The overview on one A4 landscape page, for clinic, the MDT and theatre."""
    pathway = load(pathway_id)
    history = services.load_history(pathway)
    now = _now()
    statuses = clocks.compute(
        pathway.urgency, pathway.referral_received_at, history, now, pathway.closed_at
    )
    return render_template(
        "pathway/print.html",
        pathway=pathway,
        targets=statuses,
        o=build_overview(pathway, history, now, _map_at()),
        now=now,
    )


def _changed_since(pathway: Pathway, version: str | None) -> list[Event]:
    """The steps recorded after the version a form was opened at."""
    # A version past the pathway's own (a tampered or absurd form) shows every step since
    # the latest; it must not reach the query as a number the column cannot hold.
    opened = (
        min(int(version), pathway.version)
        if (version or "").isascii() and (version or "").isdigit()
        else 0
    )
    return list(
        db.session.scalars(
            select(Event)
            .where(Event.pathway_id == pathway.id, Event.seq > opened)
            .order_by(Event.seq)
        )
    )


def _resubmitted(form, pathway: Pathway):
    """A form sent again (a double-click, a refresh): what it recorded the first time."""
    earlier = _already_recorded(form.request_id.data)
    if earlier is None or earlier.pathway_id != pathway.id:
        return None
    if earlier.trigger == d.VOID_TRIGGER:
        flash("This step was already voided; nothing was added.", "info")
    else:
        flash(f"'{earlier.label}' was already recorded; nothing was added.", "info")
    return redirect(url_for("pathway.show", pathway_id=pathway.id))


def _already_recorded(request_id: str | None) -> Event | None:
    if not request_id:
        return None
    return services.recorded_with(request_id)


def _submit(pathway: Pathway, form, call, template: str, context: dict, translate=None, after=None):
    """Run one service call as one transaction and answer as PRG, or re-render with why."""
    try:
        result = call()
    except StaleVersion:
        discard()
        duplicate = _already_recorded(form.request_id.data)
        if duplicate is not None:  # a double-click that lost the race to itself
            flash("This step was already recorded.", "info")
            return redirect(url_for("pathway.show", pathway_id=pathway.id))
        pathway = load(pathway.id)
        changed = _changed_since(pathway, form.expected_version.data)
        form.expected_version.data = str(pathway.version)
        stale = StaleVersion(pathway.state, pathway.version).message
        return render_template(
            template, pathway=pathway, form=form, stale=stale, changed=changed, **context
        ), 409
    except InvalidData as exc:
        discard()
        unplaced = put_errors(form, translate(exc.errors) if translate else exc.errors)
        return render_template(
            template, pathway=pathway, form=form, problems=unplaced, **context
        ), 422
    except RoleNotAllowed as exc:
        discard()
        abort(403, exc.message)
    except PathwayError as exc:
        discard()
        return render_template(
            template, pathway=pathway, form=form, problems=[exc.message], **context
        ), 409
    if result.created:
        flash(f"Recorded: {result.event.label}.", "success")
    else:
        flash("This step was already recorded; nothing was added.", "info")
    if after is not None and (elsewhere := after(pathway)) is not None:
        return redirect(elsewhere)
    return redirect(url_for("pathway.show", pathway_id=pathway.id) + f"#event-{result.event.seq}")


def _with_every_problem(form, pathway: Pathway, trigger: str, fields) -> None:
    """A form that failed its own checks also shows what the pathway rules would refuse
    (a time out of order, a rule across fields), so every problem is reported in one round."""
    if not d.is_step(trigger):
        return
    occurred_at = from_local_input(form.occurred_at.data) if not form.occurred_at.errors else None
    try:
        data = collect(form, fields)
    except (TypeError, ValueError):  # an input the form could not read: its own error says so
        return
    found = services.problems(pathway, trigger, data, occurred_at)
    for name, messages in found.items():
        if name == "occurred_at" and occurred_at is None:
            continue
        target = form._fields.get(name)
        if target is not None and target.errors:
            continue  # the form's own words for this field stand
        put_errors(form, {name: messages})


def _not_now(pathway: Pathway, trigger: str):
    if d.transition_for(trigger, pathway.state) is None:
        abort(
            409,
            f"'{d.label(trigger)}' cannot be recorded now: the pathway is in "
            f"'{pathway.state_label}'.",
        )
    abort(409, services.not_allowed_reason(pathway, trigger, services.load_history(pathway)))


@bp.route("/<int:pathway_id>/record/<trigger>", methods=["GET", "POST"])
def record(pathway_id: int, trigger: str):
    pathway = load(pathway_id)
    if not d.is_step(trigger):
        abort(404)
    if d.is_mdt_outcome(trigger, pathway.state):
        return redirect(url_for("pathway.mdt_outcome", pathway_id=pathway.id, decision=trigger))
    posted = request.method == "POST"
    if not posted and trigger not in services.allowed_triggers(pathway, current_user):
        _not_now(pathway, trigger)
    form = step_form(
        trigger, pathway.state, pathway, users_by_role(), request.form if posted else None
    )
    context = {"trigger": trigger, "title": d.label(trigger), "when_choice": None}
    if not posted:
        history = services.load_history(pathway)
        defaults = services.form_defaults(trigger, pathway.state, history)
        fill(form, form.dictionary_fields, defaults)
        if (
            TASK_FIELD in form
            and (number := request.args.get(TASK_FIELD, "")).isascii()
            and number.isdigit()
        ):
            form[TASK_FIELD].data = int(number)  # Done / Cancel from the Tracking panel
        context["when_choice"] = outcome_form.when_preset(form, pathway, history)
    if TASK_FIELD in form:
        context["open_tasks"] = tracking_panel.open_tasks(pathway)
    if posted:
        if (repeat := _resubmitted(form, pathway)) is not None:
            return repeat
        if form.validate():
            data = collect(form, form.dictionary_fields)
            return _submit(
                pathway,
                form,
                lambda: services.record(
                    pathway,
                    trigger,
                    data,
                    from_local_input(form.occurred_at.data),
                    current_user,
                    int(form.expected_version.data),
                    form.request_id.data,
                ),
                "pathway/step.html",
                context,
            )
        _with_every_problem(form, pathway, trigger, form.dictionary_fields)
        return render_template("pathway/step.html", pathway=pathway, form=form, **context), 422
    return render_template("pathway/step.html", pathway=pathway, form=form, **context)


@bp.route("/<int:pathway_id>/mdt-outcome", methods=["GET", "POST"])
def mdt_outcome(pathway_id: int):
    """The one MDT outcome form. From a live meeting (``?live=<meeting id>``) the outcome
    is the same step; the answer returns to the meeting's next case."""
    pathway = load(pathway_id)
    history = services.load_history(pathway)
    posted = request.method == "POST"
    built = outcome_form.build(pathway, history, current_user, posted)
    if not built.allowed and not posted:
        abort(
            409,
            f"An MDT outcome can be recorded only in MDT review; this pathway is in "
            f"'{pathway.state_label}'.",
        )
    form, fields = built.form, built.fields
    context = {**built.context, "live": outcome_form.live_meeting()}
    if posted and request.form.get("calculate"):
        # "Calculate scores" only shows the totals; nothing is recorded.
        return render_template("pathway/mdt_outcome.html", pathway=pathway, form=form, **context)
    if posted:
        if (repeat := _resubmitted(form, pathway)) is not None:
            return repeat
        if form.validate():
            data = collect(form, fields)
            return _submit(
                pathway,
                form,
                lambda: services.record(
                    pathway,
                    form.decision.data,
                    data,
                    from_local_input(form.occurred_at.data),
                    current_user,
                    int(form.expected_version.data),
                    form.request_id.data,
                ),
                "pathway/mdt_outcome.html",
                context,
                after=outcome_form.after_live_outcome,
            )
        if form.decision.data in built.allowed:
            _with_every_problem(form, pathway, form.decision.data, fields)
        return render_template(
            "pathway/mdt_outcome.html", pathway=pathway, form=form, **context
        ), 422
    return render_template("pathway/mdt_outcome.html", pathway=pathway, form=form, **context)


# In the amend form the step's own `reason` (withdraw, refer_to_mdt) is renamed, so it does
# not clash with the reason for the correction.
STEP_REASON = "corrected_reason"


def _amend_fields(step) -> tuple:
    out = []
    for f in all_fields_for(step.trigger, step.from_state):
        if f.name == "reason":
            f = dataclasses.replace(f, name=STEP_REASON, label=f"{f.label} (as corrected)")
        out.append(f)
    return tuple(out)


def _keep_recorded_people(form, fields, data) -> None:
    """A person named in the record stays choosable after their account is deactivated."""
    for f in fields:
        value = data.get(f.name)
        if (
            isinstance(f, UserRef)
            and value
            and value not in {c.value for c in form[f.name].choices}
        ):
            form[f.name].choices = [
                *form[f.name].choices,
                SelectChoice(value, f"{value} (inactive)"),
            ]


def _same_minute(a: datetime | None, b: datetime | None) -> bool:
    """Times as a form shows them: to the minute (an untouched time is no correction)."""
    if a is None or b is None:
        return a is b
    return a.replace(second=0, microsecond=0) == b.replace(second=0, microsecond=0)


@bp.route("/<int:pathway_id>/amend/<int:seq>", methods=["GET", "POST"])
def amend(pathway_id: int, seq: int):
    """Correct a recorded step: its data and when it happened; on the referral (step 1),
    every referral field and when it was received."""
    pathway = load(pathway_id)
    history = services.load_history(pathway)
    step = history.by_seq.get(seq)
    if step is None:
        abort(404)
    if step not in services.amendable_steps(history):
        abort(
            409,
            f"Step {seq} cannot be amended: sign-offs, corrections and voided steps cannot "
            "be; every other recorded step can.",
        )
    referral = tags.OPENS in step.tags
    time_key = REFERRAL_RECEIVED_AT if referral else OCCURRED_AT
    fields = _amend_fields(step)
    recorded = {(STEP_REASON if k == "reason" else k): v for k, v in step.data.items()}
    if referral:
        recorded.setdefault("referral_priority", default_priority(recorded.get("urgency")))
    reason_field = all_fields_for(d.AMEND_TRIGGER, None)[1]
    posted = request.method == "POST"
    form = form_class((*fields, reason_field), users_by_role())(
        formdata=request.form if posted else None
    )
    time_input = form[time_key]
    # Left blank (or not sent): the step keeps its time.
    time_input.validators = [Optional()]
    time_input.flags.required = False
    if referral:
        del form.occurred_at  # the referral's time is its own field, referral_received_at
    else:
        time_input.label.text = "When it happened"
        time_input.description = "Local time. Change it if the step was dated wrongly."
    _keep_recorded_people(form, fields, recorded)
    context = {"step": step, "title": f"Amend: {d.label(step.trigger)}"}
    if not posted:
        fill(form, [f for f in fields if f.name != time_key], recorded)
        outcome_form.start(form, pathway)
        time_input.data = to_local_input(step.occurred_at)
        return render_template("pathway/amend.html", pathway=pathway, form=form, **context)
    if (repeat := _resubmitted(form, pathway)) is not None:
        return repeat
    if not form.validate():
        return render_template("pathway/amend.html", pathway=pathway, form=form, **context), 422
    new = collect(form, fields)
    changes = {
        ("reason" if f.name == STEP_REASON else f.name): new.get(f.name)
        for f in fields
        if f.name != time_key and new.get(f.name) != recorded.get(f.name)
    }
    when = from_local_input(time_input.data)
    if when is not None and not _same_minute(when, step.occurred_at):
        changes[time_key] = when.isoformat()

    def errors_to_form(errors: dict) -> dict:
        out = {}
        for key, messages in errors.items():
            name = key.removeprefix("changes.")
            out[STEP_REASON if key == "changes.reason" else name] = messages
        return out

    return _submit(
        pathway,
        form,
        lambda: services.amend(
            pathway,
            seq,
            changes,
            form.reason.data,
            current_user,
            int(form.expected_version.data),
            form.request_id.data,
        ),
        "pathway/amend.html",
        context,
        translate=errors_to_form,
    )


@bp.route("/<int:pathway_id>/void", methods=["GET", "POST"])
def void(pathway_id: int):
    pathway = load(pathway_id)
    history = services.load_history(pathway)
    reason_field = all_fields_for(d.VOID_TRIGGER, None)[0]
    posted = request.method == "POST"
    form = form_class((reason_field,), {})(formdata=request.form if posted else None)
    del form.occurred_at
    context = {"step": history.voidable_step(), "title": "Void the last step"}
    if not posted:
        refusal = services.void_refusal_error(current_user, history)
        if refusal:
            abort(refusal.status, refusal.message)  # the same answer as the POST would get
        outcome_form.start(form, pathway)
        return render_template("pathway/void.html", pathway=pathway, form=form, **context)
    if (repeat := _resubmitted(form, pathway)) is not None:
        return repeat
    if not form.validate():
        return render_template("pathway/void.html", pathway=pathway, form=form, **context), 422
    return _submit(
        pathway,
        form,
        lambda: services.void_last_step(
            pathway,
            form.reason.data,
            current_user,
            int(form.expected_version.data),
            form.request_id.data,
        ),
        "pathway/void.html",
        context,
    )
