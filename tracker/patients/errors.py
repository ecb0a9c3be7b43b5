"""What registering a patient refuses."""

from __future__ import annotations

from tracker.engine.errors import PathwayError


class DuplicateMRN(PathwayError):
    def __init__(self, patient):
        self.patient = patient
        super().__init__(
            f"A patient with MRN {patient.mrn} is already registered "
            f"({patient.family_name}, {patient.given_name})."
        )
