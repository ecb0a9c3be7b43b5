"""The benchmark's floor: the product's data served by the thinnest Flask views. For the
benchmark only (`bench/run.py` serves `bench.floor:create_app()`); the product never
imports it.

``create_app()`` builds the real app (``tracker.create_app()``, configured from the
environment as `make bench` sets it) and mounts under ``/floor`` a bare Flask app: no
login, no CSRF, no access rules, none of the product's hooks. Its views run inside the
real app's application context, so they use its engine and ``db.session`` (the same
connection pragmas, the same session hooks that seal events and audit entries into
their chains), and each does only what serving the data cannot go without:

- ``GET /floor/worklist``: the worklist's first page (its 25 rows in its default order)
  by one SQL statement;
- ``GET /floor/pathways/<id>``: the pathway's patient and events by raw SQL, the latest
  ones (as many as the pathway page shows) listed newest first;
- ``GET /floor/api/pathways/<id>``: the pathway row and its patient as JSON by raw SQL;
- each with a Jinja template compiled once at import (autoescaped), one ``view`` audit
  entry as the product's pages write it, and a commit;
- ``POST /floor/api/pathways/<id>/notes``: the floor of a write, add_note at its thinnest:
  the pathway's version (and last step number) bumped through the ORM, one ``Event``
  added (sealed into the event chain on flush, and audited as ``record_event`` by the
  audit hook, as the real one is) and one commit; no checks, no derivation. Answers 201
  with the new version. (So `flask tracker verify` of a benchmark's database finds the
  derived columns of those pathways, their count of steps to review, behind their events.)

Every entry is the demo coordinator's (the benchmark's clients log in as them), read once
per worker; the real app's ``g.api_user`` names the caller, as the API's token check does.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from functools import wraps
from typing import NamedTuple

from flask import Flask, abort, g, request
from jinja2 import Environment
from sqlalchemy import text
from werkzeug.middleware.dispatcher import DispatcherMiddleware

import tracker.models  # noqa: F401 - every mapper registered before first use
from tracker.audit.services import record
from tracker.engine.clocks import LABELS as TARGET_LABELS
from tracker.engine.dictionary import URGENCY_SHORT
from tracker.engine.models import Event, Pathway
from tracker.engine.steps import STATE_LABELS
from tracker.extensions import db
from tracker.pathway.routes import TIMELINE_SHOWN

_env = Environment(autoescape=True)
_env.globals.update(states=STATE_LABELS, targets=TARGET_LABELS, urgencies=URGENCY_SHORT)

WORKLIST = _env.from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Worklist (floor)</title></head><body>
<table>
<tr><th>Patient</th><th>MRN</th><th>State</th><th>Urgency</th><th>Next target</th><th>Due</th></tr>
{% for r in rows %}<tr>
<td><a href="/pathways/{{ r.id }}">{{ r.family_name }}, {{ r.given_name }}</a></td>
<td>{{ r.mrn }}</td><td>{{ states.get(r.state, r.state) }}</td>
<td>{{ urgencies.get(r.urgency, r.urgency) }}</td>
<td>{{ targets.get(r.next_target, r.next_target) if r.next_target else "" }}</td>
<td>{{ r.next_target_due_at or "" }}</td></tr>
{% endfor %}</table>
</body></html>"""
)

PATHWAY = _env.from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Pathway (floor)</title></head><body>
<h1>{{ p.family_name }}, {{ p.given_name }} ({{ p.mrn }})</h1>
<p>Born {{ p.birth_date }}. {{ states.get(p.state, p.state) }}, version {{ p.version }}.</p>
{% if folded %}<p>{{ folded }} earlier steps not shown.</p>{% endif %}
<ol reversed>
{% for e in events %}<li>{{ e.seq }}. {{ e.trigger }}
({{ e.from_state or "" }} to {{ e.to_state }}), {{ e.occurred_at }}
by {{ e.username }}: {{ e.data }}</li>
{% endfor %}</ol>
</body></html>"""
)

WORKLIST_SQL = text(
    """SELECT p.id, pt.mrn, pt.family_name, pt.given_name, p.state, p.urgency,
       p.next_target, p.next_target_due_at
FROM pathway p JOIN patient pt ON pt.id = p.patient_id
WHERE p.closed_at IS NULL
ORDER BY p.next_target_sort, p.id
LIMIT :size"""
)
PATIENT_SQL = text(
    """SELECT p.id, p.patient_id, p.state, p.version, pt.mrn, pt.family_name, pt.given_name,
       pt.birth_date
FROM pathway p JOIN patient pt ON pt.id = p.patient_id
WHERE p.id = :id"""
)
EVENTS_SQL = text(
    """SELECT e.seq, e.trigger, e.from_state, e.to_state, e.occurred_at, e.data, u.username
FROM event e JOIN "user" u ON u.id = e.recorded_by_id
WHERE e.pathway_id = :id
ORDER BY e.seq"""
)
API_SQL = text(
    """SELECT p.id, p.patient_id, p.state, p.version, p.referral_received_at,
       p.referral_source, p.urgency, p.referral_priority, p.diagnosis_category,
       p.tumour_site, p.primary_cancer_site, p.presenting_symptoms,
       ls.username AS lead_surgeon, co.username AS coordinator, p.recurrence_count,
       p.in_error, p.unreviewed_steps, p.tracking_note, p.tracking_note_at, p.opened_at,
       p.closed_at, p.state_entered_at, p.next_target, p.next_target_due_at,
       pt.mrn, pt.family_name, pt.given_name, pt.birth_date, pt.sex, pt.nhs_number
FROM pathway p JOIN patient pt ON pt.id = p.patient_id
LEFT JOIN "user" ls ON ls.id = p.lead_surgeon_id
LEFT JOIN "user" co ON co.id = p.coordinator_id
WHERE p.id = :id"""
)
PATIENT_COLUMNS = ("mrn", "family_name", "given_name", "birth_date", "sex", "nhs_number")


class Actor(NamedTuple):
    """What an audit entry and an event take of their user."""

    id: int
    username: str


_real: Flask | None = None
_actor: Actor | None = None


def _coordinator() -> Actor:
    global _actor
    if _actor is None:
        row = db.session.execute(
            text('SELECT id, username FROM "user" WHERE username = :name'),
            {"name": "coordinator"},
        ).one()
        _actor = Actor(row.id, row.username)
    return _actor


def _in_product(view):
    """Run ``view`` in the real app's application context, as the coordinator."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        with _real.app_context():
            g.api_user = _coordinator()  # who the audit entries name
            return view(*args, **kwargs)

    return wrapped


def _viewed(endpoint: str, patient_id: int | None = None, pathway_id: int | None = None):
    """The view's audit entry, as the product writes one for a page of patient data, and
    the commit."""
    record("view", patient_id=patient_id, pathway_id=pathway_id, detail={"endpoint": endpoint})
    db.session.commit()


def _plain(value):
    return value.isoformat() if isinstance(value, date | datetime) else value


floor = Flask(__name__)


@floor.get("/worklist")
@_in_product
def worklist():
    size = int(_real.config["WORKLIST_PAGE_SIZE"])
    rows = db.session.execute(WORKLIST_SQL, {"size": size}).all()
    page = WORKLIST.render(rows=rows)
    _viewed("floor.worklist")
    return page


@floor.get("/pathways/<int:pathway_id>")
@_in_product
def pathway(pathway_id: int):
    p = db.session.execute(PATIENT_SQL, {"id": pathway_id}).one_or_none()
    if p is None:
        abort(404)
    events = db.session.execute(EVENTS_SQL, {"id": pathway_id}).all()
    shown = events[-TIMELINE_SHOWN:][::-1]
    page = PATHWAY.render(p=p, events=shown, folded=len(events) - len(shown))
    _viewed("floor.pathway", p.patient_id, p.id)
    return page


@floor.get("/api/pathways/<int:pathway_id>")
@_in_product
def api_pathway(pathway_id: int):
    row = db.session.execute(API_SQL, {"id": pathway_id}).one_or_none()
    if row is None:
        abort(404)
    values = {name: _plain(value) for name, value in row._mapping.items()}
    body = {name: values.pop(name) for name in PATIENT_COLUMNS}
    body = {**values, "patient": body}
    _viewed("floor.api_pathway", row.patient_id, row.id)
    return body


@floor.post("/api/pathways/<int:pathway_id>/notes")
@_in_product
def add_note(pathway_id: int):
    note = str((request.get_json(silent=True) or {}).get("note") or "")[:4000]
    p = db.session.get(Pathway, pathway_id)
    if p is None:
        abort(404)
    now = datetime.now(UTC)
    p.version += 1  # an UPDATE ... WHERE version = <the version read>, as every write's
    p.last_seq += 1
    version = p.version
    db.session.add(
        Event(
            pathway=p,
            seq=p.last_seq,
            trigger="add_note",
            from_state=p.state,
            to_state=p.state,
            occurred_at=now,
            recorded_at=now,
            recorded_by_id=g.api_user.id,
            data={"note": note},
            request_id=uuid.uuid4().hex,
        )
    )
    db.session.commit()
    return {"version": version}, 201


def create_app() -> Flask:
    """The real app, with the floor mounted at /floor."""
    global _real
    from tracker import create_app as create_real_app

    _real = create_real_app()
    _real.wsgi_app = DispatcherMiddleware(_real.wsgi_app, {"/floor": floor})
    return _real
