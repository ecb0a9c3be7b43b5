"""JSON shapes of the API. Times are ISO 8601 with a UTC offset."""

from __future__ import annotations

from datetime import UTC, date, datetime

from tracker.engine import clocks
from tracker.engine import steps as d


def iso(value: datetime | date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value.isoformat()


def patient(p) -> dict:
    return {
        "id": p.id,
        "mrn": p.mrn,
        "nhs_number": p.nhs_number,
        "family_name": p.family_name,
        "given_name": p.given_name,
        "birth_date": iso(p.birth_date),
        "sex": p.sex,
        "gp_practice": p.gp_practice,
        "pathway_ids": [pathway.id for pathway in p.pathways],
    }


def pathway(p, now: datetime) -> dict:
    return {
        "id": p.id,
        "patient_id": p.patient_id,
        "state": p.state,
        "version": p.version,
        "referral_received_at": iso(p.referral_received_at),
        "referral_source": p.referral_source,
        "urgency": p.urgency,
        "referral_priority": p.referral_priority,
        "diagnosis_category": p.diagnosis_category,
        "tumour_site": p.tumour_site,
        "primary_cancer_site": p.primary_cancer_site,
        "presenting_symptoms": list(p.presenting_symptoms or []),
        "lead_surgeon": p.lead_surgeon.username if p.lead_surgeon else None,
        "coordinator": p.coordinator.username if p.coordinator else None,
        "recurrence_count": p.recurrence_count,
        "opened_in_error": p.in_error,
        "unreviewed_steps": p.unreviewed_steps,
        "opened_at": iso(p.opened_at),
        "closed_at": iso(p.closed_at),
        "state_entered_at": iso(p.state_entered_at),
        "next_target": None
        if p.next_target is None
        else {
            "target": p.next_target,
            "due_at": iso(p.next_target_due_at),
            "status": clocks.status_at(p.next_target_due_at, p.next_target_warn_at, now),
        },
    }


def target(t, now: datetime) -> dict:
    return {
        "target": t.code,
        "label": t.label,
        "status": t.status,
        "started_at": iso(t.started_at),
        "due_at": iso(t.due_at),
        # A clock counted in whole days (a follow-up visit) is due by the end of this date.
        "due_on": iso(clocks.due_day(t.code, t.due_at)),
        "stopped_at": iso(t.stopped_at),
        "episode": t.episode,
        # Days paused (a declined admission); the count in words, as the page shows it.
        "adjustment_days": t.adjustment_days,
        "provisional": t.provisional,
        "count": t.arithmetic(now),
    }


def event(e, seq_of: dict[int, int]) -> dict:
    return {
        "seq": e.seq,
        "trigger": e.trigger,
        "from_state": e.from_state,
        "to_state": e.to_state,
        "occurred_at": iso(e.occurred_at),
        "recorded_at": iso(e.recorded_at),
        "recorded_by": e.recorded_by.username,
        "data": e.data,
        "request_id": e.request_id,
        "amends_seq": seq_of.get(e.amends_event_id),
        "voids_seq": seq_of.get(e.voids_event_id),
    }


def definition() -> dict:
    return {
        "states": [{"name": name, "final": final} for name, final in d.STATES.items()],
        "transitions": [
            {
                "trigger": t.trigger,
                "source": source,
                "dest": t.dest or source,
                "changes_state": t.dest is not None,
                "roles": sorted(d.roles_for(t.trigger)),
            }
            for t in d.transitions()
            for source in t.sources
        ],
        "corrections": [
            {"trigger": trigger, "roles": sorted(d.roles_for(trigger))}
            for trigger in (d.AMEND_TRIGGER, d.VOID_TRIGGER)
        ],
    }
