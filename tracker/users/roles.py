"""The roles of PATHWAY.md ("Who uses it"): what each kind of user is called."""

from __future__ import annotations

ROLES = ("coordinator", "surgeon", "viewer", "admin")
ROLE_LABELS = {
    "coordinator": "Care coordinator",
    "surgeon": "Surgeon",
    "viewer": "Viewer",
    "admin": "Administrator",
}
# Those who record care: register patients, open pathways, record steps.
CLINICAL = frozenset({"coordinator", "surgeon"})


def a_role(role: str) -> str:
    """'A surgeon', 'An administrator': the role as the subject of a sentence."""
    label = ROLE_LABELS.get(role, role).lower()
    return ("An " if label[:1] in "aeiou" else "A ") + label
