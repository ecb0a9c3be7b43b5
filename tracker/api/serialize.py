"""JSON shapes of the API. Times are ISO 8601 with a UTC offset."""

from __future__ import annotations

from datetime import UTC, date, datetime

from tracker.engine import clocks
from tracker.engine import steps as d
from tracker.engine.lesions import READING_KEYS as LESION_READING_KEYS
from tracker.engine.scores import mirels_recommendation


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
        "tracking_note": p.tracking_note,
        "tracking_note_at": iso(p.tracking_note_at),
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


def lesion(lesion) -> dict:
    """One lesion of the pathway (``tracker.engine.lesions``): where it is, its latest
    finding and scores, each dated reading and the steps that name it."""

    def latest(key: str, band: str | None = None) -> dict | None:
        reading = lesion.latest(key)
        if reading is None:
            return None
        out = {"value": reading.get(key), "seq": reading.seq, "occurred_at": iso(reading.at)}
        if band:
            out["band"] = reading.get(band)
        return out

    mirels = latest("mirels_total", "mirels_band")
    if mirels is not None:
        mirels["recommendation"] = mirels_recommendation(mirels["value"])
    return {
        "ref": lesion.ref,
        "site": lesion.site,
        "levels": lesion.levels,
        "bone": lesion.bone,
        "side": lesion.side,
        "charted_seq": lesion.first_seq,
        "from_referral": lesion.from_referral,
        "finding": lesion.finding,
        "latest": {
            "sins": latest("sins_total", "sins_band"),
            "bilsky_grade": latest("bilsky_grade"),
            "mirels": mirels,
        },
        "readings": [
            {
                "seq": r.seq,
                "occurred_at": iso(r.at),
                "trigger": r.trigger,
                **{k: r.get(k) for k in LESION_READING_KEYS},
            }
            for r in sorted(lesion.readings, key=lambda r: (r.at, r.seq))
        ],
        "linked": [
            {"seq": link.seq, "occurred_at": iso(link.at), "trigger": link.trigger}
            for link in lesion.links
        ],
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


def task(t, today: date) -> dict:
    """One task of a pathway (a ``pathway_task`` row)."""
    return {
        "id": t.id,
        "number": t.seq,
        "what": t.what,
        "owner": t.owner.username,
        "due_on": iso(t.due_on),
        "status": t.status,
        "overdue": t.overdue(today),
        "created_at": iso(t.created_at),
        "closed_seq": t.closed_seq,
        "closed_at": iso(t.closed_at),
        "close_note": t.close_note,
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
