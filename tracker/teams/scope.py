"""Which patients a user may see: the SQL conditions every list adds, and the checks
every page and API call of one record makes. Written once, here."""

from __future__ import annotations

from datetime import datetime

from flask import g, has_app_context
from sqlalchemy import exists, func, or_, select, true

from tracker.engine import counts, teams
from tracker.engine.models import Pathway
from tracker.extensions import db
from tracker.teams.models import EmergencyAccess, UserTeam


def _cache() -> dict:
    """user id -> teams, read once per request (``g`` lives as long as one)."""
    if not has_app_context():
        return {}
    return g.setdefault("team_codes", {})


def team_codes(user) -> list[str]:
    """The teams ``user`` belongs to."""
    cache = _cache()
    if user.id not in cache:
        cache[user.id] = list(
            db.session.scalars(
                select(UserTeam.team).where(UserTeam.user_id == user.id).order_by(UserTeam.team)
            )
        )
    return cache[user.id]


def forget(user) -> None:
    """After a change of ``user``'s teams."""
    _cache().pop(user.id, None)


def sees_every_team(user) -> bool:
    return set(teams.codes()) <= set(team_codes(user))


def _granted(user, now: datetime):
    """The patients ``user`` holds emergency access to at ``now``."""
    return select(EmergencyAccess.patient_id).where(
        EmergencyAccess.user_id == user.id, EmergencyAccess.expires_at > now
    )


def pathways(user, now: datetime):
    """The condition on ``Pathway`` for the pathways ``user`` may see."""
    if sees_every_team(user):
        return true()
    return or_(Pathway.team.in_(team_codes(user)), Pathway.patient_id.in_(_granted(user, now)))


def patients(user, now: datetime, patient_id):
    """The condition on a patient id column (``Patient.id``) for the patients ``user``
    may see: one of their pathways is in the user's teams, or they have none yet (just
    registered, waiting for their first pathway), or the user holds emergency access."""
    if sees_every_team(user):
        return true()
    has_any = exists().where(Pathway.patient_id == patient_id)
    in_team = exists().where(Pathway.patient_id == patient_id, Pathway.team.in_(team_codes(user)))
    return or_(in_team, ~has_any, patient_id.in_(_granted(user, now)))


def grant(user, patient_id: int, now: datetime) -> EmergencyAccess | None:
    """The emergency access ``user`` holds to the patient at ``now``, if any."""
    return db.session.scalar(
        select(EmergencyAccess)
        .where(
            EmergencyAccess.user_id == user.id,
            EmergencyAccess.patient_id == patient_id,
            EmergencyAccess.expires_at > now,
        )
        .order_by(EmergencyAccess.expires_at.desc())
        .limit(1)
    )


def patient_teams(patient_id: int) -> list[str]:
    return sorted(
        set(db.session.scalars(select(Pathway.team).where(Pathway.patient_id == patient_id)))
    )


def outside(user, patient_id: int, teams: list[str]) -> bool:
    """Whether a patient whose pathways are in ``teams`` lies outside ``user``'s teams
    (a patient with no pathway yet lies inside everyone's)."""
    return bool(teams) and not set(teams) & set(team_codes(user))


def hidden_from(user, patient_id: int, now: datetime) -> bool:
    """Whether ``user`` may not see the patient at ``now``: outside their teams and
    without emergency access (what a refusal that names another patient must check)."""
    return (
        outside(user, patient_id, patient_teams(patient_id))
        and grant(user, patient_id, now) is None
    )


def open_by_state(user, now: datetime) -> dict[str, int]:
    """Open pathways per state that ``user`` sees: the counters kept on write when they
    see every team, else a count of their teams' rows."""
    if sees_every_team(user):
        return counts.open_by_state(db.session)
    rows = db.session.execute(
        select(Pathway.state, func.count())
        .where(Pathway.closed_at.is_(None), pathways(user, now))
        .group_by(Pathway.state)
    ).all()
    return {state: int(total) for state, total in rows if total}
