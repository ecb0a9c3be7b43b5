"""/api/v1: JSON for other hospital systems, through the same services as the web app:
patients, pathways and their events, tasks, FHIR, the PTL and the monthly return. The
frame every call shares (authentication, errors, reading a request) is ``base``."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime

from flask import g, jsonify, request
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from tracker.api import base, serialize
from tracker.api.base import PAGE_SIZE, ApiError, bp, query_parameters
from tracker.api.fhir import bundle
from tracker.api.openapi import document
from tracker.core.clock import local_date
from tracker.engine import clocks, services
from tracker.engine import steps as d
from tracker.engine.models import Event, Pathway
from tracker.extensions import db
from tracker.patients import services as patient_services
from tracker.patients.errors import DuplicateMRN, DuplicateNHSNumber, DuplicatePatient
from tracker.patients.fields import PATIENT_FIELDS
from tracker.patients.models import Patient
from tracker.returns import queries as returns
from tracker.teams import scope
from tracker.tracking import services as tracking
from tracker.web.auditing import record_refusal
from tracker.web.boundary import discard, keep


@bp.get("/v1/definition")
def definition():
    return jsonify(serialize.definition())


@bp.post("/v1/patients")
def create_patient():
    body = base.json_body()
    fields = {f.name: body.get(f.name) for f in PATIENT_FIELDS}
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise ApiError(
            422,
            "invalid_data",
            "Unknown fields.",
            {name: [patient_services.NOT_A_FIELD] for name in unknown},
        )
    try:
        patient = patient_services.register_patient(g.api_user, **fields)
    except DuplicatePatient as exc:
        discard()
        raise _duplicate(exc) from None
    except IntegrityError:
        discard()
        raise _taken_a_moment_ago(body) from None
    return jsonify(serialize.patient(patient)), 201


@bp.get("/v1/patients/<anyint:patient_id>")
def get_patient(patient_id: int):
    return jsonify(serialize.patient(_load_patient(patient_id)))


@bp.patch("/v1/patients/<anyint:patient_id>")
def update_patient(patient_id: int):
    patient, body = _load_patient(patient_id), base.json_body()
    try:
        changes = patient_services.update_patient(g.api_user, patient, body)
    except DuplicatePatient as exc:
        discard()
        raise _duplicate(exc) from None
    except IntegrityError:
        discard()
        raise _taken_a_moment_ago(body, _load_patient(patient_id)) from None
    return jsonify(
        {
            "patient": serialize.patient(patient),
            "changed": list(changes),
            "message": patient_services.changed_words(changes),
        }
    )


def _load_patient(patient_id: int) -> Patient:
    patient = db.session.get(Patient, patient_id) if patient_id < 2**31 else None
    if patient is None:
        raise ApiError(404, "not_found", f"No patient {patient_id}.")
    base.in_teams(patient.id, scope.patient_teams(patient.id))
    return patient


def _duplicate(exc: DuplicatePatient) -> ApiError:
    """409, naming the field and (as the web page links it) the patient who has it, unless
    that patient is another team's and the caller holds no emergency access to them: then
    neither name, MRN nor id. The refusal is audited."""
    holder = exc.patient
    if scope.hidden_from(g.api_user, holder.id, base.now()):
        record_refusal(f"{exc.label} already registered to a patient of another team", holder.id)
        keep()
        message = exc.for_another_team
        return ApiError(409, exc.code, message, {exc.field: [message]}, other_team=True)
    record_refusal(f"{exc.label} already registered", holder.id)
    keep()
    return ApiError(409, exc.code, exc.message, {exc.field: [exc.message]}, patient_id=holder.id)


def _taken_a_moment_ago(body: dict, patient: Patient | None = None) -> ApiError:
    """The unique indexes refused what the check let through: another request took the MRN
    or NHS number at the same moment. Answered as the check would answer now, naming the
    patient who has it."""
    mrn, nhs_number = body.get("mrn"), body.get("nhs_number")
    holders = (
        (DuplicateMRN, patient_services.find_by_mrn(mrn) if isinstance(mrn, str) else None),
        (
            DuplicateNHSNumber,
            patient_services.find_by_nhs_number(nhs_number)
            if isinstance(nhs_number, str)
            else None,
        ),
    )
    for error, holder in holders:
        if holder is not None and holder is not patient:
            return _duplicate(error(holder))
    return ApiError(
        409, "conflict", "This MRN or NHS number was registered a moment ago; check and send again."
    )


@bp.post("/v1/pathways")
def create_pathway():
    body = base.json_body()
    patient_id = body.pop("patient_id", None)
    request_id = body.pop("request_id", None)
    if not isinstance(patient_id, int) or isinstance(patient_id, bool):
        raise ApiError(
            422,
            "invalid_data",
            "patient_id is required.",
            {"patient_id": ["patient_id must be the id of a registered patient"]},
        )
    patient = db.session.get(Patient, patient_id) if 0 < patient_id < 2**31 else None
    if patient is None:
        raise ApiError(
            404,
            "not_found",
            f"No patient has the id {patient_id}.",
            {"patient_id": [f"No patient has the id {patient_id}"]},
        )
    base.in_teams(patient.id, scope.patient_teams(patient.id))
    if request_id is not None and not isinstance(request_id, str):
        raise ApiError(
            422,
            "invalid_data",
            "request_id must be text.",
            {"request_id": ["A request id of 1 to 64 characters"]},
        )
    try:
        pathway = services.open_pathway(g.api_user, patient, request_id=request_id, **body)
    except TypeError:
        discard()
        raise ApiError(422, "invalid_data", "Unknown fields in the pathway.") from None
    return jsonify(serialize.pathway(pathway, base.now())), 201


@bp.get("/v1/pathways")
@query_parameters("state", "urgency", "target_status", "page")
def list_pathways():
    args, now = request.args, base.now()
    query = select(Pathway).where(scope.pathways(g.api_user, now))
    state = args.get("state")
    if state:
        if state not in d.STATES:
            raise ApiError(
                422,
                "invalid_data",
                "Unknown state.",
                {"state": [f"must be one of: {', '.join(d.STATES)}"]},
            )
        query = query.where(Pathway.state == state)
    urgency = args.get("urgency")
    if urgency:
        if urgency not in ("emergency", "urgent", "routine"):
            raise ApiError(
                422,
                "invalid_data",
                "Unknown urgency.",
                {"urgency": ["must be one of: emergency, urgent, routine"]},
            )
        query = query.where(Pathway.urgency == urgency)
    status = args.get("target_status")
    if status:
        conditions = {
            "breached": Pathway.next_target_due_at < now,
            "due_soon": (Pathway.next_target_warn_at <= now) & (Pathway.next_target_due_at >= now),
            "pending": Pathway.next_target_warn_at > now,
            "none": Pathway.next_target.is_(None),
        }
        if status not in conditions:
            raise ApiError(
                422,
                "invalid_data",
                "Unknown target status.",
                {"target_status": [f"must be one of: {', '.join(conditions)}"]},
            )
        query = query.where(conditions[status])
    page = base.page_number(args)
    total = db.session.scalar(select(func.count()).select_from(query.subquery()))
    rows = db.session.scalars(
        query.order_by(Pathway.id).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)
    ).all()
    return jsonify(
        {
            "items": [serialize.pathway(p, now) for p in rows],
            "total": total,
            "page": page,
            "page_size": PAGE_SIZE,
        }
    )


@bp.get("/v1/pathways/<anyint:pathway_id>")
def get_pathway(pathway_id: int):
    pathway, now = base.load_pathway(pathway_id), base.now()
    history = services.load_history(pathway)
    body = serialize.pathway(pathway, now)
    body["allowed_triggers"] = services.allowed_triggers(pathway, g.api_user, history)
    body["targets"] = [
        serialize.target(t, now)
        for t in clocks.compute(
            pathway.urgency, pathway.referral_received_at, history, now, pathway.closed_at
        )
    ]
    body["lesions"] = [serialize.lesion(lesion) for lesion in history.lesions()]
    return jsonify(body)


def _corrected_seqs(event: Event) -> dict[int, int]:
    """The step number of the event ``event`` amends or voids, by its id (an answer names
    one event; the list of events reads them all at once)."""
    ids = [i for i in (event.amends_event_id, event.voids_event_id) if i is not None]
    if not ids:
        return {}
    return dict(db.session.execute(select(Event.id, Event.seq).where(Event.id.in_(ids))).all())


@bp.get("/v1/pathways/<anyint:pathway_id>/events")
def list_events(pathway_id: int):
    events = services.load_events(base.load_pathway(pathway_id))
    seq_of = {e.id: e.seq for e in events}
    return jsonify({"items": [serialize.event(e, seq_of) for e in events]})


@bp.post("/v1/pathways/<anyint:pathway_id>/events")
def record_event(pathway_id: int):
    pathway, body = base.load_pathway(pathway_id), base.json_body()
    unknown = sorted(
        set(body) - {"trigger", "occurred_at", "expected_version", "request_id", "data"}
    )
    if unknown:
        raise ApiError(
            422,
            "invalid_data",
            "Unknown fields.",
            {name: ["is not a field of an event"] for name in unknown},
        )
    trigger, data = body.get("trigger"), body.get("data") or {}
    version, request_id = body.get("expected_version"), body.get("request_id")
    errors = {}
    if not isinstance(trigger, str):
        errors["trigger"] = ["trigger is required"]
    errors.update(base.write_errors(version, request_id))
    if not isinstance(data, dict):
        errors["data"] = ["data must be an object"]
    if errors:
        raise ApiError(422, "invalid_data", "Please correct the request.", errors)
    if trigger == d.AMEND_TRIGGER:
        result = services.amend(
            pathway,
            data.get("event_seq"),
            data.get("changes"),
            data.get("reason"),
            g.api_user,
            version,
            request_id,
        )
    elif trigger == d.VOID_TRIGGER:
        result = services.void_last_step(
            pathway, data.get("reason"), g.api_user, version, request_id
        )
    else:
        result = services.record(
            pathway, trigger, data, body.get("occurred_at"), g.api_user, version, request_id
        )
    if not result.created:
        # Read again, not from the session's copy: a replay answers with the pathway as it
        # is now, though this request read it before the original was committed.
        db.session.refresh(pathway)
    return jsonify(
        {
            "event": serialize.event(result.event, _corrected_seqs(result.event)),
            "state": pathway.state,
            "version": pathway.version,
        }
    ), (201 if result.created else 200)


# -- tasks ----------------------------------------------------------------------------------

TASK_ACTIONS = ("complete", "cancel", "update")
_TASK_IN = {"what", "owner", "due_on", "note", "occurred_at", "expected_version", "request_id"}
_TASK_CHANGE_IN = {
    "action",
    "reason",
    "owner",
    "due_on",
    "note",
    "occurred_at",
    "expected_version",
    "request_id",
}


def _tasks_body(allowed: set[str]) -> tuple[dict, int, str]:
    """The body of a task call: the known fields, the version and the request id."""
    body = base.json_body()
    errors = {name: ["is not a field of this call"] for name in sorted(set(body) - allowed)}
    version, request_id = body.get("expected_version"), body.get("request_id")
    errors.update(base.write_errors(version, request_id))
    if errors:
        raise ApiError(422, "invalid_data", "Please correct the request.", errors)
    return body, version, request_id


def _task_answer(pathway: Pathway, result, number: int):
    db.session.refresh(pathway)
    row = next(t for t in tracking.tasks_of(pathway) if t.seq == number)
    return jsonify(
        {
            "task": serialize.task(row, local_date(base.now())),
            "event": serialize.event(result.event, _corrected_seqs(result.event)),
            "version": pathway.version,
        }
    ), (201 if result.created else 200)


@bp.get("/v1/pathways/<anyint:pathway_id>/tasks")
def list_tasks(pathway_id: int):
    pathway = base.load_pathway(pathway_id)
    today = local_date(base.now())
    return jsonify(
        {
            "items": [serialize.task(t, today) for t in tracking.tasks_of(pathway)],
            "tracking_note": pathway.tracking_note,
            "tracking_note_at": serialize.iso(pathway.tracking_note_at),
        }
    )


@bp.post("/v1/pathways/<anyint:pathway_id>/tasks")
def create_task(pathway_id: int):
    pathway = base.load_pathway(pathway_id)
    body, version, request_id = _tasks_body(_TASK_IN)
    result = tracking.add_task(
        pathway,
        body.get("what"),
        body.get("owner"),
        body.get("due_on"),
        g.api_user,
        note=body.get("note"),
        expected_version=version,
        request_id=request_id,
        occurred_at=body.get("occurred_at"),
    )
    return _task_answer(pathway, result, result.event.seq)


@bp.post("/v1/pathways/<anyint:pathway_id>/tasks/<anyint:task_id>")
def change_task(pathway_id: int, task_id: int):
    pathway = base.load_pathway(pathway_id)
    task = tracking.task_by_id(pathway, task_id)
    if task is None:
        raise ApiError(404, "not_found", f"Pathway {pathway_id} has no task {task_id}.")
    body, version, request_id = _tasks_body(_TASK_CHANGE_IN)
    action = body.get("action")
    if action not in TASK_ACTIONS:
        raise ApiError(
            422,
            "invalid_data",
            "Please correct the request.",
            {"action": [f"action must be one of: {', '.join(TASK_ACTIONS)}"]},
        )
    stray = {
        "complete": {"reason", "owner", "due_on"},
        "cancel": {"owner", "due_on", "note"},
        "update": {"reason"},
    }[action] & set(body)
    if stray:
        raise ApiError(
            422,
            "invalid_data",
            "Please correct the request.",
            {name: [f"is not a field of the action '{action}'"] for name in sorted(stray)},
        )
    common = {
        "expected_version": version,
        "request_id": request_id,
        "occurred_at": body.get("occurred_at"),
    }
    if action == "complete":
        result = tracking.complete_task(
            pathway, task.seq, g.api_user, note=body.get("note"), **common
        )
    elif action == "cancel":
        result = tracking.cancel_task(pathway, task.seq, body.get("reason"), g.api_user, **common)
    else:
        result = tracking.update_task(
            pathway,
            task.seq,
            g.api_user,
            owner=body.get("owner"),
            due_on=body.get("due_on"),
            note=body.get("note"),
            **common,
        )
    return _task_answer(pathway, result, task.seq)


@bp.get("/v1/pathways/<anyint:pathway_id>/fhir")
def fhir(pathway_id: int):

    pathway = base.load_pathway(pathway_id)
    return (
        jsonify(bundle(pathway, services.load_events(pathway))),
        200,
        {"Content-Type": "application/fhir+json"},
    )


def _json_values(record: dict) -> dict:
    return {k: serialize.iso(v) if isinstance(v, date | datetime) else v for k, v in record.items()}


@bp.get("/v1/ptl")
@query_parameters("band", "lead_surgeon", "page")
def ptl():
    """The patient tracking list, as the page and its CSV give it (docs/returns.md)."""
    args, now = request.args, base.now()
    filters, errors = returns.ptl_filters(args.get("band"), args.get("lead_surgeon"))
    page = base.page_number(args)
    if filters is None:
        raise ApiError(422, "invalid_data", "Please correct the filters.", errors)
    filters = replace(filters, visible=scope.pathways(g.api_user, now))
    result = returns.ptl(filters, now, page, PAGE_SIZE)
    return jsonify(
        {
            "today": result.today.isoformat(),
            "counts": result.counts,
            "items": [_json_values(row.record()) for row in result.rows],
            "total": result.total,
            "page": page,
            "page_size": PAGE_SIZE,
        }
    )


@bp.get("/v1/returns/cwt")
@query_parameters("month")
def cwt_return():
    """The monthly return of a month (``month=YYYY-MM``, required), as its CSV gives it."""
    month, problem = returns.parse_month(request.args.get("month"), local_date(base.now()))
    if month is None:
        raise ApiError(422, "invalid_data", problem, {"month": [problem]})
    result = returns.cwt_return(month, scope.pathways(g.api_user, base.now()))
    return jsonify(
        {
            "month": f"{month:%Y-%m}",
            "standards": [
                {
                    "standard": s.clock.code,
                    "label": s.clock.label,
                    "threshold": s.clock.threshold,
                    "count": s.count,
                    "met": s.met,
                    "missed": s.missed,
                    "performance": s.performance,
                    "achieved": s.achieved,
                }
                for s in result.standards
            ],
            "items": [_json_values(row.record()) for row in result.rows],
        }
    )


@bp.get("/openapi.json")
def openapi():

    return jsonify(document())
