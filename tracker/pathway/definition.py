"""The pathway of PATHWAY.md as data: states, transitions, records, roles.

This table is the single source for the state machine (``machine.py``), the
allowed-trigger lists, the diagram and the API's ``/definition``.
"""

from __future__ import annotations

from dataclasses import dataclass

STATES: dict[str, bool] = {  # name -> final
    "referred": False,
    "imaging": False,
    "biopsy": False,
    "mdt_review": False,
    "surgery_scheduled": False,
    "post_op": False,
    "rehabilitation": False,
    "oncology_treatment": False,
    "palliative_care": False,
    "surveillance": False,
    "discharged": True,
    "deceased": True,
    "withdrawn": True,
}
INITIAL_STATE = "referred"
FINAL_STATES = frozenset(name for name, final in STATES.items() if final)
ACTIVE_STATES = tuple(name for name, final in STATES.items() if not final)

STATE_LABELS = {
    "referred": "Referred",
    "imaging": "Imaging",
    "biopsy": "Biopsy",
    "mdt_review": "MDT review",
    "surgery_scheduled": "Surgery scheduled",
    "post_op": "Post-operative",
    "rehabilitation": "Rehabilitation",
    "oncology_treatment": "Oncology treatment",
    "palliative_care": "Palliative care",
    "surveillance": "Surveillance",
    "discharged": "Discharged",
    "deceased": "Deceased",
    "withdrawn": "Withdrawn",
}

EVERY_STATE = tuple(STATES)


@dataclass(frozen=True)
class Transition:
    trigger: str
    sources: tuple[str, ...]
    dest: str | None  # None: a record that leaves the state as it is
    conditions: tuple[str, ...] = ()  # guard method names on the Pathway model


# Guards are named after what they check on the recorded events (see models.Pathway).
TRANSITIONS: tuple[Transition, ...] = (
    Transition("request_imaging", ("referred",), "imaging"),
    Transition("request_imaging", ("mdt_review",), "imaging", ("guard_mdt_outcome",)),
    Transition("request_biopsy", ("imaging",), "biopsy", ("guard_imaging_reported",)),
    Transition("request_biopsy", ("mdt_review",), "biopsy", ("guard_mdt_outcome",)),
    Transition("refer_to_mdt", ("imaging",), "mdt_review", ("guard_imaging_reported",)),
    Transition("refer_to_mdt", ("biopsy",), "mdt_review", ("guard_biopsy_recorded",)),
    Transition(
        "refer_to_mdt",
        ("surgery_scheduled", "post_op", "oncology_treatment"),
        "mdt_review",
        ("guard_reason_given",),
    ),
    Transition("plan_surgery", ("mdt_review",), "surgery_scheduled", ("guard_mdt_outcome",)),
    Transition("plan_oncology", ("mdt_review",), "oncology_treatment", ("guard_mdt_outcome",)),
    Transition("plan_palliative", ("mdt_review",), "palliative_care", ("guard_mdt_outcome",)),
    Transition("plan_surveillance", ("mdt_review",), "surveillance", ("guard_mdt_outcome",)),
    Transition(
        "record_surgery",
        ("surgery_scheduled",),
        "post_op",
        ("guard_operation_details", "guard_not_before_mdt_decision"),
    ),
    Transition("start_rehabilitation", ("post_op", "oncology_treatment"), "rehabilitation"),
    Transition("start_oncology_treatment", ("post_op", "rehabilitation"), "oncology_treatment"),
    Transition(
        "start_surveillance", ("post_op", "rehabilitation", "oncology_treatment"), "surveillance"
    ),
    Transition("suspect_recurrence", ("surveillance",), "imaging"),
    Transition(
        "start_palliative_care",
        tuple(s for s in ACTIVE_STATES if s != "palliative_care"),
        "palliative_care",
    ),
    Transition("discharge", ("surveillance",), "discharged", ("guard_follow_up_clear",)),
    Transition("discharge", ("rehabilitation", "palliative_care"), "discharged"),
    Transition("record_death", ACTIVE_STATES, "deceased"),
    Transition("withdraw", ACTIVE_STATES, "withdrawn", ("guard_reason_given",)),
    # Records: logged on the timeline, the state stays.
    Transition("record_imaging", ("imaging", "surveillance"), None),
    Transition("record_biopsy", ("biopsy",), None),
    Transition("schedule_mdt", ("mdt_review",), None),
    Transition("record_preop_assessment", ("surgery_scheduled",), None),
    Transition(
        "record_complication",
        ("post_op", "rehabilitation", "oncology_treatment", "surveillance"),
        None,
    ),
    Transition("record_therapy_session", ("rehabilitation",), None),
    Transition("record_treatment", ("oncology_treatment",), None),
    Transition("record_follow_up", ("surveillance",), None),
    Transition("record_assessment", ACTIVE_STATES, None),
    Transition("sign_off", EVERY_STATE, None),
    Transition("add_note", EVERY_STATE, None),
)

# Corrections are events too, but they are not transitions of the machine: an
# amendment changes no state, and a void returns to the state before a step.
OPEN_TRIGGER = "open_pathway"
AMEND_TRIGGER = "amend_event"
VOID_TRIGGER = "void_last_step"
CORRECTION_TRIGGERS = frozenset({AMEND_TRIGGER, VOID_TRIGGER})

TRIGGERS: tuple[str, ...] = tuple(dict.fromkeys(t.trigger for t in TRANSITIONS))
STATE_CHANGING_TRIGGERS = frozenset(t.trigger for t in TRANSITIONS if t.dest is not None)
MDT_DECISIONS = ("plan_surgery", "plan_oncology", "plan_palliative", "plan_surveillance")
# An MDT outcome: the four plan_* triggers, and further investigation asked from mdt_review.
MDT_OUTCOME_SOURCES = {
    "plan_surgery": "mdt_review",
    "plan_oncology": "mdt_review",
    "plan_palliative": "mdt_review",
    "plan_surveillance": "mdt_review",
    "request_imaging": "mdt_review",
    "request_biopsy": "mdt_review",
}

TRIGGER_LABELS = {
    OPEN_TRIGGER: "Referral received",
    "request_imaging": "Request imaging",
    "request_biopsy": "Request biopsy",
    "refer_to_mdt": "Refer to MDT",
    "plan_surgery": "MDT decision: surgery",
    "plan_oncology": "MDT decision: oncology treatment",
    "plan_palliative": "MDT decision: palliative care",
    "plan_surveillance": "MDT decision: surveillance",
    "record_surgery": "Record operation",
    "start_rehabilitation": "Start rehabilitation",
    "start_oncology_treatment": "Start oncology treatment",
    "start_surveillance": "Start surveillance",
    "suspect_recurrence": "Suspected recurrence",
    "start_palliative_care": "Start palliative care",
    "discharge": "Discharge",
    "record_death": "Record death",
    "withdraw": "Withdraw from pathway",
    "record_imaging": "Imaging reported",
    "record_biopsy": "Biopsy result",
    "schedule_mdt": "MDT meeting scheduled",
    "record_preop_assessment": "Pre-operative assessment",
    "record_complication": "Complication",
    "record_therapy_session": "Therapy session",
    "record_treatment": "Oncology treatment given",
    "record_follow_up": "Follow-up visit",
    "record_assessment": "Clinical assessment",
    "sign_off": "Surgeon sign-off",
    "add_note": "Note",
    AMEND_TRIGGER: "Amendment",
    VOID_TRIGGER: "Step voided",
}

ROLES = ("coordinator", "surgeon", "viewer", "admin")
ROLE_LABELS = {
    "coordinator": "Care coordinator",
    "surgeon": "Surgeon",
    "viewer": "Viewer",
    "admin": "Administrator",
}

_CLINICAL = frozenset({"coordinator", "surgeon"})
# Who may fire each trigger: beside the transition table, as data.
TRIGGER_ROLES: dict[str, frozenset[str]] = {trigger: _CLINICAL for trigger in TRIGGERS}
TRIGGER_ROLES["sign_off"] = frozenset({"surgeon"})
TRIGGER_ROLES[AMEND_TRIGGER] = _CLINICAL
# PATHWAY.md: a void is for whoever recorded the step (within 24 hours) and administrators.
TRIGGER_ROLES[VOID_TRIGGER] = frozenset({"coordinator", "surgeon", "admin"})
# Opening a pathway and registering a patient.
REGISTER_ROLES = _CLINICAL
VOID_WINDOW_HOURS = 24


def a_role(role: str) -> str:
    """'A surgeon', 'An administrator': the role as the subject of a sentence."""
    label = ROLE_LABELS.get(role, role).lower()
    return ("An " if label[:1] in "aeiou" else "A ") + label


def role_may(role: str | None, trigger: str) -> bool:
    return role is not None and role in TRIGGER_ROLES.get(trigger, frozenset())


def transition_for(trigger: str, source: str) -> Transition | None:
    for transition in TRANSITIONS:
        if transition.trigger == trigger and source in transition.sources:
            return transition
    return None


def is_mdt_outcome(trigger: str, source: str) -> bool:
    return MDT_OUTCOME_SOURCES.get(trigger) == source
