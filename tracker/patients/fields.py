"""The patient's fields of PATHWAY.md's data dictionary, in the engine's field kinds."""

from __future__ import annotations

from tracker.engine.dictionary import codes
from tracker.engine.fields import Choice, Date, Text

SEX = codes("female=Female", "male=Male", "other=Other", "unknown=Unknown")

PATIENT_FIELDS = (
    Text("mrn", "MRN (hospital number)", required=True, max_length=32),
    Text("family_name", "Family name", required=True, max_length=100),
    Text("given_name", "Given name", required=True, max_length=100),
    Date("birth_date", "Date of birth", required=True),
    Choice("sex", "Sex", required=True, choices=SEX),
)
