"""The data dictionary of PATHWAY.md: fields per trigger, codes, and validation.

Forms, the API's schemas and the services are all built from these fields, so
a rule is written once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from tracker.core.clock import local_date
from tracker.core.text import has_control_characters
from tracker.pathway import definition as d
from tracker.pathway.scores import SCORES, SINS, TOKUHASHI, Score


def _codes(*pairs: str) -> tuple[tuple[str, str], ...]:
    """Codes with their readable labels: 'code=Label' or a bare code (label derived)."""
    out = []
    for pair in pairs:
        code, _, label = pair.partition("=")
        out.append((code, label or code.replace("_", " ").capitalize()))
    return tuple(out)


SEX = _codes("female=Female", "male=Male", "other=Other", "unknown=Unknown")
REFERRAL_SOURCE = _codes(
    "gp=GP",
    "emergency_department=Emergency department",
    "oncology=Oncology",
    "other_hospital=Other hospital",
    "other=Other",
)
URGENCY = _codes(
    "emergency=Emergency (suspected cord compression with neurological signs)",
    "urgent=Urgent (suspected spinal metastases, pain only)",
    "routine=Routine",
)
URGENCY_SHORT = {"emergency": "Emergency", "urgent": "Urgent", "routine": "Routine"}
DIAGNOSIS_CATEGORY = _codes(
    "metastatic_spinal=Metastatic spinal tumour",
    "primary_spinal=Primary spinal tumour",
    "intradural_intramedullary=Intradural / intramedullary tumour",
    "primary_bone=Primary bone tumour",
)
PRIMARY_CANCER_SITE = _codes(
    "breast",
    "lung",
    "prostate",
    "kidney",
    "thyroid",
    "myeloma",
    "other",
    "unknown",
    "not_applicable=Not applicable",
)
PRESENTING_SYMPTOMS = _codes(
    "back_pain",
    "radicular_pain",
    "numbness",
    "weakness",
    "bladder_bowel_dysfunction=Bladder or bowel dysfunction",
    "weight_loss",
    "fracture",
    "deformity",
    "other",
)
IMAGING_MODALITY = _codes("mri=MRI", "ct=CT", "xray=X-ray", "bone_scan=Bone scan", "pet_ct=PET-CT")
BILSKY = _codes(
    "0=0 - bone only",
    "1a=1a - epidural, no thecal sac deformation",
    "1b=1b - thecal sac deformed, cord not abutted",
    "1c=1c - cord abutted, not compressed",
    "2=2 - cord compressed, CSF visible",
    "3=3 - cord compressed, no CSF",
)
BIOPSY_METHOD = _codes("ct_guided_core=CT-guided core", "open=Open", "excisional=Excisional")
BIOPSY_RESULT = _codes("benign", "malignant", "non_diagnostic=Non-diagnostic")
DISCIPLINES = _codes(
    "spinal_surgery",
    "orthopaedic_oncology",
    "medical_oncology",
    "clinical_oncology",
    "radiology",
    "pathology",
    "anaesthesia",
    "physiotherapy",
    "palliative_care",
    "nursing",
)
ECOG = tuple((str(n), f"{n}") for n in range(5))
ASIA = _codes(
    "A=A - complete",
    "B=B - sensory incomplete",
    "C=C - motor incomplete, most below 3",
    "D=D - motor incomplete, most 3 or more",
    "E=E - normal",
)
ENNEKING = tuple((code, code) for code in ("1", "2", "3", "IA", "IB", "IIA", "IIB", "III"))
PROCEDURES = _codes(
    "decompression",
    "stabilisation_fusion=Stabilisation and fusion",
    "en_bloc_resection=En bloc resection",
    "gross_total_resection=Gross total resection",
    "subtotal_resection",
    "laminectomy",
    "vertebroplasty",
    "kyphoplasty",
    "graft_reconstruction=Graft reconstruction",
    "prosthetic_reconstruction=Prosthetic reconstruction",
)
APPROACH = _codes("open", "minimally_invasive=Minimally invasive", "percutaneous")
NEUROMONITORING = _codes("ssep=SSEP", "mep=MEP")
INTRAOP_IMAGING = _codes("ultrasound", "mri=MRI", "ct=CT", "fluoroscopy")
COMPLICATION = _codes(
    "csf_leak=CSF leak",
    "wound_infection",
    "neurological_deficit",
    "hardware_failure",
    "vte=Venous thromboembolism",
    "other",
)
CLAVIEN_DINDO = tuple((code, code) for code in ("I", "II", "IIIa", "IIIb", "IVa", "IVb", "V"))
MOBILITY = _codes("independent", "walking_aid=Walking aid", "wheelchair", "bed_bound=Bed-bound")
TREATMENT_MODALITY = _codes(
    "conventional_rt=Conventional radiotherapy",
    "sbrt=SBRT",
    "chemotherapy",
    "targeted=Targeted therapy",
    "immunotherapy",
    "hormonal=Hormonal therapy",
)
FOLLOW_UP_STATUS = _codes(
    "ned=No evidence of disease",
    "stable=Stable disease",
    "progression",
    "recurrence",
)
MDT_REFERRAL_REASON = _codes(
    "unfit_for_surgery=Unfit for surgery",
    "final_histology=Final histology",
    "restaging=Restaging after neoadjuvant therapy",
    "other",
)
WITHDRAW_REASON = _codes(
    "declined=Declined treatment",
    "transferred=Transferred out",
    "lost_to_follow_up=Lost to follow-up",
)


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    kind: str  # text, longtext, choice, multi, date, int, number, bool, score, user
    required: bool = False
    choices: tuple[tuple[str, str], ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    step: int | None = None
    min_items: int = 0
    max_length: int = 200
    help: str = ""
    score: Score | None = None
    role: str | None = None  # for kind "user": the role the named user must have

    def label_for(self, code: Any) -> str:
        for value, label in self.choices:
            if value == code:
                return label
        return str(code)


NOTE = Field("note", "Note", "longtext", max_length=4000)
LONG = 4000

PATIENT_FIELDS = (
    Field("mrn", "MRN (hospital number)", "text", required=True, max_length=32),
    Field("family_name", "Family name", "text", required=True, max_length=100),
    Field("given_name", "Given name", "text", required=True, max_length=100),
    Field("birth_date", "Date of birth", "date", required=True),
    Field("sex", "Sex", "choice", required=True, choices=SEX),
)

PATHWAY_FIELDS = (
    Field(
        "referral_received_at",
        "Referral received",
        "datetime",
        required=True,
        help="Starts the waiting-time clock.",
    ),
    Field("referral_source", "Referral source", "choice", required=True, choices=REFERRAL_SOURCE),
    Field("urgency", "Urgency", "choice", required=True, choices=URGENCY),
    Field(
        "diagnosis_category",
        "Diagnosis category",
        "choice",
        required=True,
        choices=DIAGNOSIS_CATEGORY,
    ),
    Field(
        "tumour_site",
        "Tumour site",
        "text",
        required=True,
        max_length=100,
        help="Spinal levels such as T7-T9, or a bone.",
    ),
    Field(
        "primary_cancer_site",
        "Primary cancer site",
        "choice",
        required=True,
        choices=PRIMARY_CANCER_SITE,
    ),
    Field("presenting_symptoms", "Presenting symptoms", "multi", choices=PRESENTING_SYMPTOMS),
    Field("lead_surgeon", "Lead surgeon", "user", role="surgeon"),
    Field("coordinator", "Coordinator", "user", role="coordinator"),
)

_BILSKY = Field("bilsky_grade", "Bilsky ESCC grade", "choice", choices=BILSKY)
_ECOG = Field("ecog", "ECOG performance status", "int", minimum=0, maximum=4)
_KARNOFSKY = Field("karnofsky", "Karnofsky score", "int", minimum=0, maximum=100, step=10)
_ASIA = Field("asia_grade", "ASIA impairment grade", "choice", choices=ASIA)
_PAIN = Field("pain_nrs", "Pain (NRS 0-10)", "int", minimum=0, maximum=10)

MDT_OUTCOME_FIELDS = (
    Field("meeting_date", "MDT meeting date", "date", required=True),
    Field(
        "disciplines",
        "Disciplines present",
        "multi",
        required=True,
        choices=DISCIPLINES,
        min_items=2,
        help="At least two.",
    ),
    Field("sins", "SINS", "score", score=SINS),
    _BILSKY,
    _ECOG,
    _KARNOFSKY,
    _ASIA,
    Field("tokuhashi", "Revised Tokuhashi", "score", score=TOKUHASHI),
    Field("enneking_stage", "Enneking stage", "choice", choices=ENNEKING),
    Field("rationale", "Rationale", "longtext", required=True, max_length=LONG),
)

RECORD_FIELDS: dict[str, tuple[Field, ...]] = {
    "record_imaging": (
        Field("modality", "Modality", "choice", required=True, choices=IMAGING_MODALITY),
        Field("region", "Region", "text", required=True, max_length=100),
        Field("levels", "Levels", "text", max_length=100),
        Field("findings", "Findings", "longtext", required=True, max_length=LONG),
        _BILSKY,
    ),
    "record_biopsy": (
        Field("method", "Method", "choice", required=True, choices=BIOPSY_METHOD),
        Field("histology", "Histology", "longtext", required=True, max_length=LONG),
        Field("result", "Result", "choice", required=True, choices=BIOPSY_RESULT),
    ),
    "schedule_mdt": (Field("meeting_date", "MDT meeting date", "date", required=True),),
    "record_preop_assessment": (
        Field("asa_grade", "ASA grade", "int", required=True, minimum=1, maximum=5),
        Field("consent_taken", "Consent taken", "bool", required=True),
        Field("planned_date", "Planned operation date", "date"),
    ),
    "record_surgery": (
        Field("lead_surgeon", "Lead surgeon", "user", required=True, role="surgeon"),
        Field("procedures", "Procedures", "multi", required=True, choices=PROCEDURES, min_items=1),
        Field("approach", "Approach", "choice", required=True, choices=APPROACH),
        Field("levels", "Levels", "text", required=True, max_length=100),
        Field("neuromonitoring", "Neuromonitoring", "multi", choices=NEUROMONITORING),
        Field("intraop_imaging", "Intra-operative imaging", "multi", choices=INTRAOP_IMAGING),
        Field("duration_min", "Duration (minutes)", "int", minimum=1, maximum=2880),
        Field("blood_loss_ml", "Blood loss (ml)", "int", minimum=0, maximum=50000),
    ),
    "record_complication": (
        Field("complication", "Complication", "choice", required=True, choices=COMPLICATION),
        Field(
            "clavien_dindo", "Clavien-Dindo grade", "choice", required=True, choices=CLAVIEN_DINDO
        ),
    ),
    "record_therapy_session": (
        Field("mobility", "Mobility", "choice", required=True, choices=MOBILITY),
        _PAIN,
    ),
    "record_treatment": (
        Field("modality", "Modality", "choice", required=True, choices=TREATMENT_MODALITY),
        Field("dose_gy", "Dose (Gy)", "number", minimum=0, maximum=200),
        Field("fractions", "Fractions", "int", minimum=1, maximum=100),
        Field("start_date", "Start date", "date", required=True),
        Field("end_date", "End date", "date"),
    ),
    "record_follow_up": (
        Field("imaging_done", "Imaging done", "bool", required=True),
        Field("status", "Disease status", "choice", required=True, choices=FOLLOW_UP_STATUS),
        Field("next_due", "Next visit due", "date"),
    ),
    "record_assessment": (_ASIA, _PAIN, _ECOG, _KARNOFSKY),
    "withdraw": (Field("reason", "Reason", "choice", required=True, choices=WITHDRAW_REASON),),
    "add_note": (Field("note", "Note", "longtext", required=True, max_length=LONG),),
}
MDT_REASON_FIELDS = (
    Field("reason", "Reason", "choice", required=True, choices=MDT_REFERRAL_REASON),
)
AMEND_FIELDS = (
    Field("event_seq", "Event corrected", "int", required=True, minimum=1),
    Field("reason", "Reason for the correction", "longtext", required=True, max_length=LONG),
)
VOID_FIELDS = (Field("reason", "Reason for voiding", "longtext", required=True, max_length=LONG),)
COMPUTED_KEYS = ("sins_total", "sins_band", "tokuhashi_total", "tokuhashi_band")


def fields_for(trigger: str, source: str | None) -> tuple[Field, ...]:
    """The data fields of ``trigger`` fired from ``source``, without the common note."""
    if source is not None and d.is_mdt_outcome(trigger, source):
        return MDT_OUTCOME_FIELDS
    if trigger == "refer_to_mdt" and source in (
        "surgery_scheduled",
        "post_op",
        "oncology_treatment",
    ):
        return MDT_REASON_FIELDS
    if trigger == d.AMEND_TRIGGER:
        return AMEND_FIELDS
    if trigger == d.VOID_TRIGGER:
        return VOID_FIELDS
    if trigger == d.OPEN_TRIGGER:
        return PATHWAY_FIELDS
    return RECORD_FIELDS.get(trigger, ())


def all_fields_for(trigger: str, source: str | None) -> tuple[Field, ...]:
    fields = fields_for(trigger, source)
    if any(f.name == "note" for f in fields):
        return fields
    return (*fields, NOTE)


class DataError(Exception):
    """Invalid data: ``errors`` maps each field to its messages."""

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        parts = [f"{name}: {'; '.join(msgs)}" for name, msgs in errors.items()]
        super().__init__("invalid data - " + " | ".join(parts))


# The years a pathway's dates can be in. No patient was born before 1900 (see
# register_patient); a year far ahead is a typing mistake, and at the ends of the calendar
# (year 1, year 9999) a date cannot even be moved to UTC or local time, or a target added to
# it, without an OverflowError.
EARLIEST_YEAR, LATEST_YEAR = 1900, 2999


def _check_year(value: date) -> None:
    if value.year < EARLIEST_YEAR:
        raise ValueError(f"must be in {EARLIEST_YEAR} or later")
    if value.year > LATEST_YEAR:
        raise ValueError(f"must be in {LATEST_YEAR} or earlier")


def parse_date(value: Any) -> date:
    if isinstance(value, datetime):
        raise ValueError("give a date without a time, as YYYY-MM-DD")
    if isinstance(value, date):
        _check_year(value)
        return value
    if isinstance(value, str):
        try:
            parsed = date.fromisoformat(value.strip())
        except ValueError:
            pass
        else:
            _check_year(parsed)
            return parsed
    raise ValueError("is not a date; write it as YYYY-MM-DD, for example 2026-03-14")


def parse_datetime(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(
                "is not a date and time; write it as ISO 8601 with a UTC offset, "
                "for example 2026-03-14T09:30:00+00:00"
            ) from None
    if not isinstance(value, datetime):
        raise ValueError("is not a date and time")
    if value.tzinfo is None:
        raise ValueError("needs a UTC offset, for example 2026-03-14T09:30:00+00:00")
    _check_year(value)  # the year as written: in UTC, year 1 or 9999 may not exist
    return value


def _check_value(f: Field, value: Any) -> Any:
    """Return the clean, JSON-ready value, or raise ValueError with words for a person."""
    if f.kind in ("text", "longtext", "user"):
        if not isinstance(value, str):
            raise ValueError("must be text")
        value = value.strip()
        if not value:
            raise ValueError("must not be blank")
        if len(value) > f.max_length:
            raise ValueError(f"is too long: at most {f.max_length} characters")
        if has_control_characters(value):
            raise ValueError("contains control characters; remove them")
        return value
    if f.kind == "choice":
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        codes = [code for code, _ in f.choices]
        if value not in codes:
            raise ValueError(f"must be one of: {', '.join(codes)}")
        return value
    if f.kind == "multi":
        if isinstance(value, str) or not isinstance(value, Iterable):
            raise ValueError("must be a list of choices")
        values = list(value)
        codes = [code for code, _ in f.choices]
        unknown = [v for v in values if v not in codes]
        if unknown:
            raise ValueError(
                f"has unknown choices ({', '.join(map(str, unknown))}); "
                f"choose from: {', '.join(codes)}"
            )
        if len(set(values)) < f.min_items:
            raise ValueError(f"choose at least {f.min_items}")
        return [code for code in codes if code in values]  # canonical order, no repeats
    if f.kind == "date":
        return parse_date(value).isoformat()
    if f.kind == "datetime":
        return parse_datetime(value)
    if f.kind in ("int", "number"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("must be a number")
        if f.kind == "int" and (isinstance(value, float) and not value.is_integer()):
            raise ValueError("must be a whole number")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("must be a finite number")
        if f.minimum is not None and value < f.minimum:
            raise ValueError(f"must be at least {f.minimum:g}")
        if f.maximum is not None and value > f.maximum:
            raise ValueError(f"must be at most {f.maximum:g}")
        if f.step and value % f.step:
            raise ValueError(f"must be a multiple of {f.step}")
        return int(value) if f.kind == "int" else float(value)
    if f.kind == "bool":
        if not isinstance(value, bool):
            raise ValueError("must be yes or no (true or false)")
        return value
    if f.kind == "score":
        return _check_score(f.score, value)
    raise AssertionError(f"unknown field kind {f.kind}")


def _check_score(score: Score, value: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        raise ValueError(f"must give the {score.label} components: {', '.join(score.components)}")
    unknown = sorted(set(value) - set(score.components))
    if unknown:
        raise ValueError(f"has unknown components: {', '.join(unknown)}")
    missing = [c for c in score.components if value.get(c) is None]
    if missing:
        raise ValueError(f"is missing components: {', '.join(missing)} (give all or none)")
    clean = {}
    for component in score.components:
        points = value[component]
        allowed = score.allowed_points(component)
        if isinstance(points, bool) or not isinstance(points, int) or points not in allowed:
            raise ValueError(
                f"{component} must be one of the points {', '.join(map(str, sorted(allowed)))}"
            )
        clean[component] = points
    return clean


def _blank(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, list | tuple) and not value)


def clean_fields(fields: Iterable[Field], data: dict[str, Any]) -> dict[str, Any]:
    """Validate ``data`` against ``fields``: the clean dict, or DataError."""
    if not isinstance(data, dict):
        raise DataError({"data": ["must be an object of fields"]})
    fields = tuple(fields)
    known = {f.name: f for f in fields}
    errors: dict[str, list[str]] = {}
    for name in data:
        if name in COMPUTED_KEYS:
            errors.setdefault(name, []).append(
                "is computed from the score's components; send the components only"
            )
        elif name not in known:
            errors.setdefault(name, []).append("is not a field of this step")
    clean: dict[str, Any] = {}
    for f in fields:
        value = data.get(f.name)
        if _blank(value):
            if f.required:
                errors.setdefault(f.name, []).append(f"{f.label} is required")
            continue
        try:
            clean[f.name] = _check_value(f, value)
        except ValueError as exc:
            errors.setdefault(f.name, []).append(f"{f.label} {exc}")
    if errors:
        raise DataError(errors)
    return clean


def with_scores(clean: dict[str, Any]) -> dict[str, Any]:
    for name, score in SCORES.items():
        if name in clean:
            total = score.total(clean[name])
            clean[f"{name}_total"] = total
            clean[f"{name}_band"] = score.band(total)[0]
    return clean


def validate_event_data(
    trigger: str, source: str | None, data: dict[str, Any], occurred_at: datetime | None = None
) -> dict[str, Any]:
    """The clean data of an event, with computed scores; DataError if invalid."""
    clean = clean_fields(all_fields_for(trigger, source), data or {})
    errors: dict[str, list[str]] = {}
    day = local_date(occurred_at) if occurred_at else None
    if trigger == "record_assessment" and not clean.keys() - {"note"}:
        errors["asia_grade"] = ["Give at least one of ASIA grade, pain score, ECOG or Karnofsky"]
    is_mdt = source is not None and d.is_mdt_outcome(trigger, source)
    if is_mdt and day and date.fromisoformat(clean["meeting_date"]) > day:
        errors["meeting_date"] = ["The MDT meeting date cannot be after the outcome is recorded"]
    end_date = clean.get("end_date") if trigger == "record_treatment" else None
    if end_date and end_date < clean["start_date"]:  # ISO dates sort as dates
        errors["end_date"] = ["End date cannot be before the start date"]
    if trigger == "record_treatment" and day and date.fromisoformat(clean["start_date"]) > day:
        errors["start_date"] = ["Start date cannot be after the day this is recorded"]
    next_due = clean.get("next_due") if trigger == "record_follow_up" else None
    if next_due and day and date.fromisoformat(next_due) <= day:
        errors["next_due"] = ["The next visit must be due after this visit"]
    if errors:
        raise DataError(errors)
    return with_scores(clean)


def readable(
    fields: Iterable[Field], data: dict[str, Any], names: dict[str, str] | None = None
) -> list[tuple[str, str]]:
    """(label, words) pairs for showing an event's data to a person."""
    out = []
    by_name = {f.name: f for f in fields}
    for name, value in data.items():
        f = by_name.get(name)
        if f is None:
            continue
        out.append((f.label, describe(f, value, data, names)))
    return out


def describe(
    f: Field, value: Any, data: dict[str, Any] | None = None, names: dict[str, str] | None = None
) -> str:
    if f.kind == "user":
        return (names or {}).get(value, value)
    if f.kind == "choice":
        return f.label_for(value)
    if f.kind == "multi":
        return ", ".join(f.label_for(v) for v in value)
    if f.kind == "bool":
        return "Yes" if value else "No"
    if f.kind == "date" and isinstance(value, str):
        return date.fromisoformat(value).strftime("%d %b %Y")
    if f.kind == "score" and isinstance(value, dict):
        data = data or {}
        total = data.get(f"{f.name}_total", f.score.total(value))
        return f"{total} - {f.score.band(total)[1]}"
    return str(value)
