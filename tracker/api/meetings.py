"""/api/v1/mdt-meetings: the MDT meetings, one meeting with its cases, attendance and
quoracy, creating a meeting and listing a pathway on one. The same services as the pages
(``tracker.mdt.services``; a listing is the pathway's ``schedule_mdt`` step), the same
tokens, roles and teams as the rest of the API: a case of another team's patient shows
its place on the list and nothing of the patient."""

from __future__ import annotations

import re
from datetime import date

from flask import g, jsonify, request
from sqlalchemy import func, select

from tracker.api import base, serialize
from tracker.api.base import PAGE_SIZE, ApiError, bp, query_parameters
from tracker.engine import services, teams
from tracker.engine.history import History
from tracker.engine.models import Pathway
from tracker.extensions import db
from tracker.mdt import agenda
from tracker.mdt import services as mdt
from tracker.mdt.models import MdtCase, MdtMeeting

DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
HOUR_MINUTE = re.compile(r"[0-9]{2}:[0-9]{2}")
MEETING_FIELDS = ("team", "meeting_date", "start_time", "location", "video_link", "chair")
CASE_FIELDS = ("question", "presenter", "triage", "late_reason")


def meeting_json(meeting: MdtMeeting, cases: int) -> dict:
    return {
        "id": meeting.id,
        "team": meeting.team,
        "team_label": teams.label(meeting.team),
        "meeting_date": meeting.meeting_date.isoformat(),
        "start_time": meeting.start_time.strftime("%H:%M"),
        "starts_at": serialize.iso(mdt.starts_at(meeting)),
        "list_closes_at": serialize.iso(mdt.closes_at(meeting)),
        "location": meeting.location,
        "video_link": meeting.video_link,
        "chair": meeting.chair.username if meeting.chair else None,
        "status": meeting.status,
        "cases": cases,
    }


def _case_json(item: agenda.AgendaCase, past: bool, quorate: bool = True) -> dict:
    case = item.case
    out = {"id": case.id, "position": item.number, "other_team": not item.visible}
    if not item.visible:
        return out
    outcome = item.outcome
    return {
        **out,
        "pathway_id": case.pathway_id,
        "patient_id": case.pathway.patient_id,
        "question": case.question,
        "presenter": case.presenter.username,
        "triage": case.triage,
        "late_reason": case.late_reason,
        "listed_at": serialize.iso(case.listed_at),
        "listing_seq": next(
            (s.seq for s in item.history.steps if s.event and s.event.id == case.event_id), None
        ),
        "outcome": {
            "trigger": outcome.trigger,
            "decision": agenda.decision_words(outcome),
            "seq": outcome.seq,
            "occurred_at": serialize.iso(outcome.occurred_at),
            "inquorate": not quorate,
        }
        if outcome
        else None,
        "outcome_outstanding": past and item.outstanding,
        "rolled_to_meeting_id": case.rolled_to_id,
    }


def _meeting(meeting_id: int) -> MdtMeeting:
    meeting = db.session.get(MdtMeeting, meeting_id) if 0 < meeting_id < 2**31 else None
    if meeting is None:
        raise ApiError(404, "not_found", f"No MDT meeting {meeting_id}.")
    return meeting


def _detail(meeting: MdtMeeting) -> dict:
    now = base.now()
    items = agenda.build(meeting, g.api_user, now)
    past = now >= mdt.starts_at(meeting)
    quorum = mdt.quorum(meeting)
    return {
        **meeting_json(meeting, len(items)),
        "items": [_case_json(item, past, quorum.quorate) for item in items],
        "attendance": [
            {
                "user": a.user.username,
                "name": a.user.display_name,
                "specialty": a.specialty,
            }
            for a in meeting.attendance
        ],
        "quorum": {
            "quorate": quorum.quorate,
            "needed": list(quorum.needed),
            "missing": list(quorum.missing),
        },
    }


@bp.get("/v1/mdt-meetings")
@query_parameters("team", "from", "page")
def list_mdt_meetings():
    args = request.args
    query = select(MdtMeeting)
    team = args.get("team")
    if team is not None:
        if team not in teams.codes():
            raise ApiError(
                422,
                "invalid_data",
                "Unknown team.",
                {"team": [f"must be one of: {', '.join(teams.codes())}"]},
            )
        query = query.where(MdtMeeting.team == team)
    start = args.get("from")
    if start is not None:
        day = _day(start)
        if day is None:
            raise ApiError(422, "invalid_data", "Bad date.", {"from": ["a date, YYYY-MM-DD"]})
        query = query.where(MdtMeeting.meeting_date >= day)
    page = base.page_number(args)
    total = db.session.scalar(select(func.count()).select_from(query.subquery()))
    rows = db.session.scalars(
        query.order_by(MdtMeeting.meeting_date, MdtMeeting.start_time, MdtMeeting.id)
        .limit(PAGE_SIZE)
        .offset((page - 1) * PAGE_SIZE)
    ).all()
    ids = [m.id for m in rows]
    counts = dict(
        db.session.execute(
            select(MdtCase.meeting_id, func.count())
            .where(MdtCase.meeting_id.in_(ids))
            .group_by(MdtCase.meeting_id)
        ).all()
        if ids
        else []
    )
    return jsonify(
        {
            "items": [meeting_json(m, counts.get(m.id, 0)) for m in rows],
            "total": total,
            "page": page,
            "page_size": PAGE_SIZE,
        }
    )


def _strings(body: dict, names: tuple[str, ...], what: str) -> dict:
    unknown = sorted(set(body) - set(names))
    if unknown:
        raise ApiError(
            422,
            "invalid_data",
            "Unknown fields.",
            {name: [f"is not a field of {what}"] for name in unknown},
        )
    wrong = {
        name: [f"{name} must be text"]
        for name in names
        if body.get(name) is not None and not isinstance(body[name], str)
    }
    if wrong:
        raise ApiError(422, "invalid_data", "Please correct the request.", wrong)
    return {name: body[name] for name in names if body.get(name) is not None}


def _day(text: str) -> date | None:
    """A date written YYYY-MM-DD (as the schema's "date" format), or None."""
    if not DAY.fullmatch(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


@bp.post("/v1/mdt-meetings")
def create_mdt_meeting():
    values = _strings(base.json_body(), MEETING_FIELDS, "a meeting")
    # As the schema writes them (the pages' forms send no other shape).
    errors = {}
    if "meeting_date" in values and _day(values["meeting_date"]) is None:
        errors["meeting_date"] = ["Give the meeting's date as YYYY-MM-DD"]
    if "start_time" in values and not HOUR_MINUTE.fullmatch(values["start_time"]):
        errors["start_time"] = ["Give the start time as HH:MM, e.g. 08:00"]
    if errors:
        raise ApiError(422, "invalid_data", "Please correct the request.", errors)
    meeting = mdt.create_meeting({**values, "status": "scheduled"}, g.api_user)
    return jsonify(_detail(meeting)), 201


@bp.get("/v1/mdt-meetings/<anyint:meeting_id>")
def get_mdt_meeting(meeting_id: int):
    return jsonify(_detail(_meeting(meeting_id)))


@bp.post("/v1/mdt-meetings/<anyint:meeting_id>/cases")
def list_mdt_case(meeting_id: int):
    meeting, body = _meeting(meeting_id), base.json_body()
    pathway_id = body.pop("pathway_id", None)
    version, request_id = body.pop("expected_version", None), body.pop("request_id", None)
    errors = {}
    if not isinstance(pathway_id, int) or isinstance(pathway_id, bool):
        errors["pathway_id"] = ["pathway_id is the id of the pathway to list"]
    errors.update(base.write_errors(version, request_id))
    if errors:
        raise ApiError(422, "invalid_data", "Please correct the request.", errors)
    values = _strings(body, CASE_FIELDS, "a listing")
    if not 0 < pathway_id < 2**31:
        raise ApiError(404, "not_found", f"No pathway {pathway_id}.")
    pathway: Pathway = base.load_pathway(pathway_id)
    result = services.record(
        pathway,
        mdt.LISTING,
        {**values, "meeting_id": meeting.id},
        base.now(),
        g.api_user,
        version,
        request_id,
    )
    case = db.session.scalar(select(MdtCase).where(MdtCase.event_id == result.event.id))
    if case is None:  # a replay of a listing on another meeting under this request id
        raise ApiError(
            409,
            "conflict",
            "This request id already recorded another step; send a new one.",
        )
    history = History.from_events(services.load_events(pathway))
    number = 1 + sum(1 for c in meeting.cases if c.position < case.position)
    item = agenda.AgendaCase(case, number, True, history=history)
    past = base.now() >= mdt.starts_at(meeting)
    return jsonify(
        {"case": _case_json(item, past), "version": pathway.version, "state": pathway.state}
    ), (201 if result.created else 200)
