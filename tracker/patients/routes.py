from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from wtforms import HiddenField, SubmitField

from tracker.engine import services as pathway_services
from tracker.engine.dictionary import PATHWAY_FIELDS
from tracker.engine.errors import InvalidData, RequestIdReused, RoleNotAllowed, StaleVersion
from tracker.extensions import db
from tracker.patients.errors import DuplicateMRN
from tracker.patients.fields import PATIENT_FIELDS
from tracker.patients.models import Patient
from tracker.patients.services import find_by_mrn, register_patient
from tracker.web.boundary import discard
from tracker.web.forms import collect, form_class, from_local_input, put_errors, to_local_input
from tracker.web.helpers import name_or_mrn, users_by_role

bp = Blueprint("patients", __name__, url_prefix="/patients")
PAGE = 25


class EntryForm(FlaskForm):
    request_id = HiddenField()
    submit = SubmitField("Save")


@bp.get("/")
def index():
    q = (request.args.get("q") or "").strip()[:100]
    query = select(Patient).order_by(Patient.family_name, Patient.given_name, Patient.id)
    if q:
        query = query.where(name_or_mrn(q, Patient))
    patients = db.session.scalars(query.limit(PAGE)).all()
    return render_template("patients/index.html", patients=patients, q=q)


@bp.route("/new", methods=["GET", "POST"])
def register():
    form = form_class(PATIENT_FIELDS, base=EntryForm)()
    form.submit.label.text = "Register patient"
    existing = None
    if form.validate_on_submit():
        try:
            patient = register_patient(current_user, **collect(form, PATIENT_FIELDS))
        except DuplicateMRN as exc:
            discard()
            existing = exc.patient
            form.mrn.errors = [*form.mrn.errors, exc.message]
        except InvalidData as exc:
            discard()
            put_errors(form, exc.errors)
        except RoleNotAllowed:
            discard()
            abort(403)
        except IntegrityError:
            # Registered by someone else at the same moment: show theirs.
            discard()
            existing = find_by_mrn(form.mrn.data or "")
            form.mrn.errors = [*form.mrn.errors, "This MRN was registered a moment ago."]
        else:
            flash(f"Registered {patient.name} ({patient.mrn}).", "success")
            return redirect(url_for("patients.show", patient_id=patient.id))
    status = 422 if request.method == "POST" else 200
    return render_template("patients/register.html", form=form, existing=existing), status


@bp.get("/<int:patient_id>")
def show(patient_id: int):
    patient = db.get_or_404(Patient, patient_id)
    return render_template("patients/show.html", patient=patient)


@bp.route("/<int:patient_id>/pathways/new", methods=["GET", "POST"])
def open_pathway(patient_id: int):
    patient = db.get_or_404(Patient, patient_id)
    form = form_class(PATHWAY_FIELDS, users_by_role(), base=EntryForm)()
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
                current_user, patient, request_id=form.request_id.data or None, **fields
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
    return render_template("patients/open_pathway.html", form=form, patient=patient), status
