"""Bad input never gives a 500: hypothesis fuzzes every form and every endpoint.

Every endpoint of ``app.url_map`` is fuzzed, or listed in EXCLUDED with the reason
(test_every_endpoint_is_fuzzed_or_excluded fails otherwise):

- GET endpoints are fuzzed from their rule alone: path ids (existing, zero, huge, negative,
  not a number), the words a path names (triggers, report tables, file names) and query
  parameters (filters, page numbers, sorts, dates), as each role and anonymously. The sweep
  finds the parameters each page reads (a request whose ``args`` note what is read) and gives
  each of them, and each pair of them for dates (ranges), each bad value in turn.
- Each POST form has a valid submission (its baseline); one to three of its fields at a time
  get markup, SQL, control characters (NUL too), 10,000 characters, impossible dates, numbers
  for text and text for numbers, unicode, or are left out or sent twice. The sweep gives every
  field each bad value in turn (a field built by the same code on several forms, once).
- The JSON API gets wrong types, nulls, nested objects, huge numbers, bad dates and bodies
  that are not JSON objects.

Every answer is below 500. A refusal is a 4xx that says why (beside the field, in an alert, on
the error page; in the API the error shape) and stores nothing: the row counts of patient,
pathway, event, user, api_token and password_reset are compared around each example. What is
accepted stores no control character and can be shown afterwards (its pages answer); no HTML
page reflects markup unescaped, and no redirect leaves the site.
test_stored_markup_is_shown_escaped stores markup through the normal pages and reads every
page, export and API answer that shows it.

The fixtures roll back per test, not per example, so each example runs in a savepoint of its
own that is rolled back after it: the examples do not see each other's rows.

On SQLite the tests also refuse what PostgreSQL refuses (a NUL in a text parameter, text
longer than its VARCHAR column), so a route that would answer 500 on PostgreSQL fails here too.
"""

from __future__ import annotations

import html
import json
import os
import re
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

import pytest
from flask import g
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import String, event, func, inspect, select
from sqlalchemy.orm import Session
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.security import generate_password_hash
from wtforms.fields import SubmitField
from wtforms.fields.core import UnboundField

from tests.conftest import PASSWORD, make_app
from tests.helpers import (
    REFERRAL,
    Driver,
    new_pathway,
    new_patient,
    pass_second_factor,
    valid_data,
)
from tracker.accounts.forms import LoginForm, UserCreateForm, UserEditForm
from tracker.api.models import ApiToken
from tracker.api.services import create_token
from tracker.bulk.routes import BulkForm
from tracker.engine import steps as d
from tracker.engine import tags
from tracker.engine.dictionary import PATHWAY_FIELDS, Field
from tracker.engine.models import Event, Pathway, PathwayTask
from tracker.engine.steps import all_fields_for
from tracker.extensions import db
from tracker.mdt.documents import TemplateForm
from tracker.mdt.meetings import AttendanceForm, ListingForm, MeetingForm, SeriesForm
from tracker.mdt.services import create_meeting
from tracker.patients.fields import PATIENT_FIELDS
from tracker.patients.models import Patient
from tracker.saved_views.models import SavedView
from tracker.saved_views.routes import ChangeForm, SaveForm
from tracker.saved_views.services import save as save_view
from tracker.users.models import PasswordReset, User
from tracker.users.resets import issue as issue_reset

LOCAL = ZoneInfo("Europe/London")  # TestingConfig's TIMEZONE: forms are typed in local time
TABLES = (Patient, Pathway, Event, User, ApiToken, PasswordReset, SavedView)
ROLES = ("coordinator", "surgeon", "viewer", "admin")

# Endpoints not fuzzed, and why. Every other endpoint of the url_map must be fuzzed below.
# A meeting of the team the fuzzed pathways belong to (metastatic spinal), a week ahead.
MEETING = {
    "team": "metastatic",
    "meeting_date": (datetime.now(UTC) + timedelta(days=7)).date().isoformat(),
    "start_time": "08:00",
    "location": "Seminar room 2",
    "video_link": "",
    "chair": "surgeon",
    "status": "scheduled",
}

EXCLUDED = {
    ("mdt.move_case", "POST"): (
        "one button whose only input, direction, is up or down; needs two listed cases, "
        "and tests/test_mdt_meetings.py refuses anything else"
    ),
    ("mdt.roll_over", "POST"): (
        "one button with no input; its refusals (a meeting not started, nothing to roll "
        "over, no next meeting, a case that cannot be listed there) are in "
        "tests/test_mdt_running.py"
    ),
    ("mdt.send_list", "POST"): (
        "one button with no input; its refusals (a cancelled meeting, nobody with an "
        "address, a mail server that refuses) are in tests/test_mdt_list_mail.py"
    ),
    ("mdt.generate_letter", "POST"): (
        "its one input, next, is read by safe_next (fuzzed with teams.emergency_access); "
        "a case without an outcome and the kinds are in tests/test_mdt_running.py"
    ),
    ("views.delete", "POST"): (
        "takes no input but the view's id in its path; tests/test_saved_views.py tries owners, "
        "others, administrators and views that are not there"
    ),
    ("notifications.mark_read", "POST"): (
        "its one input is a notification's id, read as digits (anything else: a message); "
        "tests/test_alerts.py marks one's own read and answers 404 for another user's"
    ),
    ("notifications.mark_all_read", "POST"): (
        "takes no input; tests/test_alerts.py::test_the_counter_the_list_and_marking_read"
    ),
    ("auth.logout", "POST"): (
        "takes no input and only ends the session; fuzzing it would log the fuzzing client out"
    ),
    # Their one field is the CodeForm fuzzed on account.two_factor and account.recovery_codes.
    ("auth.second_factor", "POST"): (
        "needs a session half logged in (the password, not yet the code), which every example "
        "would have to make again; tests/test_two_factor.py walks it"
    ),
    ("auth.enrol", "POST"): (
        "needs a session half logged in of a user not yet enrolled; tests/test_two_factor.py"
    ),
}

FUZZ = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
    database=None,  # no .hypothesis/ in the work tree; a failure prints its blob instead
    print_blob=True,
    derandomize=bool(os.environ.get("CI")),  # CI is repeatable; local runs explore further
)

# -- what the fuzzer sends -------------------------------------------------------------------------

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
RAW_MARKUP = ("<script>alert(1)", "<img src=x")  # either in an HTML page: markup got through
SQL = "' OR 1=1 --"
LONG = "x" * 10_000
NASTY = (
    SCRIPT,
    IMG,
    SQL,
    "1; DROP TABLE patient; --",
    "%' OR '1'='1",
    "%_%\\",
    "\x00",
    "abc\x00def",
    "\x01\x02\x07\x08\x0b\x0c\x1b[2J\x7f",
    "line\r\nSet-Cookie: x=1",
    "\t",
    LONG,
    "\u202egnp.exe",
    "😀" * 40,
    "e\u0301\u0301\u0301",
    "\ufeffBOM",
    "\uff2d\uff32\uff2e\uff11\uff12\uff13"  # full-width MRN123,
    "İı ß ﬁ",
    "",
    " ",
    "2026-02-30",
    "0000-00-00",
    "99999-01-01",
    "2026-13-01",
    "0001-01-01",
    "9999-12-31",
    "2026-02-30T25:61",
    "0001-01-01T00:00",
    "9999-12-31T23:59",
    "1900-01-01T00:00",
    "0001-01-01T00:00:00+00:00",
    "0001-01-01T00:00:00+05:00",
    "9999-12-31T23:59:59-05:00",
    "1800-01-01T00:00:00+00:00",
    "-1",
    "0",
    "1.5",
    "1e309",
    "-1e309",
    "NaN",
    "sNaN",
    "Infinity",
    "²",
    "\u0661\u0662\u0663"  # Arabic-Indic 123,
    "9" * 5000,
    str(2**31),
    str(2**63),
    str(-(2**63) - 1),
    "0x1F",
    "true",
    "null",
    "[]",
    "{}",
    "None",
    "{{7*7}}",
    "${7*7}",
    "../../etc/passwd",
    "javascript:alert(1)",
    "//evil.example/",
    "/\\evil.example",
    "//[",
)
DROP = "<<drop the field>>"
REPEAT = "<<send the field twice>>"
# The sweep: each field of each form gets each of these, the other fields staying valid.
SWEEP = (
    SCRIPT,
    SQL,
    "a\x00b",
    "\x01\x1b[2J",
    LONG,
    "2026-02-30",
    "99999-01-01",
    "0001-01-01T00:00",
    "-1",
    "9" * 30,
    "²",
    "sNaN",
    "Zoë 😀 \u202e",
    "",
    DROP,
    REPEAT,
)
# Query parameters of a form (the login's `next`): the sweep, and addresses off the site.
QUERY_SWEEP = (
    *(v for v in SWEEP if v not in (DROP, REPEAT)),
    "//[",
    "//evil.example/",
    "/\\evil.example",
    "https://evil.example/",
    "javascript:alert(1)",
    "/ok\r\nLocation: //evil.example",
)
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
SCALARS = st.one_of(
    st.sampled_from(NASTY),
    TEXT,
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats().map(str),
    st.dates().map(date.isoformat),
    st.datetimes().map(lambda at: at.strftime("%Y-%m-%dT%H:%M")),
)
FORM_VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, min_size=2, max_size=3),  # the field sent more than once
    st.just(DROP),
)
EXTRA_FIELDS = ("id", "csrf_token", "submit", "calculate", "state", "version", "role", "")

JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([2**31, 2**63, -(2**63) - 1, 10**30, 10**400]),
    st.floats(),  # NaN and infinities too: Python's JSON reads them
    st.sampled_from(NASTY),
    TEXT,
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)
# Bodies that are not a JSON object, by a short name (hypothesis prints what it drew).
NOT_JSON_OBJECTS = {
    "a list": ("application/json", "[]"),
    "a string": ("application/json", '"text"'),
    "a number": ("application/json", "42"),
    "null": ("application/json", "null"),
    "broken JSON": ("application/json", "{"),
    "JSON and more": ("application/json", '{"a": 1} trailing'),
    "100,000 nested lists": ("application/json", "[" * 100_000 + "]" * 100_000),
    "50,000 nested objects": ("application/json", '{"a": ' * 50_000 + "1" + "}" * 50_000),
    "NUL": ("application/json", "\x00"),
    "empty": ("application/json", ""),
    "a 5,000-digit number": ("application/json", "1" * 5000),
    "JSON sent as text": ("text/plain", "{}"),
    "a form": ("application/x-www-form-urlencoded", "mrn=1"),
}
QUERY_NAMES = (
    "q",
    "page",
    "sort",
    "state",
    "urgency",
    "target",
    "target_status",
    "mine",
    "start",
    "end",
    "diagnosis_category",
    "lead_surgeon",
    "who",
    "decision",
    "next",
    "user",
    "action",
    "outcome",
    "mrn",
    "from",
    "to",
    "",
)
QUERY_WORDS = (
    "1",
    "2",
    "due",
    "name",
    "urgency",
    "referral",
    "in_state",
    "breached",
    "due_soon",
    "attention",
    "pending",
    "none",
    "emergency",
    "urgent",
    "routine",
    "mdt_review",
    "imaging",
    "metastatic_spinal",
    "surgeon",
    "me",
    "all",
    "plan_surgery",
    "2026-01-01",
    "/patients/",
)
ID_EDGES = (
    "0",
    "1",
    str(2**31 - 1),
    str(2**31),
    str(2**63),
    "9" * 40,
    "-1",
    "1.0",
    "abc",
    "\u0661",
)
PATH_NASTY = (SCRIPT, SQL, "%00", "x" * 2000, "..", "../../config.py", "😀", "", "-1", "1e3")


# -- the database: counts, savepoints, what PostgreSQL would refuse --------------------------------


def counts() -> dict[str, int]:
    return {
        model.__tablename__: db.session.scalar(select(func.count()).select_from(model))
        for model in TABLES
    }


def _control(value: Any) -> bool:
    """A C0 control character other than tab, CR and LF, anywhere in a stored value."""
    if isinstance(value, str):
        return any(ord(c) < 32 and c not in "\t\r\n" for c in value)
    if isinstance(value, dict):
        return any(_control(k) or _control(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_control(v) for v in value)
    return False


def stored_control_characters() -> list[str]:
    """Rows whose text (or JSON data) holds a control character, as 'table.column id'."""
    found = []
    for model in TABLES:
        table = model.__table__
        columns = [c for c in table.columns if not c.primary_key and not c.name.endswith("_hash")]
        for row in db.session.execute(select(table.c.id, *columns)):
            found += [
                f"{table.name}.{c.name} of row {row[0]}: {row[i + 1]!r:.80}"
                for i, c in enumerate(columns)
                if _control(row[i + 1])
            ]
    return found


@contextmanager
def isolated():
    """One example in a savepoint of its own, rolled back afterwards, whatever happened."""
    db.session.commit()  # nothing of the test's own is left pending inside the savepoint
    savepoint = db.session.get_bind().begin_nested()
    try:
        yield
    finally:
        db.session.rollback()
        if savepoint.is_active:
            savepoint.rollback()
        db.session.expunge_all()
        _clear_g()


def _has_nul(parameters: Any) -> bool:
    if isinstance(parameters, str):
        return "\x00" in parameters
    if isinstance(parameters, dict):
        return any(_has_nul(v) for v in parameters.values())
    if isinstance(parameters, list | tuple):
        return any(_has_nul(v) for v in parameters)
    return False


@pytest.fixture
def postgres_rules(app):
    """On SQLite, refuse what PostgreSQL refuses, as psycopg and PostgreSQL would."""
    with app.app_context():
        engine = db.engine
    if engine.dialect.name != "sqlite":
        yield
        return

    def no_nul(conn, cursor, statement, parameters, context, executemany):
        if _has_nul(parameters):
            raise ValueError("PostgreSQL text fields cannot contain NUL (0x00) bytes")

    def varchar_lengths(session, flush_context, instances):
        for obj in (*session.new, *session.dirty):
            for prop in inspect(obj).mapper.column_attrs:
                column = prop.columns[0]
                value = obj.__dict__.get(prop.key)
                length = getattr(column.type, "length", None)
                too_long = isinstance(value, str) and bool(length) and len(value) > length
                if isinstance(column.type, String) and too_long:
                    raise ValueError(
                        f"value too long for type character varying({length}): "
                        f"{column.table.name}.{column.name}"
                    )

    event.listen(engine, "before_cursor_execute", no_nul)
    event.listen(Session, "before_flush", varchar_lengths)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", no_nul)
        event.remove(Session, "before_flush", varchar_lengths)


# -- clients ---------------------------------------------------------------------------------------


class Browser:
    """A test client of its own, logged in as one user (or anonymous)."""

    def __init__(self, app, username: str | None = None):
        self.client = app.test_client()
        self.username = username
        if username:
            response = self.open(
                "POST", "/login", data={"username": username, "password": PASSWORD}
            )
            _clear_g()
            response = pass_second_factor(self.client, response, username)
            assert response.status_code == 302, response.text

    def open(self, method: str, url: str, **kw):
        # Every request shares the fixture's app context, so what a request keeps on `g` (the
        # logged-in user, the API user) would carry over to the next one, from client to
        # client and example to example; in production each request has its own.
        _clear_g()
        try:
            response = self.client.open(url, method=method, **kw)
            response.get_data()  # read it all, then close it: a file sent is closed at once
            response.close()
            return response
        finally:
            _clear_g()


def _clear_g() -> None:
    for name in list(g):
        g.pop(name, None)


@cache
def quick_hash() -> str:
    return generate_password_hash(PASSWORD, method="pbkdf2:sha256:1")


def user(username: str) -> User:
    return db.session.scalar(select(User).where(User.username == username))


def local_input(at: datetime) -> str:
    return at.astimezone(LOCAL).strftime("%Y-%m-%dT%H:%M")


def field_names(fields) -> list[str]:
    """Form field names of dictionary fields: a score is one select per component."""
    out = []
    for f in fields:
        if f.kind == "score":
            out += [f"{f.name}__{component}" for component in f.score.components]
        else:
            out.append(f.name)
    return out


def form_class_fields(cls) -> list[str]:
    """The fields a WTForms form class declares (its own and inherited), but its buttons."""
    names = []
    for name in dir(cls):
        unbound = getattr(cls, name, None)
        if isinstance(unbound, UnboundField) and not issubclass(unbound.field_class, SubmitField):
            names.append(name)
    return sorted(names)


def encode(data: dict[str, Any]) -> dict[str, Any]:
    """Service data as a browser would post it: scores per component, yes/no, text."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update({f"{key}__{c}": str(points) for c, points in value.items()})
        elif isinstance(value, bool):
            out[key] = "yes" if value else "no"
        elif isinstance(value, list):
            out[key] = [str(v) for v in value]
        else:
            out[key] = str(value)
    return out


# -- the world every test fuzzes -------------------------------------------------------------------

HIDDEN = ("occurred_at", "expected_version", "request_id")
# The step forms whose shared hidden fields are swept: a step, the MDT outcome, amend, void.
SWEEP_HIDDEN = {
    "pathway.record:referred:add_note",
    "pathway.mdt_outcome",
    "pathway.amend:imaging_reported:record_imaging",
    "pathway.void",
}
# The events call whose top-level fields (the same for every trigger) are swept.
API_SWEEP_TOP = {"patients", "pathways", "referred:add_note"}

# The pathways GET pages are fuzzed on (each form makes the one it needs): a state, and for
# "imaging_reported" a state with a report recorded in it.
GET_SETUPS = ("imaging", "imaging_reported", "mdt_review", "surgery_scheduled", "surveillance")


def _state(setup: str) -> str:
    """The state a setup's pathway is in ("imaging_reported": imaging, with a report;
    "referred_tasked": referred, with an open task)."""
    return setup.removesuffix("_reported").removesuffix("_tasked")


# (pathway, trigger, who): the step forms fuzzed; every trigger with data fields is among them.
STEP_FORMS = (
    ("referred", "request_imaging", "coordinator"),
    ("referred", "record_assessment", "coordinator"),
    ("referred", "withdraw", "coordinator"),
    ("referred", "add_note", "coordinator"),
    ("referred", "record_lesion", "coordinator"),
    ("referred", "sign_off", "surgeon"),
    ("referred", "reassign", "coordinator"),
    ("referred", "communicate_diagnosis", "coordinator"),
    ("referred", "record_adjustment", "coordinator"),
    ("referred", "upgrade_referral", "coordinator"),
    ("referred", "rule_out_cancer", "coordinator"),
    ("referred", "start_palliative_care", "coordinator"),
    ("mdt_review", "agree_treatment", "coordinator"),
    ("post_op", "start_oncology_treatment", "coordinator"),
    ("imaging_reported", "record_imaging", "coordinator"),
    ("imaging_reported", "refer_to_mdt", "coordinator"),
    ("biopsy", "record_biopsy", "coordinator"),
    ("mdt_review", "schedule_mdt", "coordinator"),
    ("surgery_scheduled", "record_preop_assessment", "coordinator"),
    ("surgery_scheduled", "record_surgery", "surgeon"),
    ("surgery_scheduled", "refer_to_mdt", "coordinator"),
    ("post_op", "record_complication", "surgeon"),
    ("rehabilitation", "record_therapy_session", "coordinator"),
    ("rehabilitation", "start_surveillance", "coordinator"),
    ("oncology_treatment", "record_treatment", "coordinator"),
    ("surveillance", "record_follow_up", "coordinator"),
    ("surveillance", "suspect_recurrence", "coordinator"),
    ("referred", d.TRACKING_NOTE_TRIGGER, "coordinator"),
    ("referred", d.ADD_TASK_TRIGGER, "coordinator"),
    ("referred_tasked", d.UPDATE_TASK_TRIGGER, "coordinator"),
    ("referred_tasked", d.COMPLETE_TASK_TRIGGER, "coordinator"),
    ("referred_tasked", d.CANCEL_TASK_TRIGGER, "coordinator"),
)


@dataclass
class PostForm:
    """A form as a browser posts it: where, as whom, a valid submission, what to fuzz."""

    endpoint: str
    url: str
    who: str | None
    baseline: dict[str, Any]
    fields: tuple[str, ...]
    other_urls: tuple[str, ...] = ()
    query_fields: tuple[str, ...] = ()
    fresh_client: bool = False  # a new client per example (the login form logs it in)
    preview_field: str | None = None  # a button that only shows results, storing nothing
    accepts: tuple[int, ...] = (302,)  # what the valid submission answers
    # The hidden fields every step form shares (the same code) are swept on a few forms only.
    sweep_hidden: bool = False

    def sweep_fields(self, form_name: str) -> list[str]:
        """The fields the sweep covers: all but repeats of code swept elsewhere (the shared
        hidden fields, dictionary fields swept on another form, the second and later
        components of a score)."""
        out, scores = [], set()
        shared = dictionary_fields(form_name)
        for name in self.fields:
            if name in HIDDEN and not self.sweep_hidden:
                continue
            if name in shared and SWEPT_BY[field_key(shared[name])] != form_name:
                continue
            score, _, component = name.partition("__")
            if component:
                if score in scores:
                    continue
                scores.add(score)
            out.append(name)
        return out


@dataclass
class ApiCall:
    url: str
    baseline: dict[str, Any]
    data_fields: tuple[str, ...] = ()  # the fields inside "data", fuzzed too
    pathway_id: int | None = None
    sweep_top: bool = True  # sweep the top-level fields (the same for every trigger)
    method: str = "POST"


@dataclass
class World:
    """Users, tokens, a patient and pathways in the states the forms need, made once per test.

    Only ids and plain values are kept: each example's rollback detaches every ORM object.
    """

    app: Any
    user_ids: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, tuple[int, dict[str, str]]] = field(default_factory=dict)
    reset_token: str = ""  # a password reset link's, for the viewer
    patient_id: int = 0
    pathways: dict[str, tuple[int, int]] = field(default_factory=dict)  # setup -> (id, version)
    tasks: dict[str, int] = field(default_factory=dict)  # setup -> its open task's number
    browsers: dict[str | None, Browser] = field(default_factory=dict)
    read: dict[str, tuple[str, ...]] = field(default_factory=dict)  # rule -> parameters read
    now: datetime = field(default_factory=lambda: datetime.now(UTC).replace(second=0))

    def setup(self) -> World:
        self.user_ids = {}
        for u in db.session.scalars(select(User)):
            self.user_ids[u.username] = u.id
            # Each test logs its users in afresh: a hash that is quick to check keeps that
            # from dominating the run (scrypt is slow on purpose).
            u.password_hash = quick_hash()
        for name in ROLES:
            token, plain = create_token(user(name), "fuzz")
            self.tokens[name] = (token.id, {"Authorization": f"Bearer {plain}"})
        _, self.reset_token = issue_reset(user("viewer"), user("admin"))
        self.patient_id = new_patient(user("coordinator"), mrn="FUZZ-P1").id
        self.meeting_id = create_meeting(MEETING, user("coordinator")).id
        self.view_ids = {
            who: save_view(user(who), f"{who}'s", "worklist", {"state": "imaging"}, True).id
            for who in ("coordinator", "surgeon")
        }
        db.session.commit()
        return self

    def browser(self, who: str | None) -> Browser:
        if who not in self.browsers:
            self.browsers[who] = Browser(self.app, who)
        return self.browsers[who]

    def pathway(self, setup: str) -> tuple[int, int]:
        """(id, version) of a pathway walked to ``setup``, made the first time it is asked for."""
        if setup not in self.pathways:
            coordinator = user("coordinator")
            referral = self.now - timedelta(days=300)
            drive = Driver(new_pathway(coordinator, referral, "urgent"), coordinator, referral)
            state = _state(setup)
            if state != d.INITIAL_STATE:
                drive.walk_to(state)
            if setup == "imaging_reported":
                drive.do("record_imaging")
            if setup.endswith("_tasked"):
                self.tasks[setup] = drive.do(d.ADD_TASK_TRIGGER).event.seq
            db.session.commit()
            self.pathways[setup] = (drive.pathway.id, drive.pathway.version)
        return self.pathways[setup]

    def parameters_read(self, rule: str) -> tuple[str, ...]:
        """The query parameters the page of ``rule`` reads, as an administrator and as a
        coordinator (found once per test)."""
        if rule not in self.read:
            variables = {name: conv for conv, name in _RULE_VARIABLE.findall(rule)}
            path = _fill(rule, {n: _known_values(self, c, n)[0] for n, c in variables.items()})
            names: set[str] = set()
            if rule.startswith("/api/"):
                names.update(
                    parameters_read(self.app, self.browser(None), path, self.tokens["admin"][1])
                )
            else:
                for who in ("coordinator", "admin"):
                    names.update(parameters_read(self.app, self.browser(who), path, {}))
            self.read[rule] = tuple(sorted(names))
        return self.read[rule]

    def all_pathways(self) -> list[int]:
        """Pathways in several states, for the pages that show one."""
        return [self.pathway(setup)[0] for setup in GET_SETUPS]

    def step(self, setup: str, trigger: str) -> tuple[int, str, dict[str, Any]]:
        """(seq, from_state, data) of the pathway's first ``trigger`` step."""
        pathway_id, _ = self.pathway(setup)
        seq, source, data = db.session.execute(
            select(Event.seq, Event.from_state, Event.data)
            .where(Event.pathway_id == pathway_id, Event.trigger == trigger)
            .order_by(Event.seq)
            .limit(1)
        ).one()
        return seq, source, dict(data)

    # -- the forms ---------------------------------------------------------------------------

    def hidden(self, version: int) -> dict[str, str]:
        return {
            "occurred_at": local_input(self.now - timedelta(minutes=5)),
            "expected_version": str(version),
            "request_id": uuid.uuid4().hex,
        }

    def post_form(self, name: str) -> PostForm:
        kind, *args = name.split(":")
        form = getattr(self, "_form_" + kind.replace(".", "_"))(*args)
        form.sweep_hidden = name in SWEEP_HIDDEN or kind.startswith("patients.")
        return form

    def _form_auth_login(self) -> PostForm:
        return PostForm(
            "auth.login",
            "/login",
            None,
            {"username": "coordinator", "password": PASSWORD},
            tuple(form_class_fields(LoginForm)),
            query_fields=("next",),
            fresh_client=True,
        )

    def _form_users_create(self) -> PostForm:
        baseline = {
            "username": "new-user",
            "full_name": "New User",
            "role": "viewer",
            "password": PASSWORD,
        }
        return PostForm("users.create", "/users/", "admin", baseline, self._fields(UserCreateForm))

    def _form_users_edit(self) -> PostForm:
        target, admin = self.user_ids["coordinator2"], self.user_ids["admin"]
        return PostForm(
            "users.edit",
            f"/users/{target}",
            "admin",
            {"role": "surgeon", "active": "y"},
            self._fields(UserEditForm),
            other_urls=(f"/users/{admin}", "/users/0", f"/users/{2**31 - 1}"),
        )

    def _form_account_create_token(self) -> PostForm:
        from tracker.accounts.routes import TokenForm

        return PostForm(
            "account.create_token",
            "/account/tokens",
            "coordinator",
            {"name": "EHR interface"},
            self._fields(TokenForm),
            accepts=(200,),  # the new token is shown once, on this answer
        )

    def _form_account_revoke_token(self) -> PostForm:
        own, other = self.tokens["coordinator"][0], self.tokens["surgeon"][0]
        return PostForm(
            "account.revoke_token",
            f"/account/tokens/{own}/revoke",
            "coordinator",
            {},
            ("token_id",),
            other_urls=(
                f"/account/tokens/{other}/revoke",
                "/account/tokens/0/revoke",
                f"/account/tokens/{2**31 - 1}/revoke",
            ),
        )

    def _form_account_change_password(self) -> PostForm:
        from tracker.accounts.forms import PasswordChangeForm

        new = "another-correct-horse"
        return PostForm(
            "account.change_password",
            "/account/password",
            "coordinator",
            {"current": PASSWORD, "new": new, "confirm": new},
            self._fields(PasswordChangeForm),
        )

    def _form_account_alerts(self) -> PostForm:
        from tracker.accounts.routes import AlertEmailForm

        return PostForm(
            "account.alerts",
            "/account/alerts",
            "coordinator",
            {"email": "c.jones@hospital.example", "alert_email": "daily"},
            self._fields(AlertEmailForm),
        )

    def _form_account_end_other_sessions(self) -> PostForm:
        return PostForm(
            "account.end_other_sessions",
            "/account/sessions/end-others",
            "coordinator",
            {},
            ("keep",),
        )

    def _form_users_unlock(self) -> PostForm:
        target = self.user_ids["coordinator2"]
        return PostForm(
            "users.unlock",
            f"/users/{target}/unlock",
            "admin",
            {},
            ("until",),
            other_urls=(
                f"/users/{self.user_ids['admin']}/unlock",
                "/users/0/unlock",
                f"/users/{2**31 - 1}/unlock",
            ),
        )

    def _form_mdt_new_meeting(self) -> PostForm:
        return PostForm(
            "mdt.new_meeting",
            "/mdt/meetings/new",
            "coordinator",
            {**MEETING, "start_time": "13:00"},
            self._fields(MeetingForm),
        )

    def _form_mdt_edit_meeting(self) -> PostForm:
        return PostForm(
            "mdt.edit_meeting",
            f"/mdt/meetings/{self.meeting_id}/edit",
            "coordinator",
            {**MEETING, "location": "Room 4"},
            self._fields(MeetingForm),
            other_urls=("/mdt/meetings/0/edit", f"/mdt/meetings/{2**31 - 1}/edit"),
        )

    def _form_mdt_new_series(self) -> PostForm:
        return PostForm(
            "mdt.new_series",
            "/mdt/meetings/series",
            "coordinator",
            {**MEETING, "start_time": "10:30", "weekday": "thursday", "weeks": "2"},
            self._fields(SeriesForm),
        )

    def _form_mdt_add_attendance(self) -> PostForm:
        return PostForm(
            "mdt.add_attendance",
            f"/mdt/meetings/{self.meeting_id}/attendance",
            "coordinator",
            {"user": "surgeon", "specialty": "spinal_surgery"},
            self._fields(AttendanceForm),
            other_urls=("/mdt/meetings/0/attendance",),
        )

    def _form_mdt_list_case(self) -> PostForm:
        pathway_id, version = self.pathway("mdt_review")
        return PostForm(
            "mdt.list_case",
            f"/mdt/pathways/{pathway_id}/list",
            "coordinator",
            {
                "meeting_id": str(self.meeting_id),
                "question": "Surgery or radiotherapy?",
                "presenter": "surgeon",
                "triage": "full_discussion",
                "expected_version": str(version),
                "request_id": uuid.uuid4().hex,
            },
            self._fields(ListingForm),
            other_urls=("/mdt/pathways/0/list",),
        )

    def _form_mdt_edit_letter_template(self) -> PostForm:
        return PostForm(
            "mdt.edit_letter_template",
            "/mdt/letter-templates/gp",
            "admin",
            {"subject": "MDT outcome: {{ patient_name }}", "body": "<p>{{ decision }}</p>"},
            self._fields(TemplateForm),
            other_urls=("/mdt/letter-templates/x",),
        )

    def _form_views_save(self) -> PostForm:
        return PostForm(
            "views.save",
            "/views/",
            "coordinator",
            {"name": "Breaches", "page": "worklist", "query": "target=breached&sort=name"},
            self._fields(SaveForm),
        )

    def _form_views_edit(self) -> PostForm:
        own, other = self.view_ids["coordinator"], self.view_ids["surgeon"]
        return PostForm(
            "views.edit",
            f"/views/{own}/edit",
            "coordinator",
            {"name": "Imaging queue", "shared": "y"},
            self._fields(ChangeForm),
            other_urls=(f"/views/{other}/edit", "/views/0/edit", f"/views/{2**31 - 1}/edit"),
        )

    def _form_bulk_act(self, action: str) -> PostForm:
        setup = "mdt_review" if action == "mdt" else "referred"
        pathway_id, version = self.pathway(setup)
        values = {
            "mdt": {
                "meeting_id": str(self.meeting_id),
                "question": "Surgery or radiotherapy?",
                "presenter": "surgeon",
                "triage": "full_discussion",
            },
            "task": {
                "what": "Chase MRI report",
                "owner": "surgeon2",
                "due_on": (self.now.astimezone(LOCAL).date() + timedelta(days=7)).isoformat(),
            },
        }.get(action, {"lead_surgeon": "surgeon2"})
        return PostForm(
            "bulk.act",
            "/bulk/",
            "coordinator",
            {
                "action": action,
                "pathway": f"{pathway_id}:{version}",
                "request_id": uuid.uuid4().hex,
                "back_page": "worklist",
                "back_query": "state=referred",
                **values,
            },
            ("pathway", *self._fields(BulkForm)),
        )

    def _form_users_reset_link(self) -> PostForm:
        target = self.user_ids["coordinator2"]
        return PostForm(
            "users.reset_link",
            f"/users/{target}/reset-link",
            "admin",
            {},
            ("hours",),
            other_urls=("/users/0/reset-link", f"/users/{2**31 - 1}/reset-link"),
            accepts=(200,),  # the link is shown once, on this answer
        )

    def _form_auth_reset_password(self) -> PostForm:
        from tracker.accounts.forms import PasswordResetForm

        new = "another-correct-horse"
        return PostForm(
            "auth.reset_password",
            f"/password-reset/{self.reset_token}",
            None,
            {"new": new, "confirm": new},
            self._fields(PasswordResetForm),
            other_urls=("/password-reset/x", "/password-reset/" + "y" * 43),
        )

    def _form_users_reset_two_factor(self) -> PostForm:
        target = self.user_ids["coordinator2"]
        return PostForm(
            "users.reset_two_factor",
            f"/users/{target}/two-factor/reset",
            "admin",
            {},
            ("code",),
            other_urls=("/users/0/two-factor/reset", f"/users/{2**31 - 1}/two-factor/reset"),
        )

    def _form_account_two_factor(self) -> PostForm:
        from tracker.accounts.forms import CodeForm

        # No code the fuzzer types can match the new secret: the answer says so (422).
        return PostForm(
            "account.two_factor",
            "/account/two-factor",
            "coordinator",
            {"code": "000000"},
            self._fields(CodeForm),
            accepts=(422,),
        )

    def _form_account_recovery_codes(self) -> PostForm:
        from tracker.accounts.forms import CodeForm

        # A fresh code is accepted once only (tests/test_two_factor.py): a wrong one, 422.
        return PostForm(
            "account.recovery_codes",
            "/account/two-factor/recovery-codes",
            "admin",
            {"code": "000000"},
            self._fields(CodeForm),
            accepts=(422,),
        )

    def _form_patients_register(self) -> PostForm:
        baseline = {
            "mrn": "FUZZ-NEW",
            "family_name": "Doe",
            "given_name": "John",
            "birth_date": "1970-01-01",
            "sex": "male",
            "request_id": uuid.uuid4().hex,
        }
        fields = (*field_names(PATIENT_FIELDS), "request_id")
        return PostForm("patients.register", "/patients/new", "coordinator", baseline, fields)

    def _form_patients_edit(self) -> PostForm:
        baseline = {
            "mrn": "FUZZ-P1",
            "nhs_number": "943 476 5919",
            "family_name": "Doe",
            "given_name": "Jane",
            "birth_date": "1960-05-01",
            "sex": "female",
            "gp_practice": "Castle Street Surgery",
        }
        return PostForm(
            "patients.edit",
            f"/patients/{self.patient_id}/edit",
            "coordinator",
            baseline,
            field_names(PATIENT_FIELDS),
            other_urls=("/patients/0/edit", f"/patients/{2**31 - 1}/edit"),
        )

    def _form_teams_emergency_access(self) -> PostForm:
        pathway_id, _ = self.pathway("referred")
        patient_id = db.session.get(Pathway, pathway_id).patient_id
        return PostForm(
            "teams.emergency_access",
            f"/patients/{patient_id}/emergency-access",
            "coordinator",
            {"reason": "Admitted overnight, on call", "next": f"/pathways/{pathway_id}"},
            ("reason", "next"),
            other_urls=("/patients/0/emergency-access", f"/patients/{2**31 - 1}/emergency-access"),
        )

    def _form_patients_open_pathway(self) -> PostForm:
        baseline = {
            "referral_received_at": local_input(self.now - timedelta(days=1)),
            **REFERRAL,
            "lead_surgeon": "surgeon",
            "coordinator": "coordinator",
            "request_id": uuid.uuid4().hex,
        }
        return PostForm(
            "patients.open_pathway",
            f"/patients/{self.patient_id}/pathways/new",
            "coordinator",
            baseline,
            (*field_names(PATHWAY_FIELDS), "request_id"),
            other_urls=("/patients/0/pathways/new", f"/patients/{2**31 - 1}/pathways/new"),
        )

    def _form_pathway_record(self, setup: str, trigger: str) -> PostForm:
        pathway_id, version = self.pathway(setup)
        state = _state(setup)
        data = valid_data(trigger, state, self.now - timedelta(minutes=5))
        if setup in self.tasks and any(f.name == "task" for f in all_fields_for(trigger, state)):
            data["task"] = self.tasks[setup]
        who = next(w for s, t, w in STEP_FORMS if (s, t) == (setup, trigger))
        other = self.pathway("referred" if setup != "referred" else "imaging")[0]
        return PostForm(
            "pathway.record",
            f"/pathways/{pathway_id}/record/{trigger}",
            who,
            {**self.hidden(version), **encode(data)},
            (*field_names(all_fields_for(trigger, state)), *self.hidden(version)),
            other_urls=(
                f"/pathways/{other}/record/{trigger}",  # not now: 409
                f"/pathways/{pathway_id}/record/no_such_step",
                f"/pathways/{2**31 - 1}/record/{trigger}",
            ),
        )

    def _form_pathway_mdt_outcome(self) -> PostForm:
        pathway_id, version = self.pathway("mdt_review")
        baseline = {
            **self.hidden(version),
            "decision": "plan_surgery",
            "meeting_date": self.now.astimezone(LOCAL).date().isoformat(),
            "disciplines": ["spinal_surgery", "radiology"],
            "rationale": "Cord compression at T8; stabilise and decompress.",
            "sins__location": "3",
            "sins__pain": "3",
            "sins__bone_lesion": "2",
            "sins__alignment": "4",
            "sins__collapse": "3",
            "sins__posterolateral": "1",
            "ecog": "2",
        }
        fields = field_names(all_fields_for("plan_surgery", "mdt_review"))
        return PostForm(
            "pathway.mdt_outcome",
            f"/pathways/{pathway_id}/mdt-outcome",
            "surgeon",
            baseline,
            ("decision", "calculate", *fields, *self.hidden(version)),
            other_urls=(f"/pathways/{self.pathway('referred')[0]}/mdt-outcome",),
            preview_field="calculate",
        )

    def _form_pathway_amend(self, setup: str, trigger: str) -> PostForm:
        pathway_id, version = self.pathway(setup)
        seq, source, step = self.step(setup, trigger)
        names = [
            "corrected_reason" if name == "reason" else name
            for name in field_names(all_fields_for(trigger, source))
        ]
        recorded = encode({k: v for k, v in step.items() if not k.endswith(("_total", "_band"))})
        recorded = {("corrected_reason" if k == "reason" else k): v for k, v in recorded.items()}
        changed = {"region": "Lumbar spine"} if trigger == "record_imaging" else {}
        if trigger == "plan_surgery":
            changed = {"rationale": "Corrected rationale."}
        hidden = self.hidden(version)
        del hidden["occurred_at"]  # an amendment happens now
        return PostForm(
            "pathway.amend",
            f"/pathways/{pathway_id}/amend/{seq}",
            "coordinator",
            {**hidden, **recorded, **changed, "reason": "Typed in the wrong box."},
            (*names, "reason", *hidden),
            other_urls=(
                f"/pathways/{pathway_id}/amend/1",
                f"/pathways/{pathway_id}/amend/{2**31 - 1}",
            ),
        )

    def _form_pathway_void(self) -> PostForm:
        pathway_id, version = self.pathway("imaging")
        hidden = self.hidden(version)
        del hidden["occurred_at"]
        return PostForm(
            "pathway.void",
            f"/pathways/{pathway_id}/void",
            "coordinator",
            {**hidden, "reason": "Recorded on the wrong patient."},
            ("reason", *hidden),
            other_urls=(f"/pathways/{self.pathway('referred')[0]}/void",),
        )

    @staticmethod
    def _fields(form_cls) -> tuple[str, ...]:
        return tuple(form_class_fields(form_cls))

    # -- the API calls -----------------------------------------------------------------------

    def api_call(self, name: str) -> ApiCall:
        at = (self.now - timedelta(minutes=5)).isoformat()
        if name == "patients":
            baseline = {
                "mrn": "FUZZ-API",
                "family_name": "Doe",
                "given_name": "Jane",
                "birth_date": "1960-05-01",
                "sex": "female",
            }
            return ApiCall("/api/v1/patients", baseline)
        if name == "patient_details":
            baseline = {
                "nhs_number": "943 476 5919",
                "family_name": "Doe",
                "gp_practice": "Castle Street Surgery",
            }
            return ApiCall(f"/api/v1/patients/{self.patient_id}", baseline, method="PATCH")
        if name == "pathways":
            baseline = {
                "patient_id": self.patient_id,
                "request_id": uuid.uuid4().hex,
                "referral_received_at": (self.now - timedelta(days=1)).isoformat(),
                "referral_source": "gp",
                "urgency": "urgent",
                "diagnosis_category": "metastatic_spinal",
                "tumour_site": "T8",
                "primary_cancer_site": "lung",
                "presenting_symptoms": ["back_pain"],
                "lead_surgeon": "surgeon",
                "coordinator": "coordinator",
            }
            return ApiCall("/api/v1/pathways", baseline)
        if name == "mdt_meetings":
            values = {k: v for k, v in MEETING.items() if k != "status"}  # always scheduled
            return ApiCall("/api/v1/mdt-meetings", {**values, "start_time": "14:00"})
        if name == "mdt_cases":
            pathway_id, version = self.pathway("mdt_review")
            baseline = {
                "pathway_id": pathway_id,
                "question": "Surgery or radiotherapy?",
                "presenter": "surgeon",
                "triage": "full_discussion",
                "expected_version": version,
                "request_id": uuid.uuid4().hex,
            }
            return ApiCall(
                f"/api/v1/mdt-meetings/{self.meeting_id}/cases", baseline, pathway_id=pathway_id
            )
        if name in ("tasks", "task_change"):
            setup = "referred" if name == "tasks" else "referred_tasked"
            pathway_id, version = self.pathway(setup)
            top = {"expected_version": version, "request_id": uuid.uuid4().hex}
            if name == "tasks":
                due = (self.now + timedelta(days=3)).astimezone(LOCAL).date().isoformat()
                baseline = {"what": "Chase the MRI", "owner": "surgeon", "due_on": due, **top}
                return ApiCall(
                    f"/api/v1/pathways/{pathway_id}/tasks", baseline, pathway_id=pathway_id
                )
            task_id = db.session.scalar(
                select(PathwayTask.id).where(
                    PathwayTask.pathway_id == pathway_id, PathwayTask.seq == self.tasks[setup]
                )
            )
            baseline = {"action": "cancel", "reason": "Not needed", **top}
            return ApiCall(
                f"/api/v1/pathways/{pathway_id}/tasks/{task_id}", baseline, pathway_id=pathway_id
            )
        setup, trigger = name.split(":")
        pathway_id, version = self.pathway(setup)
        if trigger == d.AMEND_TRIGGER:
            data = {
                "event_seq": self.step(setup, "record_imaging")[0],
                "changes": {"region": "Lumbar spine"},
                "reason": "Typed in the wrong box.",
            }
        elif trigger == d.VOID_TRIGGER:
            data = {"reason": "Recorded on the wrong patient."}
        elif d.is_mdt_outcome(trigger, setup):
            data = {
                "meeting_date": self.now.astimezone(LOCAL).date().isoformat(),
                "disciplines": ["spinal_surgery", "radiology"],
                "rationale": "Agreed.",
                "sins": {
                    "location": 3,
                    "pain": 3,
                    "bone_lesion": 2,
                    "alignment": 4,
                    "collapse": 3,
                    "posterolateral": 1,
                },
            }
        else:
            data = valid_data(trigger, _state(setup), self.now)
        baseline = {
            "trigger": trigger,
            "occurred_at": at,
            "expected_version": version,
            "request_id": uuid.uuid4().hex,
            "data": data,
        }
        return ApiCall(
            f"/api/v1/pathways/{pathway_id}/events",
            baseline,
            tuple(data),
            pathway_id=pathway_id,
            sweep_top=name in API_SWEEP_TOP,
        )


@pytest.fixture
def world(app, session, users, postgres_rules):
    return World(app).setup()


def _post_form_names() -> list[str]:
    names = [
        "auth.login",
        "users.create",
        "users.edit",
        "account.create_token",
        "account.revoke_token",
        "account.change_password",
        "account.end_other_sessions",
        "account.alerts",
        "users.unlock",
        "users.reset_link",
        "auth.reset_password",
        "users.reset_two_factor",
        "account.two_factor",
        "account.recovery_codes",
        "patients.register",
        "patients.edit",
        "patients.open_pathway",
        "teams.emergency_access",
        "mdt.new_meeting",
        "mdt.edit_meeting",
        "mdt.new_series",
        "mdt.add_attendance",
        "mdt.list_case",
        "mdt.edit_letter_template",
        "views.save",
        "views.edit",
        "bulk.act:lead_surgeon",
        "bulk.act:mdt",
        "bulk.act:task",
    ]
    names += [f"pathway.record:{setup}:{trigger}" for setup, trigger, _ in STEP_FORMS]
    names += [
        "pathway.mdt_outcome",
        "pathway.amend:imaging_reported:record_imaging",
        "pathway.amend:surgery_scheduled:plan_surgery",
        "pathway.void",
    ]
    return names


AMENDED_FROM = {"record_imaging": "imaging", "plan_surgery": "mdt_review"}


def dictionary_fields(name: str) -> dict[str, Field]:
    """Form field name -> the data dictionary's field it comes from, for one POST form."""
    kind, *args = name.split(":")
    fields: tuple[Field, ...] = ()
    if kind == "pathway.record":
        fields = all_fields_for(args[1], _state(args[0]))
    elif kind == "pathway.mdt_outcome":
        fields = all_fields_for("plan_surgery", "mdt_review")
    elif kind == "pathway.amend":
        fields = all_fields_for(args[1], AMENDED_FROM[args[1]])
    elif kind == "pathway.void":
        fields = all_fields_for(d.VOID_TRIGGER, None)
    elif kind in ("patients.register", "patients.edit"):
        fields = PATIENT_FIELDS
    elif kind == "patients.open_pathway":
        fields = PATHWAY_FIELDS
    out = {}
    for f in fields:
        for form_name in field_names((f,)):
            out[
                "corrected_reason" if kind == "pathway.amend" and f.name == "reason" else form_name
            ] = f
    return out


POST_FORMS = _post_form_names()
# The one form whose sweep covers each dictionary field: a field shared by several forms (the
# note, the ECOG, the MDT record in its amendment) is built by the same code for each.
SWEPT_BY: dict[tuple, str] = {}


def field_key(f: Field) -> tuple:
    return (type(f).__name__, repr(f))


for _name in POST_FORMS:
    for _field in dictionary_fields(_name).values():
        SWEPT_BY.setdefault(field_key(_field), _name)
API_CALLS = (
    "patients",
    "patient_details",
    "pathways",
    "referred:add_note",
    "referred:record_assessment",
    "imaging_reported:record_imaging",
    "imaging_reported:amend_event",
    "imaging:void_last_step",
    "mdt_review:plan_surgery",
    "mdt_meetings",
    "mdt_cases",
    "surgery_scheduled:record_surgery",
    "oncology_treatment:record_treatment",
    "tasks",
    "task_change",
)

# -- checking an answer ----------------------------------------------------------------------------

_ERROR_PARTS = re.compile(
    r'<div[^>]*class="[^"]*(?:invalid-feedback|alert-danger|alert-warning)[^"]*"[^>]*>(.*?)</div>'
    r'|<p class="lead">(.*?)</p>',
    re.S,
)


def error_text(response) -> str:
    """What a refused page says about the refusal: field errors, alerts, the error page."""
    parts = _ERROR_PARTS.findall(response.get_data(as_text=True))
    words = " ".join(a or b for a, b in parts)
    return html.unescape(re.sub(r"<[^>]+>", " ", words)).strip()


def api_error_problem(response) -> str | None:
    body = response.get_json(silent=True) if response.is_json else None
    if not isinstance(body, dict):
        return f"not a JSON error: {response.content_type} {response.get_data(as_text=True)[:80]!r}"
    ok = (
        isinstance(body.get("error"), str)
        and body["error"]
        and isinstance(body.get("message"), str)
        and body["message"].strip()
        and isinstance(body.get("errors"), dict)
    )
    return None if ok else f"not the error shape: {body!r:.200}"


def check(
    response,
    before: dict[str, int],
    *,
    method: str = "GET",
    api: bool = False,
    preview: bool = False,
    accepted_ok: bool = True,
) -> list[str]:
    """What is wrong with one answer to bad input (empty if nothing)."""
    status = response.status_code
    if status >= 500:
        return [f"answered {status}"]
    problems = []
    after = counts()
    changed = after != before
    if response.mimetype == "text/html":
        page = response.get_data(as_text=True)
        problems += [f"shows {raw!r} unescaped" for raw in RAW_MARKUP if raw in page]
    location = response.headers.get("Location")
    if location is not None:
        try:
            parts = urlsplit(location)
            offsite = parts.netloc not in ("", "localhost") or location.startswith(("//", "/\\"))
        except ValueError:
            offsite = True
        if offsite:
            problems.append(f"redirects off the site: {location[:80]!r}")
    if status >= 400:
        if changed:
            problems.append(f"refused ({status}) but stored: {before} -> {after}")
        if api:
            if (problem := api_error_problem(response)) is not None:
                problems.append(problem)
        elif not error_text(response):
            problems.append(f"refused ({status}) without saying why")
    elif method == "GET" and changed:
        problems.append(f"a GET stored something: {before} -> {after}")
    elif method == "POST" and status == 200 and not changed and not preview and not api:
        problems.append("refused with 200, not a 4xx")
    elif method == "POST" and not accepted_ok:
        problems.append(f"accepted ({status})")
    if status < 400 and changed:
        problems += [f"stored a control character: {c}" for c in stored_control_characters()]
    return problems


def describe(body: Any, limit: int = 300) -> str:
    text = repr(body)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


_PATHWAY_PAGE = re.compile(r"^/pathways/(\d+)")
_PATIENT_PAGE = re.compile(r"^/patients/(\d+)")


def shown_after(reader: Browser, before: dict[str, int], location: str | None = None, **ids):
    """Accepted: the pages that show what was stored answer too (data that was stored but
    cannot be shown is a 500 on every later visit)."""
    urls = []
    if location and not location.startswith("/login"):
        urls.append(location.split("#")[0])
        if match := _PATHWAY_PAGE.match(location):
            ids.setdefault("pathway_id", int(match.group(1)))
        if match := _PATIENT_PAGE.match(location):
            ids.setdefault("patient_id", int(match.group(1)))
    if pathway_id := ids.get("pathway_id"):
        urls.append(f"/pathways/{pathway_id}")
    if patient_id := ids.get("patient_id"):
        urls.append(f"/patients/{patient_id}")
    after = counts()
    if after["pathway"] != before["pathway"] or after["patient"] != before["patient"]:
        urls.append("/")
    problems = []
    for url in dict.fromkeys(urls):
        response = reader.open("GET", url)
        if response.status_code >= 500:
            problems.append(f"accepted, then GET {url} answered {response.status_code}")
    return problems


def post(world: World, form: PostForm, body: dict, url: str | None = None, query=None):
    """Post one submission in a savepoint of its own; what is wrong with the answer."""
    # Logged in before the savepoint: a login inside it would be rolled back with it.
    browser = None if form.fresh_client else world.browser(form.who)
    reader = world.browser("coordinator")
    with isolated():
        browser = browser or Browser(world.app, form.who)
        before = counts()
        response = browser.open("POST", url or form.url, data=body, query_string=query or {})
        first = body.get(form.preview_field) if form.preview_field else None
        preview = bool(first[0] if isinstance(first, list) and first else first)
        problems = check(response, before, method="POST", preview=preview)
        location = response.headers.get("Location", "")
        if form.who and location.startswith("/login"):
            problems.append("the fuzzing client was logged out")
        if not problems and response.status_code < 400 and not preview:
            problems += shown_after(reader, before, location)
    return response.status_code, problems


def apply(baseline: dict, changes: dict) -> dict:
    body = dict(baseline)
    for name, value in changes.items():
        if value == DROP:
            body.pop(name, None)
        elif value == REPEAT:
            current = body.get(name) or "x"
            body[name] = [*current, SCRIPT] if isinstance(current, list) else [current, SCRIPT]
        else:
            body[name] = value
    return body


# -- the endpoints: every one fuzzed or excluded ---------------------------------------------------

_RULE_VARIABLE = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")


def _rules(app) -> list[tuple[str, str, str]]:
    return sorted(
        (rule.endpoint, rule.rule, method)
        for rule in app.url_map.iter_rules()
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"})
    )


GET_RULES = [(e, r) for e, r, m in _rules(make_app("sqlite://")) if m == "GET"]
POST_ENDPOINTS = {name.split(":")[0] for name in POST_FORMS}
EVERY_USERS_OWN = {
    "account.create_token",
    "account.change_password",
    "account.end_other_sessions",
    "account.two_factor",
    "account.recovery_codes",
    "views.save",  # every user saves their own views (a viewer too)
}
API_ENDPOINTS = {
    "api.create_patient",
    "api.update_patient",
    "api.create_pathway",
    "api.record_event",
    "api.create_mdt_meeting",
    "api.list_mdt_case",
    "api.create_task",
    "api.change_task",
}


def test_every_endpoint_is_fuzzed_or_excluded(app):
    """A new route fails here until it is fuzzed (or excluded, with the reason)."""
    missing = []
    for endpoint, rule, method in _rules(app):
        if (endpoint, method) in EXCLUDED:
            continue
        if method == "GET":
            covered = (endpoint, rule) in GET_RULES and all(
                converter in ("", "int", "anyint", "path")
                for converter, _ in _RULE_VARIABLE.findall(rule)
            )
        elif method in ("POST", "PATCH"):
            covered = endpoint in POST_ENDPOINTS | API_ENDPOINTS
        else:
            covered = False
        if not covered:
            missing.append(f"{method} {rule} ({endpoint})")
    assert not missing, "not fuzzed; add them here or to EXCLUDED with the reason: " + ", ".join(
        missing
    )
    with_fields = {t for t in d.recordable() if d.entry(t).fields}
    assert with_fields <= {trigger for _, trigger, _ in STEP_FORMS}


# -- GET: every endpoint, path ids and query parameters --------------------------------------------


def _known_values(world: World, converter: str, name: str) -> list[str]:
    """Values of a path variable that name something that exists (the first is the usual)."""
    if converter in ("int", "anyint"):
        known = {
            "pathway_id": world.all_pathways,
            "patient_id": lambda: [world.patient_id],
            "user_id": lambda: [world.user_ids["coordinator2"], *world.user_ids.values()],
            "token_id": lambda: [token_id for token_id, _ in world.tokens.values()],
            "seq": lambda: [1, 2, 3, 4, 5, 6],
        }.get(name, lambda: [1])()
        return [str(v) for v in known]
    return list(
        {
            "trigger": (
                "add_note",
                *d.recordable(),
                d.AMEND_TRIGGER,
                d.VOID_TRIGGER,
                d.OPEN_TRIGGER,
            ),
            "name": ("referrals", "intervals", "standards", "states", "procedures"),
            "token": (world.reset_token, "x"),
            "filename": ("mdt.js", "print.css", "css/bootstrap.min.css"),
            "kind": ("gp", "patient"),
        }.get(name, ("x",))
    )


def _bad_values(converter: str, name: str) -> tuple[str, ...]:
    if converter in ("int", "anyint"):
        return ID_EDGES
    if converter == "path":
        return (*PATH_NASTY, "../config.py", "%2e%2e/config.py", "/etc/passwd")
    return PATH_NASTY


def _path_values(world: World, converter: str, name: str):
    if converter in ("int", "anyint"):
        return st.one_of(
            st.sampled_from(_known_values(world, converter, name)),
            st.sampled_from(ID_EDGES),
            st.integers(min_value=-(2**40), max_value=2**70).map(str),
        )
    values = (*_known_values(world, converter, name), *_bad_values(converter, name))
    return st.one_of(st.sampled_from(values), TEXT)


def _fill(rule: str, values: dict[str, str]) -> str:
    """The rule's path with each variable replaced by its (quoted) value."""

    def fill(variable: re.Match) -> str:
        converter, name = variable.group(1), variable.group(2)
        return quote(values[name], safe="/" if converter == "path" else "")

    return _RULE_VARIABLE.sub(fill, rule)


@st.composite
def _get_requests(draw, world: World, rule: str, read: tuple[str, ...] = ()):
    def fill(variable: re.Match) -> str:
        converter, name = variable.group(1), variable.group(2)
        value = draw(_path_values(world, converter, name))
        return quote(value, safe="/" if converter == "path" else "")

    path = _RULE_VARIABLE.sub(fill, rule)
    query = draw(
        st.dictionaries(
            st.sampled_from(read or QUERY_NAMES) | st.sampled_from(QUERY_NAMES) | TEXT,
            st.sampled_from(QUERY_WORDS) | SCALARS | st.lists(SCALARS, min_size=2, max_size=2),
            max_size=4,
        )
    )
    who = draw(st.sampled_from((*ROLES, None)))
    auth = draw(
        st.sampled_from(("token", "token", "token", "none", "bad", "basic", "long", "nasty"))
    )
    return path, query, who, auth


def _api_headers(world: World, who: str | None, auth: str) -> dict[str, str]:
    token = world.tokens[who or "viewer"][1]["Authorization"]
    return {
        "token": {"Authorization": token},
        "none": {},
        "bad": {"Authorization": "Bearer trk_" + "A" * 43},
        "basic": {"Authorization": "Basic Y29vcmRpbmF0b3I6eA=="},
        "long": {"Authorization": "Bearer trk_" + "A" * 10_000},
        "nasty": {"Authorization": "Bearer " + SQL},
    }[auth]


@pytest.mark.parametrize(("endpoint", "rule"), GET_RULES, ids=[e for e, _ in GET_RULES])
@settings(FUZZ, max_examples=10)
@given(data=st.data())
def test_get_endpoint_fuzz(world, endpoint, rule, data):
    read = world.parameters_read(rule)
    path, query, who, auth = data.draw(_get_requests(world, rule, read), label="request")
    api = path.startswith("/api/")
    headers = _api_headers(world, who, auth) if api else {}
    browser = world.browser(None if api else who)
    with isolated():
        before = counts()
        response = browser.open("GET", path, query_string=query, headers=headers)
        problems = check(response, before, api=api)
    assert not problems, f"GET {path[:200]} {describe(query)} as {who}: {problems}"


GET_SWEEP = (
    SCRIPT,
    SQL,
    "a\x00b",
    LONG,
    "2026-02-30",
    "0001-01-01",
    "9999-12-31",
    "-1",
    "9" * 30,
    "²",
    "9" * 5000,
    "",
    "Zoë 😀 \u202e",
)


GET_SWEEP_DATES = ("2026-02-30", "0001-01-01", "9999-12-31")


class _ReadArgs(ImmutableMultiDict):
    """Query parameters that note which of them the page reads."""

    read: set[str] | None = None

    def _note(self, key) -> None:
        if _ReadArgs.read is not None:
            _ReadArgs.read.add(key)

    def __getitem__(self, key):
        self._note(key)
        return super().__getitem__(key)

    def get(self, key, default=None, type=None):
        self._note(key)
        return super().get(key, default, type)

    def getlist(self, key, type=None):
        self._note(key)
        return super().getlist(key, type)

    def __contains__(self, key) -> bool:
        self._note(key)
        return super().__contains__(key)


def parameters_read(app, browser: Browser, path: str, headers: dict) -> list[str]:
    """The query parameters a page reads (so the sweep sends those, not guesses)."""
    original = app.request_class
    app.request_class = type("ReadingRequest", (original,), {"parameter_storage_class": _ReadArgs})
    _ReadArgs.read = set()
    try:
        with isolated():
            browser.open("GET", path, headers=headers)
        return sorted(_ReadArgs.read)
    finally:
        _ReadArgs.read = None
        app.request_class = original


@pytest.mark.parametrize(("endpoint", "rule"), GET_RULES, ids=[e for e, _ in GET_RULES])
def test_get_endpoint_sweep(world, endpoint, rule):
    """Each query parameter the page reads, each pair of them for dates (ranges), and each
    path variable get each bad value in turn."""
    variables = {name: conv for conv, name in _RULE_VARIABLE.findall(rule)}
    usual = {name: _known_values(world, conv, name)[0] for name, conv in variables.items()}
    path = _fill(rule, usual)
    api = rule.startswith("/api/")
    if api:
        who, headers, browser = "coordinator", world.tokens["coordinator"][1], world.browser(None)
    else:
        headers = {}
        # The first role that may open the page at all (the users' pages are for admins).
        who = next(
            (w for w in ROLES if world.browser(w).open("GET", path).status_code != 403), "admin"
        )
        browser = world.browser(who)
    names = parameters_read(world.app, browser, path, headers)
    requests = [(path, {"no_such_parameter": value}) for value in GET_SWEEP[:3]]
    for value in GET_SWEEP:
        requests += [(path, {name: value}) for name in names]
        requests.append((path, dict.fromkeys(names, value)))
    for value in GET_SWEEP_DATES:
        requests += [
            (path, {a: value, b: value}) for i, a in enumerate(names) for b in names[i + 1 :]
        ]
    for name, conv in variables.items():
        requests += [(_fill(rule, {**usual, name: bad}), {}) for bad in _bad_values(conv, name)]
    failures = []
    for url, query in requests:
        with isolated():
            before = counts()
            response = browser.open("GET", url, query_string=query, headers=headers)
            problems = check(response, before, api=api)
        if problems:
            failures.append(f"GET {describe(url, 80)} {describe(query, 120)}: {problems}")
    assert not failures, f"as {who}, reading {names}:\n" + "\n".join(failures)


# -- POST forms: hypothesis and the sweep ----------------------------------------------------------


@st.composite
def _form_submissions(draw, form: PostForm):
    names = draw(st.lists(st.sampled_from(form.fields), min_size=1, max_size=3, unique=True))
    body = apply(form.baseline, {name: draw(FORM_VALUES) for name in names})
    for name, value in draw(
        st.dictionaries(st.sampled_from(EXTRA_FIELDS), SCALARS, max_size=1)
    ).items():
        body.setdefault(name, value)
    url = draw(st.sampled_from((form.url,) * 4 + form.other_urls))
    query = {}
    if form.query_fields:
        query = draw(
            st.dictionaries(
                st.sampled_from(form.query_fields), st.sampled_from(NASTY) | TEXT, max_size=1
            )
        )
    return url, body, query


@pytest.mark.parametrize("name", POST_FORMS)
@FUZZ
@given(data=st.data())
def test_post_form_fuzz(world, name, data):
    form = world.post_form(name)
    url, body, query = data.draw(_form_submissions(form), label="submission")
    _, problems = post(world, form, body, url, query)
    assert not problems, f"POST {url} {describe(query)} {describe(body)}: {problems}"


@pytest.mark.parametrize("name", POST_FORMS)
def test_post_form_sweep(world, name):
    """Each field of the form gets each bad value in turn, the other fields valid."""
    form = world.post_form(name)
    status, problems = post(world, form, form.baseline)
    assert status in form.accepts and not problems, f"the valid {name}: {status} {problems}"
    failures = []
    for field_name in form.sweep_fields(name):
        for value in SWEEP:
            _, problems = post(world, form, apply(form.baseline, {field_name: value}))
            if problems:
                failures.append(f"{field_name}={describe(value, 60)}: {problems}")
    for field_name in form.query_fields:
        for value in QUERY_SWEEP:
            _, problems = post(world, form, form.baseline, query={field_name: value})
            if problems:
                failures.append(f"?{field_name}={describe(value, 60)}: {problems}")
    assert not failures, f"POST {form.url}:\n" + "\n".join(failures)


@pytest.mark.parametrize("name", POST_FORMS)
def test_post_form_refused_to_the_wrong_people(world, name):
    """The valid submission, as a viewer and anonymously: refused or sent to log in."""
    form = world.post_form(name)
    failures = []
    for who in ("viewer", None):
        if form.who is None or (form.endpoint in EVERY_USERS_OWN and who == "viewer"):
            continue  # the login form is for everyone; every user has their own account
        browser = world.browser(who)
        with isolated():
            before = counts()
            response = browser.open("POST", form.url, data=form.baseline)
            problems = check(response, before, method="POST")
            if response.status_code < 400 and response.status_code != 302:
                problems.append(f"accepted ({response.status_code})")
            if response.status_code == 302 and counts() != before:
                problems.append("stored")
        if problems:
            failures.append(f"as {who}: {problems}")
    assert not failures, f"POST {form.url}: {failures}"


# -- the JSON API ----------------------------------------------------------------------------------


@st.composite
def _api_bodies(draw, call: ApiCall):
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        return draw(st.sampled_from(sorted(NOT_JSON_OBJECTS)))
    body = json.loads(json.dumps(call.baseline))
    keys = [*call.baseline, *(f"data.{k}" for k in call.data_fields)]
    for key in draw(st.lists(st.sampled_from(keys), min_size=1, max_size=3, unique=True)):
        holder, name = (body.get("data"), key[5:]) if key.startswith("data.") else (body, key)
        if not isinstance(holder, dict):
            continue
        if draw(st.booleans()):
            holder.pop(name, None)
        else:
            holder[name] = draw(JSON_VALUES)
    for name, value in draw(st.dictionaries(TEXT, JSON_VALUES, max_size=1)).items():
        body.setdefault(name, value)
    return "application/json", json.dumps(body, allow_nan=True)


def api_post(world: World, call: ApiCall, content_type: str, raw: str, who="coordinator"):
    """Send one body in a savepoint of its own: (status, what is wrong with the answer)."""
    browser, reader = world.browser(None), world.browser("coordinator")
    headers = {**world.tokens[who][1], "Content-Type": content_type}
    with isolated():
        before = counts()
        response = browser.open(call.method, call.url, data=raw.encode(), headers=headers)
        problems = check(response, before, method=call.method, api=True)
        if response.status_code < 400 and not problems:
            body = response.get_json(silent=True)
            if not isinstance(body, dict):
                problems.append("accepted, but the answer is not a JSON object")
            else:
                ids = {"pathway_id": call.pathway_id}
                if call.url == "/api/v1/patients":
                    ids = {"patient_id": body.get("id")}
                elif call.method == "PATCH":
                    ids = {"patient_id": (body.get("patient") or {}).get("id")}
                elif call.url == "/api/v1/pathways":
                    ids = {"pathway_id": body.get("id"), "patient_id": body.get("patient_id")}
                problems += shown_after(reader, before, **ids)
                problems += api_shown_after(world, **ids)
    return response.status_code, problems


def api_shown_after(world: World, pathway_id=None, patient_id=None, **_) -> list[str]:
    """Accepted through the API: the API's own reads of it answer too."""
    urls = []
    if pathway_id:
        base = f"/api/v1/pathways/{pathway_id}"
        urls += [base, f"{base}/events", f"{base}/fhir"]
    if patient_id:
        urls.append(f"/api/v1/patients/{patient_id}")
    problems = []
    for url in urls:
        response = world.browser(None).open("GET", url, headers=world.tokens["coordinator"][1])
        if response.status_code >= 400:
            problems.append(f"accepted, then GET {url} answered {response.status_code}")
    return problems


@pytest.mark.parametrize("name", API_CALLS)
@FUZZ
@given(data=st.data())
def test_api_fuzz(world, name, data):
    call = world.api_call(name)
    world.browser("coordinator")  # logged in before any savepoint
    drawn = data.draw(_api_bodies(call), label="body")
    content_type, raw = NOT_JSON_OBJECTS.get(drawn) or drawn
    who = data.draw(st.sampled_from(("coordinator", "coordinator", "surgeon", "viewer")))
    _, problems = api_post(world, call, content_type, raw, who)
    assert not problems, f"{call.method} {call.url} as {who} {describe(raw)}: {problems}"


API_SWEEP_VALUES: tuple[Any, ...] = (
    None,
    True,
    -1,
    10**400,
    float("nan"),
    [],
    {"a": {"b": [None]}},
    SCRIPT,
    "a\x00b",
    "\x01\x1b[2J",
    LONG,
    "2026-02-30",
    "0001-01-01T00:00:00+05:00",
    "9999-12-31",
    "²",
    "",
    DROP,
)


@pytest.mark.parametrize("name", API_CALLS)
def test_api_sweep(world, name):
    """Each field (of data, and once per call the top level) gets each bad value."""
    call = world.api_call(name)
    world.browser("coordinator")  # logged in before any savepoint
    status, problems = api_post(world, call, "application/json", json.dumps(call.baseline))
    assert status in (200, 201) and not problems, f"the valid {name}: {status} {problems}"
    failures = []
    if call.sweep_top:
        for label, (content_type, raw) in NOT_JSON_OBJECTS.items():
            _, problems = api_post(world, call, content_type, raw)
            if problems:
                failures.append(f"{label} ({content_type}): {problems}")
    keys = [*(call.baseline if call.sweep_top else ()), *(f"data.{k}" for k in call.data_fields)]
    for key in keys:
        for value in API_SWEEP_VALUES:
            body = json.loads(json.dumps(call.baseline))
            holder, field_name = (body["data"], key[5:]) if key.startswith("data.") else (body, key)
            if isinstance(value, str) and value == DROP:
                holder.pop(field_name, None)
            else:
                holder[field_name] = value
            raw = json.dumps(body, allow_nan=True)
            _, problems = api_post(world, call, "application/json", raw)
            if problems:
                failures.append(f"{key}={describe(value, 60)}: {problems}")
    assert not failures, f"POST {call.url}:\n" + "\n".join(failures)


# -- stored markup is shown escaped ----------------------------------------------------------------


def _submit(browser: Browser, url: str, data: dict) -> str:
    response = browser.open("POST", url, data=data)
    assert response.status_code == 302, (url, response.status_code, error_text(response))
    return response.headers["Location"]


def test_stored_markup_is_shown_escaped(world):
    """Markup typed into every free-text field is stored as typed and shown as text."""
    admin, coordinator = world.browser("admin"), world.browser("coordinator")
    surgeon = world.browser("surgeon")
    with isolated():
        # A surgeon whose full name is markup, made on the users page.
        _submit(
            admin,
            "/users/",
            {"username": "xss-surgeon", "full_name": IMG, "role": "surgeon", "password": PASSWORD},
        )
        # A patient whose names are markup, and whose MRN would be a spreadsheet formula.
        where = _submit(
            coordinator,
            "/patients/new",
            {
                "mrn": "=HYPERLINK(1)",
                "family_name": SCRIPT,
                "given_name": IMG,
                "birth_date": "1960-05-01",
                "sex": "female",
                "gp_practice": IMG,
            },
        )
        patient_id = int(where.rstrip("/").rsplit("/", 1)[1])
        token_page = coordinator.open("POST", "/account/tokens", data={"name": SCRIPT})
        assert token_page.status_code == 200

        def open_pathway() -> int:
            location = _submit(
                coordinator,
                f"/patients/{patient_id}/pathways/new",
                {
                    "referral_received_at": local_input(world.now - timedelta(days=3)),
                    "referral_source": "gp",
                    "urgency": "emergency",
                    "diagnosis_category": "metastatic_spinal",
                    "tumour_site": SCRIPT,
                    "primary_cancer_site": "lung",
                    "presenting_symptoms": ["back_pain"],
                    "lead_surgeon": "xss-surgeon",
                    "coordinator": "coordinator",
                    "request_id": uuid.uuid4().hex,
                    # From the second on: the patient has an open pathway already.
                    "confirm_another_pathway": "y",
                },
            )
            return int(location.split("#")[0].rstrip("/").rsplit("/", 1)[1])

        minutes = iter(range(3 * 24 * 60 - 60, 0, -30))  # each step half an hour after the last

        def step(browser: Browser, pathway_id: int, trigger: str, **data) -> None:
            version = db.session.scalar(select(Pathway.version).where(Pathway.id == pathway_id))
            db.session.commit()
            url = f"/pathways/{pathway_id}/record/{trigger}"
            if trigger in sorted(d.tagged(tags.MDT_DECISION)):
                url, data = f"/pathways/{pathway_id}/mdt-outcome", {"decision": trigger, **data}
            at = world.now - timedelta(minutes=next(minutes))
            _submit(
                browser,
                url,
                {
                    "occurred_at": local_input(at),
                    "expected_version": str(version),
                    "request_id": uuid.uuid4().hex,
                    "note": IMG,
                    **data,
                },
            )

        imaging = {"modality": "mri", "region": SCRIPT, "levels": IMG, "findings": SCRIPT + IMG}
        today = world.now.astimezone(LOCAL).date().isoformat()
        # The first pathway waits in MDT review: its imaging and histology are on the MDT list.
        first = open_pathway()
        step(coordinator, first, "request_imaging")
        step(coordinator, first, "record_imaging", **imaging)
        step(coordinator, first, "request_biopsy")
        step(
            coordinator,
            first,
            "record_biopsy",
            method="open",
            histology=SCRIPT,
            result="malignant",
        )
        step(coordinator, first, "refer_to_mdt")
        version = db.session.scalar(select(Pathway.version).where(Pathway.id == first))
        db.session.commit()
        _submit(
            coordinator,
            f"/pathways/{first}/void",
            {"reason": SCRIPT, "expected_version": str(version), "request_id": uuid.uuid4().hex},
        )
        step(coordinator, first, "refer_to_mdt")
        step(coordinator, first, "schedule_mdt", meeting_date=today)
        step(coordinator, first, "add_note", note=SCRIPT)
        biopsy_seq = db.session.scalar(
            select(Event.seq).where(Event.pathway_id == first, Event.trigger == "record_biopsy")
        )
        version = db.session.scalar(select(Pathway.version).where(Pathway.id == first))
        db.session.commit()
        _submit(
            coordinator,
            f"/pathways/{first}/amend/{biopsy_seq}",
            {
                "method": "open",
                "histology": IMG,
                "result": "malignant",
                "note": IMG,
                "reason": SCRIPT,
                "expected_version": str(version),
                "request_id": uuid.uuid4().hex,
            },
        )
        # The second is operated on: the MDT's rationale, the operation, a complication.
        second = open_pathway()
        step(coordinator, second, "request_imaging")
        step(coordinator, second, "record_imaging", **imaging)
        step(coordinator, second, "refer_to_mdt")
        step(
            surgeon,
            second,
            "plan_surgery",
            meeting_date=(world.now - timedelta(days=3)).astimezone(LOCAL).date().isoformat(),
            disciplines=["spinal_surgery", "radiology"],
            rationale=SCRIPT,
        )
        step(
            surgeon,
            second,
            "record_surgery",
            lead_surgeon="xss-surgeon",
            procedures=["decompression"],
            approach="open",
            levels=IMG,
        )
        step(surgeon, second, "record_complication", complication="other", clavien_dindo="II")
        step(surgeon, second, "sign_off")
        step(coordinator, second, "add_note", note=SCRIPT)
        xss_user = db.session.scalar(select(User.id).where(User.username == "xss-surgeon"))
        db.session.commit()

        pages = [
            (coordinator, f"/patients/{patient_id}", True),
            (coordinator, f"/patients/{patient_id}/edit", True),
            (coordinator, "/patients/?q=alert", True),
            (coordinator, f"/patients/?q={quote(SCRIPT)}", False),
            (coordinator, f"/pathways/{first}", True),
            (coordinator, f"/pathways/{first}/print", True),
            (coordinator, f"/pathways/{second}", True),
            (coordinator, f"/pathways/{second}/print", True),
            (coordinator, "/", True),
            (coordinator, "/?q=alert&sort=name", True),
            (coordinator, "/?target=attention&mine=1", True),
            (coordinator, "/mdt/", True),
            (coordinator, "/this-week?who=all", False),
            (coordinator, "/reports/", False),
            (coordinator, "/ptl", True),  # the surgeon's name, in the filter
            (coordinator, "/returns/cwt", False),
            (coordinator, "/account/", True),
            (coordinator, f"/pathways/{first}/amend/{biopsy_seq}", True),
            (coordinator, f"/pathways/{first}/record/add_note", True),
            (surgeon, f"/pathways/{first}/mdt-outcome", True),
            (admin, "/users/", True),
            (admin, f"/users/{xss_user}", True),
        ]
        escaped = (html.escape(SCRIPT, quote=False), "&lt;img src=x onerror=alert(1)&gt;")
        for browser, url, shows_it in pages:
            response = browser.open("GET", url)
            page = response.get_data(as_text=True)
            assert response.status_code == 200, (url, response.status_code)
            assert response.mimetype == "text/html", url
            for raw in (*RAW_MARKUP, SCRIPT, IMG):
                assert raw not in page, f"{url} shows {raw!r} unescaped"
            if shows_it:
                assert any(e in page for e in escaped), f"{url} does not show the stored text"

        # A page that shows back what was typed, refused: still escaped.
        refused = coordinator.open(
            "POST",
            f"/pathways/{first}/record/add_note",
            data={"note": SCRIPT, "expected_version": "1", "occurred_at": "x"},
        )
        assert refused.status_code == 422  # the bad time: the note is shown back, escaped
        assert html.escape(SCRIPT, quote=False) in refused.get_data(as_text=True)
        assert SCRIPT not in refused.get_data(as_text=True)

        # Exports: CSV cells that a spreadsheet would run are quoted; the rest is the data.
        csv = coordinator.open("GET", "/worklist.csv")
        assert csv.status_code == 200 and csv.mimetype == "text/csv"
        assert csv.headers["Content-Disposition"].startswith("attachment")
        text = csv.get_data(as_text=True)
        assert "'=HYPERLINK(1)" in text
        assert not re.search(r"(^|[,\n])=HYPERLINK", text.lstrip("\ufeff"))
        assert SCRIPT in text  # in a download, not a page: the names as typed

        # The API and FHIR give the data as typed, as JSON, never as a page.
        token = world.tokens["coordinator"][1]
        for url in (
            f"/api/v1/patients/{patient_id}",
            f"/api/v1/pathways/{first}",
            f"/api/v1/pathways/{first}/events",
            f"/api/v1/pathways/{second}/events",
            f"/api/v1/pathways/{second}/fhir",
        ):
            response = world.browser(None).open("GET", url, headers=token)
            assert response.status_code == 200, url
            assert response.is_json and response.mimetype != "text/html", url
            body = json.dumps(response.get_json(), ensure_ascii=False)
            assert SCRIPT in body or json.dumps(IMG)[1:-1] in body, url
        patient = world.browser(None).open("GET", f"/api/v1/patients/{patient_id}", headers=token)
        assert patient.get_json()["family_name"] == SCRIPT
        assert patient.get_json()["given_name"] == IMG
        assert patient.get_json()["gp_practice"] == IMG
