"""The teams a pathway can belong to: the MDT teams of the service, configurable.

A pathway belongs to one team; users belong to teams and see their teams' patients
(``tracker.teams``). The list is the setting ``TEAMS`` ("code=Label,..."), by default
the three MDTs of a spinal and bone tumour service. A referral names its team, or gets
the one its diagnosis category goes to; a handover can move it to another.
"""

from __future__ import annotations

import re

from tracker.core import runtime

DEFAULT_TEAMS = "spine=Spine,bone_sarcoma=Bone sarcoma,metastatic=Metastatic spine"
# Where a referral goes when it names no team: the team that sees its diagnosis.
BY_DIAGNOSIS = {
    "metastatic_spinal": "metastatic",
    "primary_spinal": "spine",
    "intradural_intramedullary": "spine",
    "primary_bone": "bone_sarcoma",
}
_CODE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def parse(raw: str) -> tuple[tuple[str, str], ...]:
    """``"code=Label,..."`` as (code, label) pairs; ValueError naming what is wrong."""
    pairs: list[tuple[str, str]] = []
    for item in (raw or "").split(","):
        if not item.strip():
            continue
        code, sep, label = item.partition("=")
        code, label = code.strip(), label.strip()
        if not sep or not label:
            raise ValueError(f"TEAMS: '{item.strip()}' needs the form code=Label")
        if not _CODE.match(code):
            raise ValueError(
                f"TEAMS: the code '{code}' must be lower-case letters, digits and _ "
                "(at most 32, starting with a letter)"
            )
        if code in dict(pairs):
            raise ValueError(f"TEAMS: '{code}' is listed twice")
        pairs.append((code, label))
    if not pairs:
        raise ValueError("TEAMS: name at least one team, e.g. TEAMS='spine=Spine'")
    return tuple(pairs)


def teams() -> tuple[tuple[str, str], ...]:
    """The configured teams, in their configured order."""
    return parse(runtime.setting("TEAMS", DEFAULT_TEAMS) or DEFAULT_TEAMS)


def codes() -> list[str]:
    return [code for code, _ in teams()]


def label(code: str | None) -> str:
    return dict(teams()).get(code or "", code or "no team")


def for_diagnosis(category: str | None) -> str:
    """The team a referral of ``category`` goes to when it names none: the usual one if
    it is configured, else the first configured team."""
    wanted = BY_DIAGNOSIS.get(category or "")
    configured = codes()
    return wanted if wanted in configured else configured[0]
