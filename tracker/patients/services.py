"""Registering patients. Services flush, never commit: the caller owns the transaction."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select

from tracker.engine.dictionary import DataError, clean_fields
from tracker.engine.errors import InvalidData
from tracker.engine.services import check_may_register
from tracker.extensions import db
from tracker.patients.errors import DuplicateMRN
from tracker.patients.fields import PATIENT_FIELDS
from tracker.patients.models import Patient


def find_by_mrn(mrn: str) -> Patient | None:
    # Hospital numbers are compared without regard to letter case, as the searches do.
    return db.session.scalar(
        select(Patient).where(func.lower(Patient.mrn) == mrn.strip().lower()).limit(1)
    )


def register_patient(actor, *, flush: bool = True, **fields) -> Patient:
    """Register a patient; DuplicateMRN (with the existing patient) if the MRN is taken.
    ``flush=False`` leaves the INSERT to the caller's next flush (the CSV import)."""

    check_may_register(actor, "register patients")
    try:
        clean = clean_fields(PATIENT_FIELDS, fields)
    except DataError as exc:
        raise InvalidData(exc.errors) from None
    # A patient already registered matters more than a typo in the form: say so first.
    existing = find_by_mrn(clean["mrn"])
    if existing is not None:
        raise DuplicateMRN(existing)
    birth_date = date.fromisoformat(clean["birth_date"])
    if birth_date > date.today():
        raise InvalidData({"birth_date": ["Date of birth cannot be in the future"]})
    if birth_date.year < 1900:
        raise InvalidData({"birth_date": ["Date of birth must be in 1900 or later"]})
    patient = Patient(
        mrn=clean["mrn"],
        family_name=clean["family_name"],
        given_name=clean["given_name"],
        birth_date=birth_date,
        sex=clean["sex"],
        created_by_id=actor.id,
    )
    db.session.add(patient)
    if flush:
        db.session.flush()
    return patient
