"""The tags a step carries in the registry (``steps.py``).

Consumers (clocks, overview, reports, MDT list, FHIR, timeline) ask the registry for
the steps with a tag, never for trigger names: a new step joins every consumer of
its tags by saying so in its one entry.
"""

from __future__ import annotations

OPENS = "opens"  # the referral that opens a pathway
CORRECTION = "correction"  # amendments and voids: not part of the clinical story
IMAGING_REPORTED = "imaging_reported"
BIOPSY_RESULT = "biopsy_result"
MDT_LISTING = "mdt_listing"  # listed for a meeting
MDT_OUTCOME = "mdt_outcome"  # carries the MDT record (set on the way from mdt_review)
MDT_DECISION = "mdt_decision"  # a decision on treatment (the plan_* steps)
DECISION_SURGERY = "decision_surgery"
DECISION_ONCOLOGY = "decision_oncology"  # the MDT chose radiotherapy or systemic therapy
DECISION_TO_TREAT = "decision_to_treat"  # the patient agreed the plan (31-day clock start)
DIAGNOSIS_COMMUNICATED = "diagnosis_communicated"  # told the diagnosis or that it is ruled out
ADJUSTMENT = "adjustment"  # a waiting-time adjustment the national rules allow
UPGRADE = "upgrade"  # a consultant upgrade onto the 62-day standard
OPERATION = "operation"
COMPLICATION = "complication"
REHABILITATION_STARTED = "rehabilitation_started"
ONCOLOGY_STARTED = "oncology_started"
TREATMENT_STARTED = "treatment_started"  # first definitive treatment, as CWT counts it
FOLLOW_UP = "follow_up"
FOLLOW_UP_BOOKED = "follow_up_booked"  # names the next follow-up visit's date (next_due)
HANDOVER = "handover"  # a new lead surgeon and/or coordinator
NEW_EPISODE = "new_episode"  # a suspected recurrence: a new episode, recurrence count + 1
SIGN_OFF = "sign_off"
NOTE = "note"
LESION = "lesion"  # charts one lesion (record_lesion): its site, finding and scores
TREND = "trend"  # carries values charted over time (ASIA, pain, ECOG, Karnofsky, scores)
VOID_TRANSPARENT = "void_transparent"  # may follow a step without stopping its void
TRACKING_NOTE = "tracking_note"  # the coordinator's short tracking comment (worklist, PTL)
TASK_ADDED = "task_added"  # a next action: what, owner, due date (a pathway_task row)
TASK_CHANGED = "task_changed"  # an open task given a new owner and/or due date
TASK_DONE = "task_done"
TASK_CANCELLED = "task_cancelled"
# Administrative tracking (the coordinator's note and tasks): no surgeon's sign-off needed.
TRACKING = frozenset({TRACKING_NOTE, TASK_ADDED, TASK_CHANGED, TASK_DONE, TASK_CANCELLED})
ALL = frozenset(
    {
        OPENS,
        CORRECTION,
        IMAGING_REPORTED,
        BIOPSY_RESULT,
        MDT_LISTING,
        MDT_OUTCOME,
        MDT_DECISION,
        DECISION_SURGERY,
        DECISION_ONCOLOGY,
        DECISION_TO_TREAT,
        DIAGNOSIS_COMMUNICATED,
        ADJUSTMENT,
        UPGRADE,
        OPERATION,
        COMPLICATION,
        REHABILITATION_STARTED,
        ONCOLOGY_STARTED,
        TREATMENT_STARTED,
        FOLLOW_UP,
        FOLLOW_UP_BOOKED,
        HANDOVER,
        NEW_EPISODE,
        SIGN_OFF,
        NOTE,
        LESION,
        TREND,
        VOID_TRANSPARENT,
        TRACKING_NOTE,
        TASK_ADDED,
        TASK_CHANGED,
        TASK_DONE,
        TASK_CANCELLED,
    }
)
