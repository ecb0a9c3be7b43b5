"""Team membership and emergency access; the callers' transaction writes both."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete

from tracker.audit.services import record
from tracker.core import runtime
from tracker.engine import teams
from tracker.extensions import db
from tracker.teams.models import EmergencyAccess, UserTeam
from tracker.teams.scope import forget, team_codes

REASON_MIN, REASON_MAX = 10, 500


class AccessError(Exception):
    """Words for the person who asked."""


def set_teams(user, codes: list[str], actor=None) -> bool:
    """Make ``user`` a member of exactly ``codes``; False when nothing changed. Audited
    with the teams before and after."""
    known = teams.codes()
    unknown = [c for c in codes if c not in known]
    if unknown:
        raise AccessError(f"Unknown team {', '.join(unknown)}: choose from {', '.join(known)}.")
    before, after = team_codes(user), sorted(set(codes))
    if before == after:
        return False
    db.session.execute(delete(UserTeam).where(UserTeam.user_id == user.id))
    db.session.add_all(UserTeam(user_id=user.id, team=code) for code in after)
    forget(user)
    record(
        "update_user",
        user=actor,
        detail={
            "username": user.username,
            "fields": ["teams"],
            "changes": {"teams": {"old": before, "new": after}},
        },
    )
    return True


def minutes() -> int:
    return int(runtime.setting("EMERGENCY_ACCESS_MINUTES", 120))


def grant_emergency_access(user, patient_id: int, reason: str, now: datetime) -> EmergencyAccess:
    """Open the patient to ``user`` for the configured time, for ``reason``; the audit
    hook writes the entry."""
    reason = " ".join((reason or "").split())
    if len(reason) < REASON_MIN:
        raise AccessError(
            f"Give the clinical reason for opening this record (at least {REASON_MIN} "
            "characters), e.g. 'Emergency admission, cord compression, on call'."
        )
    if len(reason) > REASON_MAX:
        raise AccessError(f"The reason is too long: at most {REASON_MAX} characters.")
    access = EmergencyAccess(
        user=user,
        patient_id=patient_id,
        reason=reason,
        granted_at=now,
        expires_at=now + timedelta(minutes=minutes()),
    )
    db.session.add(access)
    return access
