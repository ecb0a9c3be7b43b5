"""The step registry: one declarative entry per trigger of PATHWAY.md.

Each entry says everything about its step once: the ways it can be taken (sources,
destination, guards with their refusal words), its fields and cross-field rules, who
may record it, its effects (a new episode, closing the pathway) and its tags, which
the clocks, the overview, the reports, the MDT list, FHIR and the timeline read. The
machine, the forms, the API's schemas and OpenAPI, the CSV import, the access matrix
and the timeline wording are all built from this table; nothing outside the engine
lists trigger names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from tracker.core.clock import local_date
from tracker.engine import consistency as c
from tracker.engine import dictionary as dd
from tracker.engine import guards as g
from tracker.engine import lesions as les
from tracker.engine import tags as t
from tracker.engine.dictionary import Field
from tracker.engine.states import (  # noqa: F401 - the states are read through this module too
    ACTIVE_STATES,
    EVERY_STATE,
    FINAL_STATES,
    INITIAL_STATE,
    STATE_LABELS,
    STATES,
    active_except,
)
from tracker.users.roles import CLINICAL, ROLE_LABELS, a_role  # noqa: F401 - a_role re-exported

# A cross-field rule: (clean data, local day it happened or None) -> {field: [messages]}.
Rule = Callable[[dict[str, Any], date | None], dict[str, list[str]]]


@dataclass(frozen=True)
class Way:
    """One way a step is taken: from ``sources`` to ``dest`` (None: the state stays)."""

    sources: tuple[str, ...]
    dest: str | None
    guards: tuple[g.Guard, ...] = ()
    fields: tuple[Field, ...] | None = None  # None: the step's own fields
    rules: tuple[Rule, ...] = ()
    tags: frozenset[str] = frozenset()  # tags that hold on this way only


@dataclass(frozen=True)
class StepDef:
    trigger: str
    label: str  # the timeline's words for a recorded step
    ways: tuple[Way, ...]
    fields: tuple[Field, ...] = ()
    rules: tuple[Rule, ...] = ()
    roles: frozenset[str] = CLINICAL
    tags: frozenset[str] = frozenset()
    choice: str | None = None  # words on the MDT outcome form, for an MDT outcome
    # An MDT outcome in plain words for the patient's letter ("The team recommends ...").
    plain: str | None = None
    fhir: str | None = None  # how FHIR exports it: imaging, biopsy, surgery, mdt
    # A step that follows from this one's data, recorded with it in the same transaction
    # (a Clavien-Dindo V complication is a death): (clean data) -> trigger or None.
    then: Callable[[dict[str, Any]], str | None] | None = None

    @property
    def changes_state(self) -> bool:
        return any(w.dest is not None for w in self.ways)

    def way_from(self, source: str | None) -> Way | None:
        for way in self.ways:
            if source in way.sources:
                return way
        return None

    def tags_from(self, source: str | None) -> frozenset[str]:
        return self._tags_by_source.get(source, self.tags)

    def __post_init__(self) -> None:
        # Read for every step of every history many times a page: worked out once.
        by_source: dict[str | None, frozenset[str]] = {}
        for way in self.ways:
            for source in way.sources:
                by_source.setdefault(source, self.tags | way.tags)
        object.__setattr__(self, "_tags_by_source", by_source)


def _mdt_outcome(dest: str, fields: tuple[Field, ...] = (), rules=(), tags=frozenset()) -> Way:
    return Way(
        ("mdt_review",),
        dest,
        (g.MDT_OUTCOME, c.TOKUHASHI_METASTATIC_ONLY),
        fields=(*dd.MDT_OUTCOME_FIELDS[:-1], *fields, dd.MDT_OUTCOME_FIELDS[-1]),
        rules=(_meeting_not_after_outcome, les.lesion_with_a_score, *c.MDT_RULES, *rules),
        tags=frozenset({t.MDT_OUTCOME}) | tags,
    )


# -- cross-field rules ----------------------------------------------------------------------


def _meeting_not_after_outcome(clean, day):
    if day and date.fromisoformat(clean["meeting_date"]) > day:
        return {"meeting_date": ["The MDT meeting date cannot be after the outcome is recorded"]}
    return {}


def _some_assessment(clean, day):
    if not clean.keys() - {"note"}:
        return {"asia_grade": ["Give at least one of ASIA grade, pain score, ECOG or Karnofsky"]}
    return {}


def _treatment_dates(clean, day):
    errors = {}
    end_date = clean.get("end_date")
    if end_date and end_date < clean["start_date"]:  # ISO dates sort as dates
        errors["end_date"] = ["End date cannot be before the start date"]
    if day and date.fromisoformat(clean["start_date"]) > day:
        errors["start_date"] = ["Start date cannot be after the day this is recorded"]
    return errors


def _next_visit_after_this(clean, day):
    next_due = clean.get("next_due")
    if next_due and day and date.fromisoformat(next_due) <= day:
        return {"next_due": ["The next visit must be due after the day this happened"]}
    return {}


def _told_together(clean, day):
    if bool(clean.get("outcome")) != bool(clean.get("method")):
        missing = "method" if clean.get("outcome") else "outcome"
        return {missing: ["Give both what the patient was told and how, or neither"]}
    return {}


# The dates each kind of adjustment needs (PATHWAY.md, record_adjustment).
ADJUSTMENT_DATES = {
    "dna_first_appointment": ("rebooked_on",),
    "patient_declined_admission": ("offered_date", "available_from"),
    "earliest_clinically_appropriate_date": ("ecad",),
}


def _adjustment_dates(clean, day):
    needed = ADJUSTMENT_DATES.get(clean.get("kind"), ())
    errors = {}
    for name in needed:
        if not clean.get(name):
            errors[name] = [
                f"{dd.ADJUSTMENT_KIND_LABELS[clean['kind']].split(' (')[0]}: "
                f"give the {name.replace('_', ' ')} date"
            ]
    for name in {"rebooked_on", "offered_date", "available_from", "ecad"} - set(needed):
        if clean.get(name):
            errors[name] = ["Not used by this kind of adjustment: leave it blank"]
    offered, available = clean.get("offered_date"), clean.get("available_from")
    if offered and available and available < offered:  # ISO dates sort as dates
        errors["available_from"] = ["The patient cannot be available before the offered date"]
    return errors


def _upgraded_by_then(clean, day):
    if day and date.fromisoformat(clean["upgraded_on"]) > day:
        return {"upgraded_on": ["The upgrade cannot be dated after the day it is recorded"]}
    return {}


def _due_from_then(clean, day):
    due_on = clean.get("due_on")
    if due_on and day and date.fromisoformat(due_on) < day:
        return {"due_on": ["The due date is in the past: give today or a later date"]}
    return {}


def _owner_or_date(clean, day):
    if not clean.get("owner") and not clean.get("due_on"):
        return {"owner": ["Give a new owner, a new due date or both"]}
    return {}


def _someone_named(clean, day):
    if not any(clean.get(name) for name in ("lead_surgeon", "coordinator", "team")):
        return {"lead_surgeon": ["Name a new lead surgeon, a new coordinator or a new team"]}
    return {}


# -- the registry ---------------------------------------------------------------------------

OPEN_TRIGGER = "open_pathway"
# Lists a pathway for an MDT meeting (tracker.mdt adds the meeting's rules to it).
MDT_LISTING_TRIGGER = "schedule_mdt"
AMEND_TRIGGER = "amend_event"
VOID_TRIGGER = "void_last_step"
VOID_WINDOW_HOURS = 24
# The tracking steps, by name for the features that record them (the Tracking panel, the
# API's tasks, bulk actions); consumers of what they record read the tags.
TRACKING_NOTE_TRIGGER = "add_tracking_note"
ADD_TASK_TRIGGER = "add_task"
UPDATE_TASK_TRIGGER = "update_task"
COMPLETE_TASK_TRIGGER = "complete_task"
CANCEL_TASK_TRIGGER = "cancel_task"
_AFTER_TREATMENT = ("surgery_scheduled", "post_op", "oncology_treatment")
# The states a pathway can be in before its first treatment (an upgrade comes before it).
_BEFORE_TREATMENT = (
    "referred",
    "imaging",
    "biopsy",
    "mdt_review",
    "surgery_scheduled",
    "oncology_treatment",
)

REGISTRY: tuple[StepDef, ...] = (
    # The referral opens the pathway; corrections are events but no transitions.
    StepDef(
        OPEN_TRIGGER,
        "Referral received",
        (Way((), INITIAL_STATE),),
        dd.PATHWAY_FIELDS,
        tags=frozenset({t.OPENS}),
    ),
    StepDef(
        AMEND_TRIGGER,
        "Amendment",
        (),
        dd.AMEND_FIELDS,
        tags=frozenset({t.CORRECTION}),
    ),
    StepDef(
        VOID_TRIGGER,
        "Step voided",
        (),
        dd.VOID_FIELDS,
        # PATHWAY.md: a void is for whoever recorded the step (within 24 hours) and
        # administrators.
        roles=frozenset({"coordinator", "surgeon", "admin"}),
        tags=frozenset({t.CORRECTION}),
    ),
    # Transitions.
    StepDef(
        "request_imaging",
        "Request imaging",
        (Way(("referred",), "imaging"), _mdt_outcome("imaging")),
        choice="More imaging first",
        plain="more scans, so that the team can see the area more clearly before deciding",
    ),
    StepDef(
        "request_biopsy",
        "Request biopsy",
        (Way(("imaging",), "biopsy", (g.IMAGING_REPORTED,)), _mdt_outcome("biopsy")),
        choice="Biopsy first",
        plain="a biopsy (a small sample of the tissue, looked at under a microscope) "
        "before deciding on treatment",
    ),
    StepDef(
        "refer_to_mdt",
        "Refer to MDT",
        (
            Way(("imaging",), "mdt_review", (g.IMAGING_REPORTED,)),
            Way(("biopsy",), "mdt_review", (g.BIOPSY_RECORDED,)),
            Way(_AFTER_TREATMENT, "mdt_review", (g.REASON_GIVEN,), fields=dd.MDT_REASON_FIELDS),
        ),
    ),
    StepDef(
        "plan_surgery",
        "MDT decision: surgery",
        (_mdt_outcome("surgery_scheduled"),),
        tags=frozenset({t.MDT_DECISION, t.DECISION_SURGERY}),
        choice="Surgery",
        plain="an operation; your surgeon will explain what it involves and ask for your consent",
    ),
    StepDef(
        "plan_oncology",
        "MDT decision: oncology treatment",
        (_mdt_outcome("oncology_treatment"),),
        tags=frozenset({t.MDT_DECISION, t.DECISION_ONCOLOGY}),
        choice="Oncology treatment (radiotherapy or systemic therapy)",
        plain="treatment from the cancer (oncology) team: radiotherapy, or medicines such as "
        "chemotherapy",
    ),
    StepDef(
        "plan_palliative",
        "MDT decision: palliative care",
        (_mdt_outcome("palliative_care"),),
        # Palliative care chosen by the MDT is the first treatment, as CWT counts it.
        tags=frozenset({t.MDT_DECISION, t.TREATMENT_STARTED}),
        choice="Palliative care",
        plain="care from the palliative care team, who help with pain and other symptoms and "
        "with keeping you as well and comfortable as possible",
    ),
    StepDef(
        "plan_surveillance",
        "MDT decision: surveillance",
        (
            _mdt_outcome(
                "surveillance",
                (dd.NEXT_DUE,),
                (_next_visit_after_this,),
                frozenset({t.FOLLOW_UP_BOOKED}),
            ),
        ),
        # Active monitoring chosen by the MDT is the first treatment, as CWT counts it.
        tags=frozenset({t.MDT_DECISION, t.TREATMENT_STARTED}),
        choice="Surveillance",
        plain="no treatment for now, with regular check-ups and scans to keep an eye on things",
    ),
    StepDef(
        "record_surgery",
        "Record operation",
        (
            Way(
                ("surgery_scheduled",),
                "post_op",
                (g.OPERATION_DETAILS, g.NOT_BEFORE_DECISION_TO_OPERATE),
            ),
        ),
        (*dd.OPERATION_FIELDS, dd.BREACH_REASON),
        tags=frozenset({t.OPERATION, t.TREATMENT_STARTED}),
        fhir="surgery",
    ),
    StepDef(
        "start_rehabilitation",
        "Start rehabilitation",
        (Way(("post_op", "oncology_treatment"), "rehabilitation"),),
        tags=frozenset({t.REHABILITATION_STARTED}),
    ),
    StepDef(
        "start_oncology_treatment",
        "Start oncology treatment",
        (Way(("post_op", "rehabilitation"), "oncology_treatment"),),
        (dd.BREACH_REASON,),
        tags=frozenset({t.ONCOLOGY_STARTED, t.TREATMENT_STARTED}),
    ),
    StepDef(
        "start_surveillance",
        "Start surveillance",
        (Way(("post_op", "rehabilitation", "oncology_treatment"), "surveillance"),),
        (dd.NEXT_DUE,),
        rules=(_next_visit_after_this,),
        tags=frozenset({t.FOLLOW_UP_BOOKED}),
    ),
    StepDef(
        "suspect_recurrence",
        "Suspected recurrence",
        (Way(("surveillance",), "imaging"),),
        dd.EPISODE_FIELDS,
        tags=frozenset({t.NEW_EPISODE}),
    ),
    StepDef(
        "start_palliative_care",
        "Start palliative care",
        (Way(active_except("palliative_care"), "palliative_care"),),
        (dd.BREACH_REASON,),
        tags=frozenset({t.TREATMENT_STARTED}),
    ),
    StepDef(
        "discharge",
        "Discharge",
        (
            Way(("surveillance",), "discharged", (g.FOLLOW_UP_CLEAR,)),
            Way(("rehabilitation", "palliative_care"), "discharged"),
        ),
    ),
    StepDef(
        "rule_out_cancer",
        "Cancer ruled out",
        (
            Way(
                ("referred", "imaging", "biopsy", "mdt_review"),
                "discharged",
                (g.TOLD_CANCER_RULED_OUT,),
            ),
        ),
        dd.RULE_OUT_FIELDS,
        rules=(_told_together,),
        tags=frozenset({t.DIAGNOSIS_COMMUNICATED}),
    ),
    StepDef("record_death", "Record death", (Way(ACTIVE_STATES, "deceased"),)),
    StepDef(
        "withdraw",
        "Withdraw from pathway",
        (Way(ACTIVE_STATES, "withdrawn", (g.REASON_GIVEN,)),),
        dd.WITHDRAW_FIELDS,
    ),
    # Records: logged on the timeline, the state stays.
    StepDef(
        "record_imaging",
        "Imaging reported",
        (Way(("imaging", "surveillance"), None),),
        dd.IMAGING_FIELDS,
        rules=(*c.IMAGING_RULES, les.one_lesion_per_bilsky),
        tags=frozenset({t.IMAGING_REPORTED, t.TREND}),
        fhir="imaging",
    ),
    StepDef(
        "record_biopsy",
        "Biopsy result",
        (Way(("biopsy",), None),),
        dd.BIOPSY_FIELDS,
        tags=frozenset({t.BIOPSY_RESULT}),
        fhir="biopsy",
    ),
    StepDef(
        MDT_LISTING_TRIGGER,
        "MDT meeting scheduled",
        (Way(("mdt_review",), None),),
        dd.MDT_LISTING_FIELDS,
        tags=frozenset({t.MDT_LISTING}),
    ),
    StepDef(
        "record_preop_assessment",
        "Pre-operative assessment",
        (Way(("surgery_scheduled",), None),),
        dd.PREOP_FIELDS,
    ),
    StepDef(
        "record_complication",
        "Complication",
        (Way(("post_op", "rehabilitation", "oncology_treatment", "surveillance"), None),),
        dd.COMPLICATION_FIELDS,
        tags=frozenset({t.COMPLICATION}),
        # Grade V is death from the complication: the death is recorded with it.
        then=lambda clean: "record_death" if clean.get("clavien_dindo") == "V" else None,
    ),
    StepDef(
        "record_therapy_session",
        "Therapy session",
        (Way(("rehabilitation",), None),),
        dd.THERAPY_FIELDS,
        tags=frozenset({t.TREND}),
    ),
    StepDef(
        "record_treatment",
        "Oncology treatment given",
        (Way(("oncology_treatment",), None),),
        (*dd.TREATMENT_FIELDS, dd.BREACH_REASON),
        rules=(_treatment_dates, les.field_for_radiotherapy),
        tags=frozenset({t.ONCOLOGY_STARTED, t.TREATMENT_STARTED}),
    ),
    StepDef(
        "record_follow_up",
        "Follow-up visit",
        (Way(("surveillance",), None),),
        dd.FOLLOW_UP_FIELDS,
        rules=(_next_visit_after_this,),
        tags=frozenset({t.FOLLOW_UP, t.FOLLOW_UP_BOOKED}),
    ),
    StepDef(
        "record_assessment",
        "Clinical assessment",
        (Way(ACTIVE_STATES, None),),
        dd.ASSESSMENT_FIELDS,
        rules=(_some_assessment,),
        tags=frozenset({t.TREND, t.VOID_TRANSPARENT}),
    ),
    StepDef(
        "communicate_diagnosis",
        "Diagnosis communicated",
        (Way(ACTIVE_STATES, None),),
        dd.COMMUNICATION_FIELDS,
        tags=frozenset({t.DIAGNOSIS_COMMUNICATED}),
    ),
    StepDef(
        "agree_treatment",
        "Treatment plan agreed",
        (
            Way(
                (
                    "surgery_scheduled",
                    "oncology_treatment",
                    "palliative_care",
                    "surveillance",
                    "mdt_review",
                ),
                None,
            ),
        ),
        dd.AGREE_FIELDS,
        tags=frozenset({t.DECISION_TO_TREAT}),
    ),
    StepDef(
        "record_adjustment",
        "Waiting-time adjustment",
        (Way(ACTIVE_STATES, None),),
        dd.ADJUSTMENT_FIELDS,
        rules=(_adjustment_dates,),
        tags=frozenset({t.ADJUSTMENT}),
    ),
    StepDef(
        "upgrade_referral",
        "Consultant upgrade",
        (Way(_BEFORE_TREATMENT, None, (g.NO_TREATMENT_YET,)),),
        dd.UPGRADE_FIELDS,
        rules=(_upgraded_by_then,),
        tags=frozenset({t.UPGRADE}),
    ),
    StepDef(
        "reassign",
        "Handover",
        (Way(ACTIVE_STATES, None),),
        dd.HANDOVER_FIELDS,
        rules=(_someone_named,),
        tags=frozenset({t.HANDOVER, t.VOID_TRANSPARENT}),
    ),
    StepDef(
        "record_lesion",
        "Lesion charted",
        (Way(ACTIVE_STATES, None),),
        dd.LESION_FIELDS,
        rules=(les.lesion_site,),
        tags=frozenset({t.LESION, t.VOID_TRANSPARENT}),
    ),
    StepDef(
        "sign_off",
        "Surgeon sign-off",
        (Way(EVERY_STATE, None),),
        roles=frozenset({"surgeon"}),
        tags=frozenset({t.SIGN_OFF, t.VOID_TRANSPARENT}),
    ),
    StepDef(
        "add_note",
        "Note",
        (Way(EVERY_STATE, None),),
        dd.NOTE_FIELDS,
        tags=frozenset({t.NOTE, t.VOID_TRANSPARENT}),
    ),
    # Tracking: the coordinator's comment and the next actions (pathway_task rows).
    StepDef(
        TRACKING_NOTE_TRIGGER,
        "Tracking note",
        (Way(ACTIVE_STATES, None),),
        dd.TRACKING_NOTE_FIELDS,
        tags=frozenset({t.NOTE, t.TRACKING_NOTE, t.VOID_TRANSPARENT}),
    ),
    StepDef(
        ADD_TASK_TRIGGER,
        "Add task",
        (Way(ACTIVE_STATES, None),),
        dd.TASK_FIELDS,
        rules=(_due_from_then,),
        tags=frozenset({t.TASK_ADDED, t.VOID_TRANSPARENT}),
    ),
    # Tasks belong to open pathways: once a pathway closes its tasks are left as they stand
    # (My work and the alerts read open pathways only).
    StepDef(
        UPDATE_TASK_TRIGGER,
        "Change task",
        (Way(ACTIVE_STATES, None),),
        dd.TASK_UPDATE_FIELDS,
        rules=(_owner_or_date, _due_from_then),
        tags=frozenset({t.TASK_CHANGED, t.VOID_TRANSPARENT}),
    ),
    StepDef(
        COMPLETE_TASK_TRIGGER,
        "Mark task done",
        (Way(ACTIVE_STATES, None),),
        dd.TASK_DONE_FIELDS,
        tags=frozenset({t.TASK_DONE, t.VOID_TRANSPARENT}),
    ),
    StepDef(
        CANCEL_TASK_TRIGGER,
        "Cancel task",
        (Way(ACTIVE_STATES, None),),
        dd.TASK_CANCEL_FIELDS,
        tags=frozenset({t.TASK_CANCELLED, t.VOID_TRANSPARENT}),
    ),
)


class Registry:
    """The entries, looked up by trigger and by tag. ``extra`` entries (tests) join all."""

    def __init__(self, entries: Iterable[StepDef]):
        self.entries: dict[str, StepDef] = {}
        self.version = 0  # changes with every entry added or removed: caches key on it
        for entry in entries:
            self.add(entry)

    def add(self, entry: StepDef) -> None:
        if entry.trigger in self.entries:
            raise ValueError(f"step {entry.trigger} is declared twice")
        unknown = (entry.tags | {t for w in entry.ways for t in w.tags}) - t.ALL
        if unknown:
            raise ValueError(f"step {entry.trigger}: unknown tags {sorted(unknown)}")
        self.entries[entry.trigger] = entry
        self.version += 1

    def remove(self, trigger: str) -> None:
        del self.entries[trigger]
        self.version += 1


REGISTRY_ENTRIES = Registry(REGISTRY)
_entries = REGISTRY_ENTRIES.entries


def entry(trigger: str) -> StepDef | None:
    return _entries.get(trigger)


def is_step(trigger: str) -> bool:
    """A step a user records (the referral and corrections have their own services)."""
    step = _entries.get(trigger)
    return step is not None and bool(step.ways) and not ({t.OPENS, t.CORRECTION} & step.tags)


def recordable() -> tuple[str, ...]:
    """Every trigger a user records through ``services.record``, in registry order."""
    return tuple(trigger for trigger in _entries if is_step(trigger))


def tagged(tag: str) -> frozenset[str]:
    """The triggers that carry ``tag`` on every way (a way's own tags: ``has_tag``)."""
    return frozenset(trigger for trigger, step in _entries.items() if tag in step.tags)


def has_tag(trigger: str, source: str | None, tag: str) -> bool:
    step = _entries.get(trigger)
    return step is not None and tag in step.tags_from(source)


def tags_of(trigger: str, source: str | None) -> frozenset[str]:
    step = _entries.get(trigger)
    return step.tags_from(source) if step else frozenset()


def label(trigger: str) -> str:
    step = _entries.get(trigger)
    return step.label if step else trigger


def way(trigger: str, source: str | None) -> Way | None:
    step = _entries.get(trigger)
    return step.way_from(source) if step else None


def changes_state(trigger: str) -> bool:
    step = _entries.get(trigger)
    return step is not None and step.changes_state and is_step(trigger)


def is_mdt_outcome(trigger: str, source: str | None) -> bool:
    return has_tag(trigger, source, t.MDT_OUTCOME)


def plain_words(trigger: str) -> str:
    """An MDT outcome as a patient's letter says it."""
    entry = _entries[trigger]
    return entry.plain or (entry.choice or entry.label).lower()


def mdt_outcome_choices() -> list[tuple[str, str]]:
    """(trigger, words) of every step that can be an MDT outcome, for the one MDT form."""
    return [
        (trigger, step.choice or step.label)
        for trigger, step in _entries.items()
        if any(t.MDT_OUTCOME in w.tags for w in step.ways)
    ]


def mdt_outcome_fields() -> tuple[Field, ...]:
    """The fields of the one MDT outcome form: every outcome's, in their order. A field
    only some decisions need (the first follow-up of surveillance) is optional on the form,
    says which decision needs it, and is required by that decision's own check."""
    ways = [w for step in _entries.values() for w in step.ways if t.MDT_OUTCOME in w.tags]
    every: dict[str, Field] = {}
    for w in ways:
        for f in w.fields or ():
            every.setdefault(f.name, f)
    out = []
    for name, f in every.items():
        needed_by = [
            _entries[trigger].choice or label(trigger)
            for trigger, step in _entries.items()
            for w in step.ways
            if w in ways and any(g.name == name and g.required for g in w.fields or ())
        ]
        if len(needed_by) < len(ways) and f.required:
            f = replace(f, required=False, help=f"{f.help} Needed for: {', '.join(needed_by)}.")
        out.append(f)
    return all_fields(tuple(out))


def roles_for(trigger: str) -> frozenset[str]:
    step = _entries.get(trigger)
    return step.roles if step else frozenset()


def role_may(role: str | None, trigger: str) -> bool:
    return role is not None and role in roles_for(trigger)


def from_anywhere() -> frozenset[str]:
    """State changes allowed from every active state (death, withdrawal, ...)."""
    return frozenset(
        trigger
        for trigger, step in _entries.items()
        if is_step(trigger)
        and step.changes_state
        and len({s for w in step.ways for s in w.sources}) >= len(ACTIVE_STATES) - 1
    )


def fields_for(trigger: str, source: str | None) -> tuple[Field, ...]:
    """The data fields of ``trigger`` fired from ``source``, without the common note."""
    step = _entries.get(trigger)
    if step is None:
        return ()
    way_ = step.way_from(source)
    if way_ is not None and way_.fields is not None:
        return way_.fields
    return step.fields


def all_fields(fields: tuple[Field, ...]) -> tuple[Field, ...]:
    if any(f.name == "note" for f in fields):
        return fields
    return (*fields, dd.NOTE)


def all_fields_for(trigger: str, source: str | None) -> tuple[Field, ...]:
    return all_fields(fields_for(trigger, source))


def follows(trigger: str, clean: dict[str, Any]) -> str | None:
    """The step recorded with ``trigger`` because of its data, if any."""
    step = _entries.get(trigger)
    return step.then(clean) if step is not None and step.then is not None else None


def validate_event_data(
    trigger: str, source: str | None, data: dict[str, Any], occurred_at=None
) -> dict[str, Any]:
    """The clean data of an event, with computed scores; DataError if invalid."""
    clean = dd.clean_fields(all_fields_for(trigger, source), data or {})
    day = local_date(occurred_at) if occurred_at else None
    step = _entries.get(trigger)
    way_ = step.way_from(source) if step else None
    rules = (*(step.rules if step else ()), *(way_.rules if way_ else ()))
    errors: dict[str, list[str]] = {}
    for rule in rules:
        for name, messages in rule(clean, day).items():
            errors.setdefault(name, []).extend(messages)
    if errors:
        raise dd.DataError(errors)
    return dd.with_scores(clean)


def history_errors(
    trigger: str, source: str | None, clean: dict[str, Any], history
) -> dict[str, list[str]]:
    """What is wrong with a step's valid data given the story recorded before it (a lesion
    named that was not charted by then): {field: [messages]}. Each field kind says."""
    errors: dict[str, list[str]] = {}
    for f in all_fields_for(trigger, source):
        if f.name in clean and (found := f.history_errors(clean[f.name], clean, history)):
            errors[f.name] = [f"{f.label} {why}" for why in found]
    return errors


def describe_roles(trigger: str) -> str:
    return ", ".join(sorted(ROLE_LABELS[r].lower() for r in roles_for(trigger)))


CORRECTION_TRIGGERS = frozenset({AMEND_TRIGGER, VOID_TRIGGER})


@dataclass(frozen=True)
class Transition:
    """One way of one step, as the machine and the API's definition see it."""

    trigger: str
    sources: tuple[str, ...]
    dest: str | None
    guards: tuple[g.Guard, ...]


def transitions() -> list[Transition]:
    return [
        Transition(trigger, w.sources, w.dest, w.guards)
        for trigger, step in _entries.items()
        if is_step(trigger)
        for w in step.ways
    ]


def transition_for(trigger: str, source: str | None) -> Transition | None:
    if not is_step(trigger):
        return None
    w = _entries[trigger].way_from(source)
    return Transition(trigger, w.sources, w.dest, w.guards) if w else None


def trigger_roles() -> dict[str, frozenset[str]]:
    """Who may record each step and correction (the access matrix reads this)."""
    return {
        trigger: step.roles
        for trigger, step in _entries.items()
        if is_step(trigger) or trigger in CORRECTION_TRIGGERS
    }
