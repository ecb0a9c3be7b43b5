"""The states of PATHWAY.md: name, words, and whether the pathway ends there."""

from __future__ import annotations

# name -> (label, final)
_STATES: dict[str, tuple[str, bool]] = {
    "referred": ("Referred", False),
    "imaging": ("Imaging", False),
    "biopsy": ("Biopsy", False),
    "mdt_review": ("MDT review", False),
    "surgery_scheduled": ("Surgery scheduled", False),
    "post_op": ("Post-operative", False),
    "rehabilitation": ("Rehabilitation", False),
    "oncology_treatment": ("Oncology treatment", False),
    "palliative_care": ("Palliative care", False),
    "surveillance": ("Surveillance", False),
    "discharged": ("Discharged", True),
    "deceased": ("Deceased", True),
    "withdrawn": ("Withdrawn", True),
}
STATES: dict[str, bool] = {name: final for name, (_, final) in _STATES.items()}
STATE_LABELS: dict[str, str] = {name: label for name, (label, _) in _STATES.items()}
INITIAL_STATE = "referred"
FINAL_STATES = frozenset(name for name, final in STATES.items() if final)
ACTIVE_STATES = tuple(name for name, final in STATES.items() if not final)
EVERY_STATE = tuple(STATES)


def active_except(*names: str) -> tuple[str, ...]:
    return tuple(s for s in ACTIVE_STATES if s not in names)
