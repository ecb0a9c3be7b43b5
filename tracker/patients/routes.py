from __future__ import annotations

import json
from datetime import UTC, datetime

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from wtforms import BooleanField, HiddenField, SubmitField

from tracker.core.db import utcnow
from tracker.engine import services as pathway_services
from tracker.engine.dictionary import PATHWAY_FIELDS
from tracker.engine.errors import InvalidData, RequestIdReused, RoleNotAllowed, StaleVersion
from tracker.extensions import db
from tracker.patients.errors import DuplicateMRN, DuplicateNHSNumber, DuplicatePatient
from tracker.patients.fields import PATIENT_FIELDS, format_nhs_number
from tracker.patients.models import Patient
from tracker.patients.services import (
    changed_words,
    find_by_mrn,
    find_by_nhs_number,
    register_patient,
    update_patient,
)
from tracker.teams import scope
from tracker.web.auditing import record_refusal
from tracker.web.boundary import discard, keep
from tracker.web.forms import (
    collect,
    fill,
    form_class,
    from_local_input,
    put_errors,
    to_local_input,
)
from tracker.web.helpers import patient_search, users_by_role

bp = Blueprint("patients", __name__, url_prefix="/patients")
PAGE = 25


class EntryForm(FlaskForm):
    request_id = HiddenField()
    submit = SubmitField("Save")


class EditForm(FlaskForm):
    # The values the form was opened with: only what the user changed is saved, so a change
    # someone else saved meanwhile is kept (or, if it is the same field, shown to decide).
    opened_as = HiddenField()
    submit = SubmitField("Save changes")


@bp.app_template_filter("nhs_number")
def nhs_number_filter(digits: str | None) -> str:
    return format_nhs_number(digits) if digits else ""


@bp.get("/")
def index():
    q = (request.args.get("q") or "").strip()[:100]
    query = (
        select(Patient)
        .where(scope.patients(current_user, utcnow(), Patient.id))
        .order_by(Patient.family_name, Patient.given_name, Patient.id)
    )
    if q:
        query = query.where(patient_search(q, Patient))
    patients = db.session.scalars(query.limit(PAGE)).all()
    return render_template("patients/index.html", patients=patients, q=q)


@bp.route("/new", methods=["GET", "POST"])
def register():
    form = form_class(PATIENT_FIELDS, base=EntryForm)()
    form.submit.label.text = "Register patient"
    existing = None
    if form.validate_on_submit():
        saved, patient, existing = _save(
            form, lambda: register_patient(current_user, **collect(form, PATIENT_FIELDS))
        )
        if saved:
            flash(f"Registered {patient.name} ({patient.mrn}).", "success")
            return redirect(url_for("patients.show", patient_id=patient.id))
    status = 422 if request.method == "POST" else 200
    return render_template("patients/register.html", form=form, existing=existing), status


@bp.get("/<int:patient_id>")
def show(patient_id: int):
    patient = db.get_or_404(Patient, patient_id)
    # Another team's pathway shows as such (its details need emergency access).
    mine = set(scope.team_codes(current_user))
    opened = g.get("emergency_access") is not None
    hidden = {p.id for p in patient.pathways if p.team not in mine and not opened}
    return render_template("patients/show.html", patient=patient, hidden=hidden)


@bp.route("/<int:patient_id>/edit", methods=["GET", "POST"])
def edit(patient_id: int):
    patient = db.get_or_404(Patient, patient_id)
    form = form_class(PATIENT_FIELDS, base=EditForm)()
    existing = None
    conflicts: list[str] = []
    if request.method == "GET":
        fill(form, PATIENT_FIELDS, _values(patient))
        form.opened_as.data = json.dumps(_values(patient), sort_keys=True)
    elif form.validate_on_submit():
        # Every field, blanks too: a blank optional field clears it.
        fields = {f.name: f.from_form(form) for f in PATIENT_FIELDS}
        opened = _opened_as(form.opened_as.data)
        if opened is not None:
            fields = {k: v for k, v in fields.items() if v != opened.get(k)}  # what was changed
            now = _values(patient)
            conflicts = [
                k for k in fields if now.get(k) != opened.get(k) and now.get(k) != fields[k]
            ]
        if conflicts:
            labels = {f.name: f.label for f in PATIENT_FIELDS}
            form.opened_as.data = json.dumps(_values(patient), sort_keys=True)
            for name in conflicts:
                form[name].errors = [
                    *form[name].errors,
                    f"Changed by someone else since you opened this form, to "
                    f"'{_values(patient).get(name) or 'blank'}': keep theirs or type yours again.",
                ]
            return render_template(
                "patients/edit.html",
                form=form,
                patient=patient,
                existing=None,
                stale=[labels[n] for n in conflicts],
            ), 409
        saved, changes, existing = _save(
            form, lambda: update_patient(current_user, patient, fields), patient
        )
        if saved:
            flash(changed_words(changes), "success" if changes else "info")
            return redirect(url_for("patients.show", patient_id=patient.id))
    status = 422 if request.method == "POST" else 200
    return render_template(
        "patients/edit.html", form=form, patient=patient, existing=existing
    ), status


def _opened_as(raw: str | None) -> dict | None:
    """The values the form was opened with, or None when it does not say (an older form,
    a script): then every field is saved as sent."""
    try:
        opened = json.loads(raw or "")
    except ValueError:
        return None
    return opened if isinstance(opened, dict) else None


def _values(patient: Patient) -> dict:
    """The patient's details as the fields' clean values (dates as ISO text)."""
    values = {f.name: getattr(patient, f.name) for f in PATIENT_FIELDS}
    values["birth_date"] = patient.birth_date.isoformat()
    return values


def _save(form, call, editing: Patient | None = None):
    """Run one patient service call: (True, its result, None), or (False, None, the
    patient who already holds the MRN or NHS number, if that was why) with the reasons
    beside the form's fields."""
    try:
        return True, call(), None
    except DuplicatePatient as exc:
        discard()
        return False, None, _refused_duplicate(form, exc)
    except InvalidData as exc:
        discard()
        put_errors(form, exc.errors)
        return False, None, None
    except RoleNotAllowed:
        discard()
        abort(403)
    except IntegrityError:
        # Taken by someone else at the same moment: show theirs.
        discard()
        return False, None, _registered_a_moment_ago(form, editing)


def _refused_duplicate(form, exc: DuplicatePatient, moment_ago: bool = False) -> Patient | None:
    """Say beside the field that another patient holds it, and audit the refusal; that
    patient, for the link, unless they are another team's (then neither name, MRN nor id
    is shown: the user may not see them)."""
    holder = exc.patient
    hidden = scope.hidden_from(current_user, holder.id, utcnow())
    if hidden:
        message = exc.for_another_team
    elif moment_ago:
        message = f"This {exc.label} was registered a moment ago."
    else:
        message = exc.message
    field = form[exc.field]
    field.errors = [*field.errors, message]
    reason = f"{exc.label} already registered" + (" to a patient of another team" if hidden else "")
    record_refusal(reason, patient_id=holder.id)
    keep()  # the entry only: discard() threw away the rest
    return None if hidden else holder


def _registered_a_moment_ago(form, editing: Patient | None = None) -> Patient | None:
    """After the database refused an MRN or NHS number that the check had let through
    (another request took it at the same moment): who has it now."""
    existing = find_by_mrn(form.mrn.data or "")
    if existing is not None and existing is not editing:
        return _refused_duplicate(form, DuplicateMRN(existing), moment_ago=True)
    existing = find_by_nhs_number(form.nhs_number.data or "")
    if existing is not None and existing is not editing:
        return _refused_duplicate(form, DuplicateNHSNumber(existing), moment_ago=True)
    return None


@bp.route("/<int:patient_id>/pathways/new", methods=["GET", "POST"])
def open_pathway(patient_id: int):
    patient = db.get_or_404(Patient, patient_id)
    # A second open pathway for one patient is usually a mistake: the form names the open
    # one and asks for a tick to confirm (the service refuses it otherwise).
    already_open = [p for p in patient.pathways if p.closed_at is None]
    base = EntryForm
    if already_open:
        confirm = BooleanField("Yes, open a second pathway for this patient")
        base = type("ConfirmedEntryForm", (EntryForm,), {"confirm_another_pathway": confirm})
    form = form_class(PATHWAY_FIELDS, users_by_role(), base=base)()
    form.submit.label.text = "Open pathway"
    if request.method == "GET":
        form.referral_received_at.data = to_local_input(datetime.now(UTC))
        form.request_id.data = pathway_services.new_request_id()
        if current_user.role == "coordinator":
            form.coordinator.data = current_user.username
    elif form.validate_on_submit():
        earlier = pathway_services.recorded_with(form.request_id.data)
        if earlier is not None and earlier.pathway.patient_id == patient.id:
            flash("This pathway was already opened.", "info")  # the same form sent twice
            return redirect(url_for("pathway.show", pathway_id=earlier.pathway_id))
        fields = collect(form, PATHWAY_FIELDS)
        fields["referral_received_at"] = from_local_input(form.referral_received_at.data)
        try:
            pathway = pathway_services.open_pathway(
                current_user,
                patient,
                request_id=form.request_id.data or None,
                confirm_another_pathway=bool(already_open and form.confirm_another_pathway.data),
                **fields,
            )
        except InvalidData as exc:
            discard()
            put_errors(form, exc.errors)
        except RequestIdReused as exc:
            discard()
            abort(422, exc.message)
        except RoleNotAllowed:
            discard()
            abort(403)
        except (StaleVersion, IntegrityError):
            # The same form sent twice at once: the first one opened the pathway.
            discard()
            earlier = pathway_services.recorded_with(form.request_id.data)
            if earlier is not None:
                return redirect(url_for("pathway.show", pathway_id=earlier.pathway_id))
            raise
        else:
            flash("Pathway opened: the referral clock has started.", "success")
            return redirect(url_for("pathway.show", pathway_id=pathway.id))
    status = 422 if request.method == "POST" else 200
    return render_template(
        "patients/open_pathway.html", form=form, patient=patient, already_open=already_open
    ), status
