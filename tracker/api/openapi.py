"""The OpenAPI 3.1 description of /api/v1, built from the data dictionary."""

from __future__ import annotations

from functools import cache

from tracker.engine import steps as d
from tracker.engine import teams
from tracker.engine.dictionary import LONG, PATHWAY_FIELDS, Field
from tracker.engine.lesions import READING_KEYS
from tracker.engine.steps import all_fields_for
from tracker.mdt.models import MEETING_STATUSES, TRIAGE
from tracker.mdt.services import SPECIALTIES
from tracker.patients.fields import PATIENT_FIELDS
from tracker.returns import queries as returns


def _lesion_schema() -> dict:
    """One lesion as ``serialize.lesion`` gives it."""
    dated = {
        "type": ["object", "null"],
        "required": ["value", "seq", "occurred_at"],
        "properties": {
            "value": {"type": ["integer", "string"]},
            "band": {"type": "string"},
            "recommendation": {"type": "string"},
            "seq": {"type": "integer"},
            "occurred_at": {"type": "string", "format": "date-time"},
        },
    }
    nullable = {"type": ["string", "null"]}
    return {
        "type": "object",
        "required": ["ref", "site", "from_referral", "latest", "readings", "linked"],
        "properties": {
            "ref": {"type": "string"},
            "site": {"type": "string"},
            "levels": nullable,
            "bone": nullable,
            "side": nullable,
            "charted_seq": {"type": ["integer", "null"]},
            "from_referral": {"type": "boolean"},
            "finding": nullable,
            "latest": {
                "type": "object",
                "properties": {"sins": dated, "bilsky_grade": dated, "mirels": dated},
            },
            "readings": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "seq": {"type": "integer"},
                        "occurred_at": {"type": "string", "format": "date-time"},
                        "trigger": {"type": "string"},
                        **{k: {"type": ["integer", "string", "null"]} for k in READING_KEYS},
                    },
                },
            },
            "linked": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "seq": {"type": "integer"},
                        "occurred_at": {"type": "string", "format": "date-time"},
                        "trigger": {"type": "string"},
                    },
                },
            },
        },
    }


def field_schema(f: Field) -> dict:
    return f.json_schema()


def object_schema(fields, description: str = "") -> dict:
    out = {
        "type": "object",
        "additionalProperties": False,
        "properties": {f.name: {**field_schema(f), "description": f.label} for f in fields},
        "required": [f.name for f in fields if f.required],
    }
    if description:
        out["description"] = description
    return out


def patient_in_schema(partial: bool = False) -> dict:
    """A patient's fields as sent: an optional one may also be blank (null or ""), which
    on a PATCH clears it. ``partial``: any subset of the fields (a PATCH)."""
    out = object_schema(PATIENT_FIELDS)
    for f in PATIENT_FIELDS:
        if not f.required:
            out["properties"][f.name] = {
                "anyOf": [field_schema(f), {"type": "null"}, {"const": ""}],
                "description": f"{f.label} (optional; null or empty: none)",
            }
    if partial:
        out["required"] = []
        out["description"] = (
            "Any of the patient's fields; only those sent are changed. Every invalid "
            "field is reported at once (422)."
        )
    return out


def trigger_schemas() -> dict[str, dict]:
    """One data schema per trigger and source that has its own fields."""
    out = {}
    for t in d.transitions():
        for source in t.sources:
            fields = all_fields_for(t.trigger, source)
            name = f"{t.trigger}_data"
            if d.is_mdt_outcome(t.trigger, source):
                name = "mdt_outcome_data"
            elif d.way(t.trigger, source).fields is not None:
                # a way with fields of its own: named after them (refer_to_mdt_with_reason)
                name = f"{t.trigger}_with_{fields[0].name}_data"
            out.setdefault(
                name,
                object_schema(
                    fields, f"data of {t.trigger} from {source}" if name.endswith("_data") else ""
                ),
            )
    out["amend_event_data"] = {
        "type": "object",
        "required": ["event_seq", "changes", "reason"],
        "properties": {
            "event_seq": {"type": "integer", "minimum": 1},
            "changes": {
                "type": "object",
                "minProperties": 1,
                "description": "The corrected fields of the step: any of its data fields "
                "(null removes one), `occurred_at` (when it happened, ISO 8601 with an offset) "
                "and, on the referral (event_seq 1), every referral field including "
                "`referral_received_at`. Every later step is checked again on the corrected "
                "history; a correction that would break one is refused, naming it.",
            },
            "reason": {"type": "string", "minLength": 1, "maxLength": 4000},
        },
    }
    out["void_last_step_data"] = {
        "type": "object",
        "required": ["reason"],
        "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 4000}},
    }
    return out


NULLABLE_STR = {"type": ["string", "null"]}
DT = {"type": "string", "format": "date-time"}
NULLABLE_DT = {"type": ["string", "null"], "format": "date-time"}


def _json(schema_ref: str, description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}},
    }


def _errors(*codes: int, conflict: str = "Conflict: stale version or not allowed now") -> dict:
    words = {
        400: "Malformed request",
        401: "Missing, invalid, revoked or expired token (error unauthorized or token_expired)",
        403: "Role may not (forbidden), or a read-only token tried to write (read_only_token)",
        404: "Not found",
        409: conflict,
        422: "Invalid data",
        500: "Unexpected failure: nothing was saved (error server_error)",
    }
    return {str(code): _json("Error", words[code]) for code in (*codes, 500)}


DUPLICATE = (
    "Conflict: the MRN (however written: letter case, accents, Unicode forms) or NHS "
    "number is another patient's "
    "(error duplicate_mrn or duplicate_nhs_number, with that patient's patient_id; when the "
    "patient is another team's and the caller holds no emergency access to them, "
    "other_team: true instead, and the message names neither the patient nor their id)"
)


def _id_param(name: str) -> dict:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
    }


NULLABLE_DATE = {"type": ["string", "null"], "format": "date"}
DATE = {"type": "string", "format": "date"}


def _schema_of(trigger: str, name: str) -> dict:
    """A field's JSON schema, as the tracking step ``trigger`` declares it."""
    return next(f.json_schema() for f in all_fields_for(trigger, None) if f.name == name)


_CALL = {
    "occurred_at": {
        "type": "string",
        "format": "date-time",
        "description": "When it happened (default now); not in the future.",
    },
    "expected_version": {"type": "integer", "minimum": 1},
    "request_id": {"type": "string", "minLength": 1, "maxLength": 64},
}


def tasks_schemas() -> dict:
    """Tasks (next actions) of a pathway and the calls that add, change and close them
    (docs/guide/tasks.md); each is a step on the pathway's timeline."""
    return {
        "Task": {
            "type": "object",
            "required": ["id", "number", "what", "owner", "due_on", "status", "overdue"],
            "properties": {
                "id": {"type": "integer"},
                "number": {
                    "type": "integer",
                    "description": "The step (seq) that added the task: its number on the "
                    "pathway, as the timeline shows it.",
                },
                "what": {"type": "string"},
                "owner": {"type": "string", "description": "The owner's username."},
                "due_on": DATE,
                "status": {"enum": ["open", "done", "cancelled"]},
                "overdue": {"type": "boolean", "description": "Open and due before today."},
                "created_at": {"type": "string", "format": "date-time"},
                "closed_seq": {"type": ["integer", "null"]},
                "closed_at": {"type": ["string", "null"], "format": "date-time"},
                "close_note": {"type": ["string", "null"]},
            },
        },
        "TaskList": {
            "type": "object",
            "required": ["items"],
            "properties": {
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/Task"}},
                "tracking_note": {"type": ["string", "null"]},
                "tracking_note_at": {"type": ["string", "null"], "format": "date-time"},
            },
        },
        "TaskIn": {
            "type": "object",
            "additionalProperties": False,
            "required": ["what", "owner", "due_on", "expected_version", "request_id"],
            "properties": {
                "what": _schema_of(d.ADD_TASK_TRIGGER, "what"),
                "owner": {
                    **_schema_of(d.ADD_TASK_TRIGGER, "owner"),
                    "description": "Username of an active coordinator or surgeon in the "
                    "pathway's team.",
                },
                "due_on": {**DATE, "description": "Not before today."},
                "note": _schema_of(d.ADD_TASK_TRIGGER, "note"),
                **_CALL,
            },
        },
        "TaskChange": {
            "type": "object",
            "additionalProperties": False,
            "required": ["action", "expected_version", "request_id"],
            "properties": {
                "action": {
                    "enum": ["complete", "cancel", "update"],
                    "description": "complete (optional note), cancel (reason required), "
                    "update (a new owner and/or due_on).",
                },
                "reason": _schema_of(d.CANCEL_TASK_TRIGGER, "reason"),
                "owner": _schema_of(d.UPDATE_TASK_TRIGGER, "owner"),
                "due_on": {**DATE, "description": "Not before today."},
                "note": _schema_of(d.COMPLETE_TASK_TRIGGER, "note"),
                **_CALL,
            },
        },
        "TaskRecorded": {
            "type": "object",
            "required": ["task", "event", "version"],
            "properties": {
                "task": {"$ref": "#/components/schemas/Task"},
                "event": {"$ref": "#/components/schemas/Event"},
                "version": {"type": "integer"},
            },
        },
    }


def tasks_paths() -> dict:
    pathway_id = _id_param("pathway_id")
    recorded = {
        "201": _json("TaskRecorded", "Recorded"),
        "200": _json("TaskRecorded", "Already recorded with this request_id; nothing new"),
    }
    return {
        "/api/v1/pathways/{pathway_id}/tasks": {
            "get": {
                "operationId": "listTasks",
                "summary": "The pathway's tasks (open first, by due date) and tracking note",
                "parameters": [pathway_id],
                "responses": {"200": _json("TaskList", "The tasks"), **_errors(401, 403, 404)},
            },
            "post": {
                "operationId": "addTask",
                "summary": "Add a task (recorded as the step add_task)",
                "parameters": [pathway_id],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/TaskIn"}}
                    },
                },
                "responses": {**recorded, **_errors(400, 401, 403, 404, 409, 422)},
            },
        },
        "/api/v1/pathways/{pathway_id}/tasks/{task_id}": {
            "post": {
                "operationId": "changeTask",
                "summary": "Complete, cancel or update a task (complete_task, cancel_task, "
                "update_task)",
                "parameters": [pathway_id, _id_param("task_id")],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/TaskChange"}}
                    },
                },
                "responses": {**recorded, **_errors(400, 401, 403, 404, 409, 422)},
            },
        },
    }


def returns_schemas(states: list[str]) -> dict:
    """The patient tracking list and the monthly return (docs/returns.md)."""
    return {
        "PtlRow": {
            "type": "object",
            "required": list(returns.PTL_COLUMNS),
            "properties": {
                "pathway_id": {"type": "integer"},
                "mrn": {"type": "string"},
                "nhs_number": NULLABLE_STR,
                "family_name": {"type": "string"},
                "given_name": {"type": "string"},
                "priority": NULLABLE_STR,
                "state": {"enum": states},
                "clock_start": {**DATE, "description": "The local date the 62-day clock started"},
                "day_count": {
                    "type": "integer",
                    "description": "Calendar days from the clock start to today (local), "
                    "less the days paused",
                },
                "band": {"enum": list(returns.BY_BAND)},
                "adjustment_days": {"type": "integer", "description": "Days paused"},
                "rtt_62_due_on": {
                    **NULLABLE_DATE,
                    "description": "Day 62 (with any pause): due by the end of this date",
                },
                "next_target": NULLABLE_STR,
                "next_target_due_at": NULLABLE_DT,
                "next_target_due_on": {
                    **NULLABLE_DATE,
                    "description": "For a clock counted in days: due by the end of this date",
                },
                "next_target_status": {"enum": ["pending", "due_soon", "breached", None]},
                "lead_surgeon": NULLABLE_STR,
                "coordinator": NULLABLE_STR,
                "tracking_note": {
                    **NULLABLE_STR,
                    "description": "The latest tracking note: where the pathway stands",
                },
                "tracking_note_at": {**NULLABLE_DT, "description": "When it was written"},
            },
        },
        "Ptl": {
            "type": "object",
            "required": ["today", "counts", "items", "total", "page", "page_size"],
            "properties": {
                "today": {**DATE, "description": "The local date the days are counted to"},
                "counts": {
                    "type": "object",
                    "description": "Pathways per band (the lead surgeon filter applied)",
                    "required": list(returns.BY_BAND),
                    "properties": {code: {"type": "integer"} for code in returns.BY_BAND},
                },
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/PtlRow"}},
                "total": {"type": "integer"},
                "page": {"type": "integer"},
                "page_size": {"type": "integer"},
            },
        },
        "CwtRow": {
            "type": "object",
            "required": list(returns.RETURN_COLUMNS),
            "properties": {
                "standard": {"enum": list(returns.STANDARD_CODES)},
                "pathway_id": {"type": "integer"},
                "nhs_number": NULLABLE_STR,
                "priority": NULLABLE_STR,
                "clock_start": DATE,
                "adjustment_days": {"type": "integer"},
                "clock_stop": DATE,
                "wait_days": {"type": "integer"},
                "met": {"type": "boolean"},
                "delay_reason": {
                    **NULLABLE_STR,
                    "description": "A missed clock's delay reason, or 'not recorded'; null "
                    "when met",
                },
            },
        },
        "CwtReturn": {
            "type": "object",
            "required": ["month", "standards", "items"],
            "properties": {
                "month": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
                "standards": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": [
                            "standard",
                            "threshold",
                            "count",
                            "met",
                            "missed",
                            "performance",
                            "achieved",
                        ],
                        "properties": {
                            "standard": {"enum": list(returns.STANDARD_CODES)},
                            "label": {"type": "string"},
                            "threshold": {
                                "type": "integer",
                                "description": "The national operational standard, in %",
                            },
                            "count": {"type": "integer"},
                            "met": {"type": "integer"},
                            "missed": {"type": "integer"},
                            "performance": {
                                "type": ["number", "null"],
                                "description": "Met as a % of the clocks stopped",
                            },
                            "achieved": {"type": ["boolean", "null"]},
                        },
                    },
                },
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/CwtRow"}},
            },
        },
    }


def returns_paths() -> dict:
    return {
        "/api/v1/ptl": {
            "get": {
                "operationId": "patientTrackingList",
                "summary": "Open 62-day pathways with their day count and band, longest first",
                "parameters": [
                    {"name": "band", "in": "query", "schema": {"enum": list(returns.BY_BAND)}},
                    {
                        "name": "lead_surgeon",
                        "in": "query",
                        "schema": {"type": "string", "maxLength": 64},
                        "description": "A username",
                    },
                    {
                        "name": "page",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
                    },
                ],
                "responses": {
                    "200": _json("Ptl", "A page of the patient tracking list"),
                    **_errors(401, 422),
                },
            }
        },
        "/api/v1/returns/cwt": {
            "get": {
                "operationId": "monthlyReturn",
                "summary": "The clocks of the national standards that stopped in a month",
                "parameters": [
                    {
                        "name": "month",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
                        "description": "YYYY-MM, by the local date each clock stopped",
                    }
                ],
                "responses": {
                    "200": _json("CwtReturn", "The month's return"),
                    **_errors(401, 422),
                },
            }
        },
    }


def meetings_schemas() -> dict:
    """MDT meetings, one meeting with its cases, attendance and quoracy, and what is sent
    to create a meeting or list a pathway on one."""
    text = {"type": "string"}
    meeting = {
        "type": "object",
        "required": ["id", "team", "meeting_date", "start_time", "status", "cases"],
        "properties": {
            "id": {"type": "integer"},
            "team": {"enum": list(teams.codes())},
            "team_label": text,
            "meeting_date": DATE,
            "start_time": {"type": "string", "pattern": "^[0-9]{2}:[0-9]{2}$"},
            "starts_at": DT,
            "list_closes_at": {
                **DT,
                "description": "After this, a listing needs a late_reason",
            },
            "location": text,
            "video_link": text,
            "chair": NULLABLE_STR,
            "status": {"enum": list(MEETING_STATUSES)},
            "cases": {"type": "integer", "description": "How many cases are listed"},
        },
    }
    case = {
        "type": "object",
        "required": ["id", "position", "other_team"],
        "description": "A case on the list. Of a patient of another team (other_team: true), "
        "only its id and place.",
        "properties": {
            "id": {"type": "integer"},
            "position": {"type": "integer", "minimum": 1},
            "other_team": {"type": "boolean"},
            "pathway_id": {"type": "integer"},
            "patient_id": {"type": "integer"},
            "question": text,
            "presenter": text,
            "triage": {"enum": list(TRIAGE)},
            "late_reason": text,
            "listed_at": DT,
            "listing_seq": {"type": ["integer", "null"]},
            "outcome": {
                "type": ["object", "null"],
                "properties": {
                    "trigger": text,
                    "decision": text,
                    "seq": {"type": "integer"},
                    "occurred_at": DT,
                    "inquorate": {
                        "type": "boolean",
                        "description": "Decided at a meeting that is not quorate",
                    },
                },
            },
            "outcome_outstanding": {
                "type": "boolean",
                "description": "The meeting has started and no outcome is recorded",
            },
            "rolled_to_meeting_id": {"type": ["integer", "null"]},
        },
    }
    short = {"type": "string", "maxLength": LONG}
    return {
        "MdtMeeting": meeting,
        "MdtMeetingPage": {
            "type": "object",
            "required": ["items", "total", "page"],
            "properties": {
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/MdtMeeting"}},
                "total": {"type": "integer"},
                "page": {"type": "integer"},
                "page_size": {"type": "integer"},
            },
        },
        "MdtCase": case,
        "MdtMeetingDetail": {
            "allOf": [
                {"$ref": "#/components/schemas/MdtMeeting"},
                {
                    "type": "object",
                    "required": ["items", "attendance", "quorum"],
                    "properties": {
                        "items": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/MdtCase"},
                            "description": "The cases in the order they are discussed",
                        },
                        "attendance": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "user": text,
                                    "name": text,
                                    "specialty": {"enum": list(SPECIALTIES)},
                                },
                            },
                        },
                        "quorum": {
                            "type": "object",
                            "required": ["quorate", "needed", "missing"],
                            "properties": {
                                "quorate": {"type": "boolean"},
                                "needed": {"type": "array", "items": text},
                                "missing": {"type": "array", "items": text},
                            },
                        },
                    },
                },
            ]
        },
        "MdtMeetingIn": {
            "type": "object",
            "additionalProperties": False,
            "required": ["team", "meeting_date", "start_time", "chair"],
            "properties": {
                "team": {"enum": list(teams.codes())},
                "meeting_date": DATE,
                "start_time": {"type": "string", "pattern": "^[0-9]{2}:[0-9]{2}$"},
                "location": {"type": "string", "maxLength": 200},
                "video_link": {"type": "string", "maxLength": 500, "pattern": "^https://"},
                "chair": {"type": "string", "maxLength": 64, "description": "A username"},
            },
            "description": "A location, a video link or both.",
        },
        "MdtCaseIn": {
            "type": "object",
            "additionalProperties": False,
            "required": [
                "pathway_id",
                "question",
                "presenter",
                "triage",
                "expected_version",
                "request_id",
            ],
            "properties": {
                "pathway_id": {"type": "integer", "minimum": 1},
                "question": {"type": "string", "minLength": 1, "maxLength": LONG},
                "presenter": {"type": "string", "maxLength": 64, "description": "A username"},
                "triage": {"enum": list(TRIAGE)},
                "late_reason": {
                    **short,
                    "description": "Required once the list has closed (list_closes_at)",
                },
                "expected_version": {"type": "integer", "minimum": 1},
                "request_id": {"type": "string", "minLength": 1, "maxLength": 64},
            },
        },
        "MdtCaseListed": {
            "type": "object",
            "required": ["case", "version", "state"],
            "properties": {
                "case": {"$ref": "#/components/schemas/MdtCase"},
                "version": {"type": "integer"},
                "state": {"type": "string"},
            },
        },
    }


def meetings_paths() -> dict:
    meeting_id = _id_param("meeting_id")
    return {
        "/api/v1/mdt-meetings": {
            "get": {
                "operationId": "listMdtMeetings",
                "summary": "MDT meetings by date (no patient data)",
                "parameters": [
                    {"name": "team", "in": "query", "schema": {"enum": list(teams.codes())}},
                    {"name": "from", "in": "query", "schema": DATE, "description": "On or after"},
                    {
                        "name": "page",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
                    },
                ],
                "responses": {
                    "200": _json("MdtMeetingPage", "A page of meetings"),
                    **_errors(401, 422),
                },
            },
            "post": {
                "operationId": "createMdtMeeting",
                "summary": "Create an MDT meeting (care coordinators)",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/MdtMeetingIn"}
                        }
                    },
                },
                "responses": {
                    "201": _json("MdtMeetingDetail", "Created"),
                    **_errors(400, 401, 403, 422),
                },
            },
        },
        "/api/v1/mdt-meetings/{meeting_id}": {
            "get": {
                "operationId": "getMdtMeeting",
                "summary": "A meeting with its cases in order, attendance and quoracy",
                "parameters": [meeting_id],
                "responses": {
                    "200": _json("MdtMeetingDetail", "The meeting"),
                    **_errors(401, 404),
                },
            }
        },
        "/api/v1/mdt-meetings/{meeting_id}/cases": {
            "post": {
                "operationId": "listMdtCase",
                "summary": "List a pathway on the meeting (its schedule_mdt step)",
                "description": "The pathway must be in MDT review, of the meeting's team and "
                "not listed on it already; the meeting must be scheduled and ahead.",
                "parameters": [meeting_id],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/MdtCaseIn"}}
                    },
                },
                "responses": {
                    "201": _json("MdtCaseListed", "Listed"),
                    "200": _json(
                        "MdtCaseListed", "Already listed with this request_id; nothing new written"
                    ),
                    **_errors(400, 401, 403, 404, 409, 422),
                },
            }
        },
    }


def document() -> dict:
    """The OpenAPI document of the registry as it stands (built once per registry)."""
    return _document(d.REGISTRY_ENTRIES.version)


@cache
def _document(registry_version: int) -> dict:
    schemas = trigger_schemas()
    data_refs = [{"$ref": f"#/components/schemas/{name}"} for name in schemas]
    states = list(d.STATES)
    components = {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            **schemas,
            "Error": {
                "type": "object",
                "required": ["error", "message", "errors"],
                "properties": {
                    "error": {"type": "string"},
                    "message": {"type": "string"},
                    "errors": {
                        "type": "object",
                        "additionalProperties": {"type": "array", "items": {"type": "string"}},
                    },
                    "patient_id": {"type": "integer"},
                },
            },
            "PatientIn": patient_in_schema(),
            "PatientPatch": patient_in_schema(partial=True),
            "Patient": {
                "type": "object",
                "required": ["id", "mrn", "nhs_number", "gp_practice", "pathway_ids"],
                "properties": {
                    "id": {"type": "integer"},
                    "mrn": {"type": "string"},
                    "nhs_number": {
                        "type": ["string", "null"],
                        "pattern": "^[0-9]{10}$",
                        "description": "Ten digits, without spaces",
                    },
                    "family_name": {"type": "string"},
                    "given_name": {"type": "string"},
                    "birth_date": {"type": "string", "format": "date"},
                    "sex": {"type": "string"},
                    "gp_practice": NULLABLE_STR,
                    "pathway_ids": {"type": "array", "items": {"type": "integer"}},
                },
            },
            "PatientChanged": {
                "type": "object",
                "required": ["patient", "changed", "message"],
                "properties": {
                    "patient": {"$ref": "#/components/schemas/Patient"},
                    "changed": {
                        "type": "array",
                        "items": {"enum": [f.name for f in PATIENT_FIELDS]},
                        "description": "The fields that changed; empty: nothing changed",
                    },
                    "message": {"type": "string"},
                },
            },
            "PathwayIn": {
                **object_schema(PATHWAY_FIELDS),
                "properties": {
                    **object_schema(PATHWAY_FIELDS)["properties"],
                    "patient_id": {"type": "integer", "minimum": 1},
                    "request_id": {"type": "string", "minLength": 1, "maxLength": 64},
                    "confirm_another_pathway": {
                        "type": "boolean",
                        "description": "true to open a second pathway for a patient who "
                        "already has an open one (otherwise 422, naming the open one).",
                    },
                },
                "required": ["patient_id", *object_schema(PATHWAY_FIELDS)["required"]],
            },
            "NextTarget": {
                "type": ["object", "null"],
                "properties": {
                    "target": {"type": "string"},
                    "due_at": DT,
                    "status": {"enum": ["pending", "due_soon", "breached"]},
                },
            },
            "Pathway": {
                "type": "object",
                "required": ["id", "state", "version"],
                "properties": {
                    "id": {"type": "integer"},
                    "patient_id": {"type": "integer"},
                    "state": {"enum": states},
                    "version": {"type": "integer", "minimum": 1},
                    "referral_received_at": DT,
                    "urgency": {"type": "string"},
                    "referral_priority": {"type": "string"},
                    "lead_surgeon": NULLABLE_STR,
                    "coordinator": NULLABLE_STR,
                    "recurrence_count": {"type": "integer"},
                    "opened_in_error": {
                        "type": "boolean",
                        "description": "Withdrawn as opened in error: left out of every "
                        "count, report, export and return.",
                    },
                    "unreviewed_steps": {
                        "type": "integer",
                        "description": "Steps recorded since the last surgeon's sign-off.",
                    },
                    "closed_at": NULLABLE_DT,
                    "tracking_note": {
                        "type": ["string", "null"],
                        "description": "The latest tracking comment (add_tracking_note).",
                    },
                    "tracking_note_at": NULLABLE_DT,
                    "next_target": {"$ref": "#/components/schemas/NextTarget"},
                },
            },
            "Lesion": _lesion_schema(),
            "PathwayDetail": {
                "allOf": [
                    {"$ref": "#/components/schemas/Pathway"},
                    {
                        "type": "object",
                        "required": ["allowed_triggers", "targets", "lesions"],
                        "properties": {
                            "lesions": {
                                "type": "array",
                                "items": {"$ref": "#/components/schemas/Lesion"},
                                "description": "The pathway's lesions (Record lesion), in "
                                "the order they were charted; scores recorded without a "
                                "lesion belong to the referral's tumour site "
                                "(from_referral).",
                            },
                            "allowed_triggers": {
                                "type": "array",
                                "items": {"enum": list(d.recordable())},
                            },
                            "targets": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "target": {"type": "string"},
                                        "status": {
                                            "enum": [
                                                "pending",
                                                "due_soon",
                                                "breached",
                                                "met",
                                                "missed",
                                            ]
                                        },
                                        "due_at": DT,
                                        "due_on": {
                                            "type": ["string", "null"],
                                            "format": "date",
                                            "description": "For a clock counted in whole "
                                            "days (a follow-up visit): due by the end of "
                                            "this local date.",
                                        },
                                        "stopped_at": NULLABLE_DT,
                                        "episode": {"type": "integer", "minimum": 0},
                                        "adjustment_days": {
                                            "type": "integer",
                                            "description": "Days paused by a declined "
                                            "admission (admitted treatment only).",
                                        },
                                        "provisional": {
                                            "type": "boolean",
                                            "description": "A 31-day clock counted from the "
                                            "MDT decision until the plan is agreed.",
                                        },
                                        "count": {
                                            "type": "string",
                                            "description": "The count in words, e.g. 'day "
                                            "57 of 62: 65 calendar days - 8 days paused'.",
                                        },
                                    },
                                },
                            },
                        },
                    },
                ]
            },
            "PathwayPage": {
                "type": "object",
                "required": ["items", "total", "page"],
                "properties": {
                    "items": {"type": "array", "items": {"$ref": "#/components/schemas/Pathway"}},
                    "total": {"type": "integer"},
                    "page": {"type": "integer"},
                    "page_size": {"type": "integer"},
                },
            },
            "Event": {
                "type": "object",
                "required": [
                    "seq",
                    "trigger",
                    "to_state",
                    "occurred_at",
                    "recorded_at",
                    "recorded_by",
                    "data",
                ],
                "properties": {
                    "seq": {"type": "integer"},
                    "trigger": {"type": "string"},
                    "from_state": NULLABLE_STR,
                    "to_state": {"enum": states},
                    "occurred_at": DT,
                    "recorded_at": DT,
                    "recorded_by": {"type": "string"},
                    "data": {"type": "object"},
                    "request_id": {"type": "string"},
                    "amends_seq": {"type": ["integer", "null"]},
                    "voids_seq": {"type": ["integer", "null"]},
                },
            },
            "EventIn": {
                "type": "object",
                "additionalProperties": False,
                "required": ["trigger", "expected_version", "request_id"],
                "properties": {
                    "trigger": {"enum": [*d.recordable(), d.AMEND_TRIGGER, d.VOID_TRIGGER]},
                    "occurred_at": {
                        **DT,
                        "description": "Not in the future nor "
                        "before the previous step; corrections take now.",
                    },
                    "expected_version": {"type": "integer", "minimum": 1},
                    "request_id": {"type": "string", "minLength": 1, "maxLength": 64},
                    "data": {
                        "anyOf": data_refs,
                        "description": "The trigger's data; see the *_data schemas.",
                    },
                },
            },
            "Recorded": {
                "type": "object",
                "required": ["event", "state", "version"],
                "properties": {
                    "event": {"$ref": "#/components/schemas/Event"},
                    "state": {"enum": states},
                    "version": {"type": "integer"},
                },
            },
            "Definition": {"type": "object", "required": ["states", "transitions"]},
            **returns_schemas(states),
            **meetings_schemas(),
            **tasks_schemas(),
        },
    }
    pathway_id = _id_param("pathway_id")
    paths = {
        "/api/v1/definition": {
            "get": {
                "operationId": "definition",
                "summary": "The state machine",
                "responses": {"200": _json("Definition", "States and transitions"), **_errors(401)},
            }
        },
        "/api/v1/patients": {
            "post": {
                "operationId": "createPatient",
                "summary": "Register a patient",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/PatientIn"}}
                    },
                },
                "responses": {
                    "201": _json("Patient", "Registered"),
                    **_errors(400, 401, 403, 409, 422, conflict=DUPLICATE),
                },
            }
        },
        "/api/v1/patients/{patient_id}": {
            "get": {
                "operationId": "getPatient",
                "parameters": [_id_param("patient_id")],
                "responses": {"200": _json("Patient", "The patient"), **_errors(401, 404)},
            },
            "patch": {
                "operationId": "updatePatient",
                "summary": "Correct a patient's details",
                "description": "Changes the fields sent and writes the old and new value of "
                "each changed one to the audit log; nothing is written when nothing changes.",
                "parameters": [_id_param("patient_id")],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/PatientPatch"}
                        }
                    },
                },
                "responses": {
                    "200": _json("PatientChanged", "Changed, or nothing changed"),
                    **_errors(400, 401, 403, 404, 409, 422, conflict=DUPLICATE),
                },
            },
        },
        "/api/v1/pathways": {
            "get": {
                "operationId": "listPathways",
                "parameters": [
                    {"name": "state", "in": "query", "schema": {"enum": states}},
                    {
                        "name": "urgency",
                        "in": "query",
                        "schema": {"enum": ["emergency", "urgent", "routine"]},
                    },
                    {
                        "name": "target_status",
                        "in": "query",
                        "schema": {"enum": ["breached", "due_soon", "pending", "none"]},
                    },
                    {
                        "name": "page",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
                    },
                ],
                "responses": {
                    "200": _json("PathwayPage", "A page of pathways"),
                    **_errors(401, 422),
                },
            },
            "post": {
                "operationId": "openPathway",
                "summary": "Open a pathway from a referral",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/PathwayIn"}}
                    },
                },
                "responses": {
                    "201": _json("Pathway", "Opened"),
                    **_errors(400, 401, 403, 404, 409, 422),
                },
            },
        },
        "/api/v1/pathways/{pathway_id}": {
            "get": {
                "operationId": "getPathway",
                "parameters": [pathway_id],
                "responses": {"200": _json("PathwayDetail", "The pathway"), **_errors(401, 404)},
            }
        },
        "/api/v1/pathways/{pathway_id}/events": {
            "get": {
                "operationId": "listEvents",
                "parameters": [pathway_id],
                "responses": {
                    "200": {
                        "description": "Events in order",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "items": {
                                            "type": "array",
                                            "items": {"$ref": "#/components/schemas/Event"},
                                        }
                                    },
                                }
                            }
                        },
                    },
                    **_errors(401, 404),
                },
            },
            "post": {
                "operationId": "recordEvent",
                "parameters": [pathway_id],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/EventIn"}}
                    },
                },
                "responses": {
                    "201": _json("Recorded", "Recorded"),
                    "200": _json(
                        "Recorded", "Already recorded with this request_id; nothing new written"
                    ),
                    **_errors(400, 401, 403, 404, 409, 422),
                },
            },
        },
        **returns_paths(),
        **meetings_paths(),
        **tasks_paths(),
        "/api/v1/pathways/{pathway_id}/fhir": {
            "get": {
                "operationId": "pathwayFhir",
                "parameters": [pathway_id],
                "responses": {
                    "200": {
                        "description": "A FHIR R4 Bundle of type collection",
                        "content": {
                            "application/fhir+json": {
                                "schema": {"type": "object", "required": ["resourceType", "type"]}
                            }
                        },
                    },
                    **_errors(401, 404),
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Care-pathway tracker API", "version": "1"},
        "security": [{"bearer": []}],
        "paths": paths,
        "components": components,
    }
