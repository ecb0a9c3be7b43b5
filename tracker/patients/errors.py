"""What registering or changing a patient refuses."""

from __future__ import annotations

from typing import ClassVar

from tracker.engine.errors import PathwayError
from tracker.patients.fields import format_nhs_number


class DuplicatePatient(PathwayError):
    """An identifier already registered to another patient (``patient``), refused in
    ``field``."""

    field: ClassVar[str] = ""
    code: ClassVar[str] = ""  # the API's error code

    def __init__(self, patient, message: str):
        self.patient = patient
        super().__init__(message)


class DuplicateMRN(DuplicatePatient):
    field = "mrn"
    code = "duplicate_mrn"

    def __init__(self, patient):
        super().__init__(
            patient,
            f"A patient with MRN {patient.mrn} is already registered "
            f"({patient.family_name}, {patient.given_name}).",
        )


class DuplicateNHSNumber(DuplicatePatient):
    field = "nhs_number"
    code = "duplicate_nhs_number"

    def __init__(self, patient):
        super().__init__(
            patient,
            f"A patient with NHS number {format_nhs_number(patient.nhs_number)} is already "
            f"registered ({patient.family_name}, {patient.given_name}, MRN {patient.mrn}).",
        )
