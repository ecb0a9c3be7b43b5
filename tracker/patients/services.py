"""Registering patients and correcting their details. Services flush, never commit: the
caller owns the transaction.

A correction is audited by the session hook (tracker.audit.services), with the old and
new value of each changed field, in the same flush as the change.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select

from tracker.core.text import identifier_key
from tracker.engine.dictionary import DataError, Field, blank, clean_fields
from tracker.engine.errors import InvalidData
from tracker.engine.services import check_may_register
from tracker.extensions import db
from tracker.patients.errors import DuplicateMRN, DuplicateNHSNumber
from tracker.patients.fields import FIELD_BY_NAME, PATIENT_FIELDS, nhs_number_digits
from tracker.patients.models import Patient

NOT_A_FIELD = "is not a field of a patient"
NOTHING_CHANGED = "Nothing changed."


def find_by_mrn(mrn: str) -> Patient | None:
    """The patient with this MRN as every lookup compares it (``identifier_key``: letter
    case, outer spaces and Unicode's compatible forms aside)."""
    return db.session.scalar(select(Patient).where(Patient.mrn_key == identifier_key(mrn)))


def find_by_nhs_number(nhs_number: str) -> Patient | None:
    """The patient with this NHS number, typed with or without spaces."""
    digits = nhs_number_digits(nhs_number.strip())
    if digits is None:
        return None
    return db.session.scalar(select(Patient).where(Patient.nhs_number == digits).limit(1))


def wrong_mrn_keys(session, batch: int = 5000) -> list[int]:
    """Ids of the patients whose ``mrn_key`` is not ``identifier_key(mrn)``: every MRN
    lookup goes through the key, so a key changed in the database would send a search, a
    registration's duplicate check or an import to another patient (the seal does not
    cover the key: it follows the MRN, which is sealed)."""
    wrong, last = [], 0
    while True:
        rows = session.execute(
            select(Patient.id, Patient.mrn, Patient.mrn_key)
            .where(Patient.id > last)
            .order_by(Patient.id)
            .limit(batch)
        ).all()
        if not rows:
            return wrong
        wrong.extend(row.id for row in rows if row.mrn_key != identifier_key(row.mrn))
        last = rows[-1].id


def register_patient(actor, *, flush: bool = True, **fields) -> Patient:
    """Register a patient; DuplicateMRN or DuplicateNHSNumber (with the existing patient)
    if either is taken. ``flush=False`` leaves the INSERT to the caller's next flush (the
    CSV import)."""
    check_may_register(actor, "register patients")
    values = _stored(_cleaned(PATIENT_FIELDS, fields))
    # A patient already registered matters more than a typo in the form: say so first.
    _refuse_duplicates(values, exclude=None)
    _check_rules(values)
    patient = Patient(**values, created_by_id=actor.id)
    db.session.add(patient)
    if flush:
        db.session.flush()
    return patient


def update_patient(actor, patient: Patient, fields: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Correct any of the patient's details: ``fields`` holds those to set (a blank
    optional one is cleared). Every invalid field is reported at once (InvalidData); an
    MRN or NHS number of another patient is refused (DuplicateMRN, DuplicateNHSNumber).

    Returns ``{field: (old, new)}`` of what changed: empty when nothing did, and then
    nothing is written."""
    check_may_register(actor, "change patients' details")
    given = tuple(f for f in PATIENT_FIELDS if f.name in fields)
    values = _stored(_cleaned(given, fields))
    # Read before anything is set: the audit entry takes the old values from here.
    changes = {
        name: (getattr(patient, name), value)
        for name, value in values.items()
        if getattr(patient, name) != value
    }
    if not changes:
        return {}
    _refuse_duplicates({name: new for name, (_, new) in changes.items()}, exclude=patient)
    _check_rules(values)
    for name, (_, new) in changes.items():
        setattr(patient, name, new)
    db.session.flush()
    return changes


def changed_words(changes: dict[str, tuple[Any, Any]]) -> str:
    """'Changed: NHS number, GP practice.' or 'Nothing changed.'"""
    if not changes:
        return NOTHING_CHANGED
    return "Changed: " + ", ".join(FIELD_BY_NAME[name].label for name in changes) + "."


# -- the checks ------------------------------------------------------------------------------


def _cleaned(fields: tuple[Field, ...], data: dict[str, Any]) -> dict[str, Any]:
    """``data`` for ``fields`` as their kinds clean it (None for a blank optional field);
    InvalidData naming every field that is wrong, unknown ones and the patient's own
    rules included."""
    errors = {name: [NOT_A_FIELD] for name in data if name not in FIELD_BY_NAME}
    known = {name: value for name, value in data.items() if name in FIELD_BY_NAME}
    clean: dict[str, Any] = {}
    try:
        clean = clean_fields(fields, known)
    except DataError as exc:
        errors.update(exc.errors)
    if errors:
        # The rules of the fields whose kind is satisfied, so that all is said at once.
        if "birth_date" in known and "birth_date" not in errors and not blank(known["birth_date"]):
            birth_date = FIELD_BY_NAME["birth_date"].check(known["birth_date"])
            errors.update(_rule_errors({"birth_date": date.fromisoformat(birth_date)}))
        raise InvalidData(errors)
    return {f.name: clean.get(f.name) for f in fields}


def _stored(values: dict[str, Any]) -> dict[str, Any]:
    """Clean values as the model's columns hold them."""
    if values.get("birth_date") is not None:
        values = {**values, "birth_date": date.fromisoformat(values["birth_date"])}
    return values


def _rule_errors(values: dict[str, Any]) -> dict[str, list[str]]:
    birth_date = values.get("birth_date")
    if birth_date is not None and birth_date > date.today():
        return {"birth_date": ["Date of birth cannot be in the future"]}
    return {}


def _check_rules(values: dict[str, Any]) -> None:
    errors = _rule_errors(values)
    if errors:
        raise InvalidData(errors)


def _refuse_duplicates(values: dict[str, Any], exclude: Patient | None) -> None:
    """The MRN (in any letter case) or NHS number in ``values`` held by another patient."""
    if values.get("mrn"):
        other = find_by_mrn(values["mrn"])
        if other is not None and other is not exclude:
            raise DuplicateMRN(other)
    if values.get("nhs_number"):
        other = find_by_nhs_number(values["nhs_number"]) or _pending(values["nhs_number"])
        if other is not None and other is not exclude:
            raise DuplicateNHSNumber(other)


def _pending(nhs_number: str) -> Patient | None:
    """A patient added but not yet flushed with this NHS number: the CSV import registers a
    batch of patients before it flushes (an MRN it matches itself, by the file's MRNs)."""
    return next(
        (p for p in db.session.new if isinstance(p, Patient) and p.nhs_number == nhs_number),
        None,
    )
