"""The data dictionary of PATHWAY.md: fields per trigger, codes, and validation.

Forms, the API's schemas and the services are all built from these fields, so
a rule is written once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tracker.engine.fields import (  # noqa: F401 - the kinds are read from here too
    Choice,
    Date,
    DateTime,
    Field,
    Integer,
    LesionLabel,
    LesionRef,
    LesionRefs,
    LongText,
    MultiChoice,
    Number,
    ScoreField,
    SpinalLevels,
    TaskRef,
    Team,
    Text,
    UserRef,
    YesNo,
    blank,
    parse_date,
    parse_datetime,
)
from tracker.engine.lesions import BONES
from tracker.engine.scores import MIRELS, SCORES, SINS, TOKUHASHI


def codes(*pairs: str) -> tuple[tuple[str, str], ...]:
    """Codes with their readable labels: 'code=Label' or a bare code (label derived)."""
    out = []
    for pair in pairs:
        code, _, label = pair.partition("=")
        out.append((code, label or code.replace("_", " ").capitalize()))
    return tuple(out)


REFERRAL_SOURCE = codes(
    "gp=GP",
    "emergency_department=Emergency department",
    "oncology=Oncology",
    "other_hospital=Other hospital",
    "other=Other",
)
URGENCY = codes(
    "emergency=Emergency (suspected cord compression with neurological signs)",
    "urgent=Urgent (suspected spinal metastases, pain only)",
    "routine=Routine",
)
REFERRAL_PRIORITY = codes(
    "urgent_suspected_cancer=Urgent suspected cancer",
    "screening=Screening",
    "consultant_upgrade=Consultant upgrade",
    "routine=Routine (non-urgent)",
    "emergency_presentation=Emergency presentation",
)


def default_priority(urgency: str | None) -> str:
    """The waiting-time route a referral takes when none is given: an emergency presents as
    one; an urgent or routine referral of a suspected tumour is urgent suspected cancer."""
    return "emergency_presentation" if urgency == "emergency" else "urgent_suspected_cancer"


URGENCY_SHORT = {"emergency": "Emergency", "urgent": "Urgent", "routine": "Routine"}
DIAGNOSIS_CATEGORY = codes(
    "metastatic_spinal=Metastatic spinal tumour",
    "primary_spinal=Primary spinal tumour",
    "intradural_intramedullary=Intradural / intramedullary tumour",
    "primary_bone=Primary bone tumour",
)
PRIMARY_CANCER_SITE = codes(
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
PRESENTING_SYMPTOMS = codes(
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
IMAGING_MODALITY = codes("mri=MRI", "ct=CT", "xray=X-ray", "bone_scan=Bone scan", "pet_ct=PET-CT")
BILSKY = codes(
    "0=0 - bone only",
    "1a=1a - epidural, no thecal sac deformation",
    "1b=1b - thecal sac deformed, cord not abutted",
    "1c=1c - cord abutted, not compressed",
    "2=2 - cord compressed, CSF visible",
    "3=3 - cord compressed, no CSF",
)
BIOPSY_METHOD = codes("ct_guided_core=CT-guided core", "open=Open", "excisional=Excisional")
BIOPSY_RESULT = codes("benign", "malignant", "non_diagnostic=Non-diagnostic")
DISCIPLINES = codes(
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
ASIA = codes(
    "A=A - complete",
    "B=B - sensory incomplete",
    "C=C - motor incomplete, most below 3",
    "D=D - motor incomplete, most 3 or more",
    "E=E - normal",
)
ENNEKING = codes(
    "1=1 - benign, latent",
    "2=2 - benign, active",
    "3=3 - benign, aggressive",
    "IA=IA - low grade, within the compartment",
    "IB=IB - low grade, beyond the compartment",
    "IIA=IIA - high grade, within the compartment",
    "IIB=IIB - high grade, beyond the compartment",
    "III=III - any grade, with metastases",
)
RADIOSENSITIVITY = codes(
    "radiosensitive",
    "moderately_sensitive=Moderately sensitive",
    "radioresistant",
    "unknown",
)
PROCEDURES = codes(
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
APPROACH = codes("open", "minimally_invasive=Minimally invasive", "percutaneous")
NEUROMONITORING = codes("ssep=SSEP", "mep=MEP")
INTRAOP_IMAGING = codes("ultrasound", "mri=MRI", "ct=CT", "fluoroscopy")
COMPLICATION = codes(
    "csf_leak=CSF leak",
    "wound_infection",
    "neurological_deficit",
    "hardware_failure",
    "vte=Venous thromboembolism",
    "other",
)
CLAVIEN_DINDO = codes(
    "I=I - no treatment beyond simple measures (analgesia, antiemetics, physiotherapy)",
    "II=II - drug treatment needed (including transfusion or parenteral nutrition)",
    "IIIa=IIIa - intervention without general anaesthesia",
    "IIIb=IIIb - intervention under general anaesthesia",
    "IVa=IVa - life-threatening: one organ failing (intensive care)",
    "IVb=IVb - life-threatening: several organs failing (intensive care)",
    "V=V - death of the patient",
)
MOBILITY = codes("independent", "walking_aid=Walking aid", "wheelchair", "bed_bound=Bed-bound")
TREATMENT_MODALITY = codes(
    "conventional_rt=Conventional radiotherapy",
    "sbrt=SBRT",
    "chemotherapy",
    "targeted=Targeted therapy",
    "immunotherapy",
    "hormonal=Hormonal therapy",
)
FOLLOW_UP_STATUS = codes(
    "ned=No evidence of disease",
    "stable=Stable disease",
    "progression",
    "recurrence",
)
MDT_REFERRAL_REASON = codes(
    "unfit_for_surgery=Unfit for surgery",
    "final_histology=Final histology",
    "restaging=Restaging after neoadjuvant therapy",
    "other",
)
WITHDRAW_REASON = codes(
    "declined=Declined treatment",
    "transferred=Transferred out",
    "lost_to_follow_up=Lost to follow-up",
    "opened_in_error=Opened in error (left out of every count and report)",
)
IN_ERROR = "opened_in_error"
BONE = codes(*BONES)
SIDE = codes("left", "right")
LESION_FINDING = codes("new", "stable", "progressing", "responding", "resolved")


NOTE = LongText("note", "Note", max_length=4000)
LONG = 4000

PATHWAY_FIELDS = (
    DateTime(
        "referral_received_at",
        "Referral received",
        required=True,
        help="Starts the waiting-time clock.",
    ),
    Choice("referral_source", "Referral source", required=True, choices=REFERRAL_SOURCE),
    Choice("urgency", "Urgency", required=True, choices=URGENCY),
    Choice(
        "referral_priority",
        "Referral priority",
        choices=REFERRAL_PRIORITY,
        help="The waiting-time route. Left blank: emergency presentation for an emergency, "
        "otherwise urgent suspected cancer.",
    ),
    Choice(
        "diagnosis_category",
        "Diagnosis category",
        required=True,
        choices=DIAGNOSIS_CATEGORY,
    ),
    Text(
        "tumour_site",
        "Tumour site",
        required=True,
        max_length=100,
        help="Spinal levels such as T7-T9, or a bone.",
    ),
    Choice(
        "primary_cancer_site",
        "Primary cancer site",
        required=True,
        choices=PRIMARY_CANCER_SITE,
    ),
    MultiChoice("presenting_symptoms", "Presenting symptoms", choices=PRESENTING_SYMPTOMS),
    UserRef("lead_surgeon", "Lead surgeon", role="surgeon"),
    UserRef("coordinator", "Coordinator", role="coordinator"),
    Team(
        "team",
        "Team",
        help="The MDT team that cares for the patient; only its members see the patient. "
        "Left blank: the team of the diagnosis category.",
    ),
)

_BILSKY = Choice("bilsky_grade", "Bilsky ESCC grade", choices=BILSKY)
# ECOG grades in words (recorded as the number: the scores and NOMS read it).
ECOG_GRADES = (
    (0, "fully active"),
    (1, "restricted in strenuous activity, walks, light work"),
    (2, "walks and cares for self, up more than half the day, no work"),
    (3, "limited self-care, in bed or chair more than half the day"),
    (4, "completely disabled, confined to bed or chair"),
)
_ECOG = Integer(
    "ecog",
    "ECOG performance status",
    minimum=0,
    maximum=4,
    help="; ".join(f"{n} {words}" for n, words in ECOG_GRADES) + ".",
    words=ECOG_GRADES,
)
_KARNOFSKY = Integer("karnofsky", "Karnofsky score", minimum=0, maximum=100, step=10)
_ASIA = Choice("asia_grade", "ASIA impairment grade", choices=ASIA)
_PAIN = Integer("pain_nrs", "Pain (NRS 0-10)", minimum=0, maximum=10)
_SINS = ScoreField("sins", "SINS", score=SINS)
_BONE = Choice("bone", "Bone", choices=BONE)
_LESIONS_HELP = (
    "The labels of this pathway's lesions it concerns, separated by commas "
    "(as charted with Record lesion)."
)


def _lesions(help: str = _LESIONS_HELP) -> LesionRefs:
    return LesionRefs("lesions", "Lesions", help=help)


MDT_OUTCOME_FIELDS = (
    Date("meeting_date", "MDT meeting date", required=True),
    # The meeting that decided (tracker.mdt): the pathway must be listed on it, and its
    # date is the meeting date. Left out: an outcome recorded by date alone.
    Integer("meeting_id", "MDT meeting", minimum=1, maximum=2**31 - 1),
    MultiChoice(
        "disciplines",
        "Disciplines present",
        required=True,
        choices=DISCIPLINES,
        min_items=2,
        help="At least two.",
    ),
    _SINS,
    _BILSKY,
    LesionRef(
        "lesion",
        "Lesion scored",
        spinal_only=True,
        help="The spinal lesion the SINS and Bilsky grade describe (its label, as charted "
        "with Record lesion). Left blank: the referral's tumour site.",
    ),
    _ECOG,
    _KARNOFSKY,
    _ASIA,
    ScoreField("tokuhashi", "Revised Tokuhashi", score=TOKUHASHI),
    Choice("enneking_stage", "Enneking stage", choices=ENNEKING),
    Choice("radiosensitivity", "Radiosensitivity of the histology", choices=RADIOSENSITIVITY),
    LongText("rationale", "Rationale", required=True, max_length=LONG),
)

IMAGING_FIELDS = (
    Choice("modality", "Modality", required=True, choices=IMAGING_MODALITY),
    Text("region", "Region", required=True, max_length=100),
    Text("levels", "Levels", max_length=100),
    LongText("findings", "Findings", required=True, max_length=LONG),
    _BILSKY,
    _lesions(
        f"{_LESIONS_HELP} A Bilsky grade describes the lesion named, when one is; "
        "otherwise the referral's tumour site."
    ),
    YesNo(
        "mri_contraindicated",
        "MRI contraindicated",
        help="Yes: this CT stands for the MRI of the spinal cord compression clock.",
    ),
)
BIOPSY_FIELDS = (
    Choice("method", "Method", required=True, choices=BIOPSY_METHOD),
    LongText("histology", "Histology", required=True, max_length=LONG),
    Choice("result", "Result", required=True, choices=BIOPSY_RESULT),
    _lesions(),
)
MDT_TRIAGE = codes(
    "full_discussion=Full discussion",
    "standard_of_care=Standard of care (confirmed without discussion)",
)
# A listing names a meeting (tracker.mdt: the meeting's date is the date) with the
# question for it, who presents and the triage; a listing by date alone, as recorded
# before meetings existed, is still accepted.
MDT_LISTING_FIELDS = (
    Date("meeting_date", "MDT meeting date", required=True),
    Integer("meeting_id", "MDT meeting", minimum=1, maximum=2**31 - 1),
    LongText("question", "Clinical question", max_length=LONG),
    UserRef("presenter", "Presenter"),
    Choice("triage", "Triage", choices=MDT_TRIAGE),
    LongText("late_reason", "Reason for a late addition", max_length=LONG),
)
PREOP_FIELDS = (
    Integer("asa_grade", "ASA grade", required=True, minimum=1, maximum=5),
    YesNo("consent_taken", "Consent taken", required=True),
    Date("planned_date", "Planned operation date"),
)
OPERATION_FIELDS = (
    UserRef("lead_surgeon", "Lead surgeon", required=True, role="surgeon"),
    MultiChoice("procedures", "Procedures", required=True, choices=PROCEDURES, min_items=1),
    Choice("approach", "Approach", required=True, choices=APPROACH),
    Text("levels", "Levels", required=True, max_length=100),
    SpinalLevels(
        "instrumented_levels",
        "Instrumented levels",
        help="The span of the instrumentation, C1 to S5 (T6-T10), if any.",
    ),
    _lesions(),
    MultiChoice("neuromonitoring", "Neuromonitoring", choices=NEUROMONITORING),
    MultiChoice("intraop_imaging", "Intra-operative imaging", choices=INTRAOP_IMAGING),
    Integer("duration_min", "Duration (minutes)", minimum=1, maximum=2880),
    Integer("blood_loss_ml", "Blood loss (ml)", minimum=0, maximum=50000),
)
COMPLICATION_FIELDS = (
    Choice("complication", "Complication", required=True, choices=COMPLICATION),
    Choice("clavien_dindo", "Clavien-Dindo grade", required=True, choices=CLAVIEN_DINDO),
)
THERAPY_FIELDS = (
    Choice("mobility", "Mobility", required=True, choices=MOBILITY),
    _PAIN,
)
TREATMENT_FIELDS = (
    Choice("modality", "Modality", required=True, choices=TREATMENT_MODALITY),
    Number("dose_gy", "Dose (Gy)", minimum=0, maximum=200),
    Integer("fractions", "Fractions", minimum=1, maximum=100),
    Date("start_date", "Start date", required=True),
    Date("end_date", "End date"),
    SpinalLevels("levels", "Radiotherapy field: levels", help="For radiotherapy: C1 to S5."),
    Choice("bone", "Radiotherapy field: bone", choices=BONE, help="For radiotherapy."),
    _lesions(),
)
LESION_FIELDS = (
    LesionLabel(
        "lesion_ref",
        "Label",
        help="A short label, unique on this pathway (L1, left femur). Left blank: its site. "
        "A label charted before updates that lesion.",
    ),
    SpinalLevels(
        "levels",
        "Spinal levels",
        help="A spinal lesion: C1 to S5, a range (T11-L1) or a list (T4, T8). Or give a bone.",
    ),
    _BONE,
    Choice("side", "Side", choices=SIDE, help="Of a bone."),
    Choice("finding", "Finding", required=True, choices=LESION_FINDING),
    _SINS,
    _BILSKY,
    ScoreField(
        "mirels",
        "Mirels",
        score=MIRELS,
        help="A long-bone lesion: 9 or more, prophylactic fixation recommended; 8, borderline.",
    ),
)
FOLLOW_UP_FIELDS = (
    YesNo("imaging_done", "Imaging done", required=True),
    Choice("status", "Disease status", required=True, choices=FOLLOW_UP_STATUS),
    Date("next_due", "Next visit due"),
)
COMMUNICATION_OUTCOME = codes(
    "cancer_confirmed=Cancer confirmed",
    "cancer_ruled_out=Cancer ruled out",
)
COMMUNICATION_METHOD = codes(
    "face_to_face=Face to face",
    "telephone=Telephone",
    "video=Video",
    "letter=Letter",
)
RULED_OUT_REASON = codes("benign=Benign", "no_tumour_found=No tumour found", "other=Other")
AGREED_TREATMENT = codes(
    "surgery=Surgery",
    "radiotherapy=Radiotherapy",
    "systemic=Systemic therapy",
    "palliative=Palliative care",
    "active_monitoring=Active monitoring",
)
ADJUSTMENT_KIND = codes(
    "dna_first_appointment=Did not attend the first appointment (restarts the 28- and "
    "62-day clocks on the rebooked date)",
    "patient_declined_admission=Declined an offered admission (pauses the 31- and 62-day "
    "clocks, admitted treatment only)",
    "earliest_clinically_appropriate_date=Earliest clinically appropriate date (moves the "
    "start of a subsequent 31-day clock)",
)
ADJUSTMENT_KIND_LABELS = dict(ADJUSTMENT_KIND)
BREACH_REASON = LongText(
    "breach_reason",
    "Reason for the delay",
    max_length=LONG,
    help="If a waiting-time target was missed: why (reported in the monthly return).",
)
COMMUNICATION_FIELDS = (
    Choice("outcome", "What the patient was told", required=True, choices=COMMUNICATION_OUTCOME),
    Choice("method", "How", required=True, choices=COMMUNICATION_METHOD),
    BREACH_REASON,
)
RULE_OUT_FIELDS = (
    Choice("reason", "Why cancer is ruled out", required=True, choices=RULED_OUT_REASON),
    Choice(
        "outcome",
        "What the patient was told",
        choices=(("cancer_ruled_out", "Cancer ruled out"),),
        help="Needed unless the patient was told before (Diagnosis communicated).",
    ),
    Choice(
        "method",
        "How the patient was told",
        choices=COMMUNICATION_METHOD,
        help="Needed unless the patient was told before.",
    ),
    BREACH_REASON,
)
AGREE_FIELDS = (Choice("treatment", "Treatment agreed", required=True, choices=AGREED_TREATMENT),)
ADJUSTMENT_FIELDS = (
    Choice("kind", "Adjustment", required=True, choices=ADJUSTMENT_KIND),
    LongText("reason", "Reason", required=True, max_length=LONG),
    Date("rebooked_on", "Rebooked appointment", help="For a missed first appointment."),
    Date("offered_date", "Admission offered for", help="For a declined admission."),
    Date("available_from", "Patient available from", help="For a declined admission."),
    Date(
        "ecad",
        "Earliest clinically appropriate date",
        help="For a subsequent treatment that cannot start earlier.",
    ),
)
UPGRADE_FIELDS = (
    Date("upgraded_on", "Upgraded on", required=True),
    UserRef("consultant", "Consultant", required=True, role="surgeon"),
)
NEXT_DUE = Date(
    "next_due",
    "First follow-up visit due",
    required=True,
    help="The date of the first follow-up visit: due by the end of that day.",
)
EPISODE_FIELDS = (
    Choice("urgency", "Urgency of this episode", required=True, choices=URGENCY),
    Choice(
        "referral_priority",
        "Referral priority of this episode",
        required=True,
        choices=REFERRAL_PRIORITY,
    ),
    LongText("findings", "Findings", max_length=LONG),
)
HANDOVER_FIELDS = (
    UserRef("lead_surgeon", "New lead surgeon", role="surgeon"),
    UserRef("coordinator", "New coordinator", role="coordinator"),
    Team("team", "New team", help="Transfer the patient to another MDT team."),
)
ASSESSMENT_FIELDS = (_ASIA, _PAIN, _ECOG, _KARNOFSKY)
WITHDRAW_FIELDS = (Choice("reason", "Reason", required=True, choices=WITHDRAW_REASON),)
NOTE_FIELDS = (LongText("note", "Note", required=True, max_length=LONG),)
TRACKING_NOTE_LENGTH = 280
TRACKING_NOTE_FIELDS = (
    Text(
        "note",
        "Tracking note",
        required=True,
        max_length=TRACKING_NOTE_LENGTH,
        help="A short comment on where the patient's pathway stands, shown on the worklist "
        "and the PTL.",
    ),
)
_TASK = TaskRef("task", "Task", required=True, help="The task's number (#), as listed.")
_TASK_OWNER_HELP = "A coordinator or surgeon in the pathway's team."
TASK_FIELDS = (
    Text("what", "What needs doing", required=True, max_length=200),
    UserRef("owner", "Owner", required=True, help=_TASK_OWNER_HELP),
    Date("due_on", "Due by", required=True, help="Not in the past."),
)
TASK_UPDATE_FIELDS = (
    _TASK,
    UserRef("owner", "New owner", help=_TASK_OWNER_HELP),
    Date("due_on", "New due date", help="Not in the past."),
)
TASK_DONE_FIELDS = (_TASK,)
TASK_CANCEL_FIELDS = (
    _TASK,
    Text("reason", "Reason for cancelling", required=True, max_length=TRACKING_NOTE_LENGTH),
)
MDT_REASON_FIELDS = (Choice("reason", "Reason", required=True, choices=MDT_REFERRAL_REASON),)
AMEND_FIELDS = (
    Integer("event_seq", "Event corrected", required=True, minimum=1),
    LongText("reason", "Reason for the correction", required=True, max_length=LONG),
)
VOID_FIELDS = (LongText("reason", "Reason for voiding", required=True, max_length=LONG),)
COMPUTED_KEYS = tuple(f"{name}_{part}" for name in SCORES for part in ("total", "band"))


class DataError(Exception):
    """Invalid data: ``errors`` maps each field to its messages."""

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        parts = [f"{name}: {'; '.join(msgs)}" for name, msgs in errors.items()]
        super().__init__("invalid data - " + " | ".join(parts))


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
        if blank(value):
            if f.required:
                errors.setdefault(f.name, []).append(f"{f.label} is required")
            continue
        try:
            clean[f.name] = f.check(value)
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
    return f.describe(value, data, names)
