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
    label: ClassVar[str] = ""  # what the field holds, in a sentence

    def __init__(self, patient, message: str):
        self.patient = patient
        super().__init__(message)

    @property
    def for_another_team(self) -> str:
        """The refusal as told to a user who may not see the patient who holds it (another
        team's, without emergency access): no name, MRN or id."""
        return (
            f"This {self.label} is already registered to a patient of another team: nothing "
            "was saved. Ask that team about the patient; they can send you a link to the "
            "record, which you can open with emergency access (audited) if you need it now."
        )


class DuplicateMRN(DuplicatePatient):
    field = "mrn"
    code = "duplicate_mrn"
    label = "MRN"

    def __init__(self, patient):
        super().__init__(
            patient,
            f"A patient with MRN {patient.mrn} is already registered "
            f"({patient.family_name}, {patient.given_name}).",
        )


class DuplicateNHSNumber(DuplicatePatient):
    field = "nhs_number"
    code = "duplicate_nhs_number"
    label = "NHS number"

    def __init__(self, patient):
        super().__init__(
            patient,
            f"A patient with NHS number {format_nhs_number(patient.nhs_number)} is already "
            f"registered ({patient.family_name}, {patient.given_name}, MRN {patient.mrn}).",
        )
