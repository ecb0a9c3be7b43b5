"""Factories and a driver that walks pathways through the services with valid data."""

from __future__ import annotations

import uuid
from collections import deque
from datetime import UTC, date, datetime, timedelta
from functools import cache

import pyotp
from flask import current_app
from sqlalchemy import select
from werkzeug.security import generate_password_hash

from tests.conftest import PASSWORD
from tracker.engine import services, teams
from tracker.engine import steps as d
from tracker.extensions import db
from tracker.patients.services import register_patient
from tracker.teams.models import UserTeam
from tracker.users import two_factor
from tracker.users.models import User

ROLE_USERS = {
    "coordinator": "coordinator",
    "surgeon": "surgeon",
    "viewer": "viewer",
    "admin": "admin",
}
# A referral's fields (the API's and the form's names), for tests that open pathways.
REFERRAL = {
    "referral_source": "gp",
    "urgency": "urgent",
    "diagnosis_category": "metastatic_spinal",
    "tumour_site": "T8",
    "primary_cancer_site": "lung",
    "presenting_symptoms": ["back_pain"],
}
PREREQUISITE = {
    "imaging_reported": "record_imaging",
    "biopsy_recorded": "record_biopsy",
    "follow_up_clear": "record_follow_up",
}


@cache
def password_hash() -> str:
    # scrypt is slow on purpose; hash the shared test password once per run.
    return generate_password_hash(PASSWORD, method="scrypt")


# The second factor of every test administrator (TOTP_REQUIRED_ROLES is 'admin', as in
# production): their logins type the code computed from it, as an authenticator would.
TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def make_user(username: str, role: str) -> User:
    user = User(
        username=username,
        role=role,
        full_name=username.title(),
        password_hash=password_hash(),
        active=True,
    )
    db.session.add(user)
    # Every default team, as an upgraded deployment's users are (tests/test_teams.py
    # narrows them).
    db.session.flush()
    db.session.add_all(UserTeam(user_id=user.id, team=code) for code in teams.codes())
    if role == "admin":
        enrol(user)
    return user


def enrol(user: User, secret: str = TOTP_SECRET) -> None:
    """Two-factor login set up for ``user`` with a known secret (flushes)."""
    db.session.flush()
    two_factor.store_secret(user, secret, current_app.extensions["audit_key"])
    user.totp_enabled_at = datetime.now(UTC)
    db.session.flush()


def totp_code(at: datetime | None = None, secret: str = TOTP_SECRET) -> str:
    return pyotp.TOTP(secret).at(at or datetime.now(UTC))


def pass_second_factor(client, response, username: str, secret: str = TOTP_SECRET):
    """After the password: when the login asks for a code, type the authenticator's.

    A test may log the same user in more than once within one 30-second step; the step
    of the previous login is forgotten first, or its code would be refused as a replay
    (tests/test_two_factor.py proves it is). Returns the answer to the code.
    """
    if response.status_code != 302 or not response.headers["Location"].startswith("/login/code"):
        return response
    user = db.session.scalar(select(User).where(User.username == username))
    user.totp_last_step = None
    db.session.commit()
    return client.post("/login/code", data={"code": totp_code(secret=secret)})


def log_in(client, username: str, password: str):
    """The whole login, the code included for a user with two-factor login."""
    response = client.post("/login", data={"username": username, "password": password})
    return pass_second_factor(client, response, username)


def make_users() -> dict:
    users = {name: make_user(name, role) for name, role in ROLE_USERS.items()}
    users["coordinator2"] = make_user("coordinator2", "coordinator")
    users["surgeon2"] = make_user("surgeon2", "surgeon")
    db.session.flush()
    return users


def valid_data(trigger: str, source: str, at: datetime) -> dict:
    day = at.date().isoformat()
    next_due = (at + timedelta(days=90)).date().isoformat()
    if d.is_mdt_outcome(trigger, source):
        outcome = {
            "meeting_date": day,
            "disciplines": ["spinal_surgery", "radiology"],
            "rationale": "Agreed at the MDT.",
        }
        if any(f.name == "next_due" for f in d.fields_for(trigger, source)):
            outcome["next_due"] = next_due
        return outcome
    if trigger == "refer_to_mdt" and source in (
        "surgery_scheduled",
        "post_op",
        "oncology_treatment",
    ):
        return {"reason": "restaging"}
    return {
        "record_imaging": {
            "modality": "mri",
            "region": "Thoracic spine",
            "levels": "T7-T9",
            "findings": "Lytic lesion T8.",
            "bilsky_grade": "1b",
        },
        "record_biopsy": {
            "method": "ct_guided_core",
            "histology": "Adenocarcinoma",
            "result": "malignant",
        },
        "schedule_mdt": {"meeting_date": day},
        "record_preop_assessment": {"asa_grade": 2, "consent_taken": True},
        "record_surgery": {
            "lead_surgeon": "surgeon",
            "procedures": ["decompression"],
            "approach": "open",
            "levels": "T7-T9",
        },
        "record_complication": {"complication": "csf_leak", "clavien_dindo": "II"},
        "record_therapy_session": {"mobility": "walking_aid", "pain_nrs": 4},
        "record_treatment": {"modality": "sbrt", "start_date": day},
        "record_follow_up": {"imaging_done": True, "status": "ned"},
        "record_assessment": {"pain_nrs": 3},
        "record_lesion": {
            "lesion_ref": "T8",
            "levels": "T8",
            "finding": "new",
            "sins": {
                "location": 1,
                "pain": 3,
                "bone_lesion": 2,
                "alignment": 0,
                "collapse": 2,
                "posterolateral": 1,
            },
            "bilsky_grade": "1b",
        },
        "start_surveillance": {"next_due": next_due},
        "suspect_recurrence": {"urgency": "urgent", "referral_priority": "urgent_suspected_cancer"},
        "reassign": {"coordinator": "coordinator2"},
        "communicate_diagnosis": {"outcome": "cancer_confirmed", "method": "face_to_face"},
        "rule_out_cancer": {"reason": "benign", "outcome": "cancer_ruled_out", "method": "letter"},
        "agree_treatment": {"treatment": "surgery"},
        "record_adjustment": {
            "kind": "dna_first_appointment",
            "reason": "Did not attend.",
            "rebooked_on": day,
        },
        "upgrade_referral": {"upgraded_on": day, "consultant": "surgeon"},
        "withdraw": {"reason": "declined"},
        "add_note": {"note": "Spoke to the patient."},
        "add_tracking_note": {"note": "Chasing the MRI report."},
        "update_task": {"due_on": (datetime.now(UTC) + timedelta(days=14)).date().isoformat()},
        "cancel_task": {"reason": "No longer needed"},
        "add_task": {
            "what": "Chase the MRI report",
            "owner": "coordinator",
            "due_on": (datetime.now(UTC) + timedelta(days=7)).date().isoformat(),
        },
    }.get(trigger, {})


def shortest_path(target: str) -> list[str]:
    """Triggers leading from referred to ``target`` by the machine's state changes."""
    queue, seen = deque([(d.INITIAL_STATE, [])]), {d.INITIAL_STATE}
    while queue:
        state, path = queue.popleft()
        if state == target:
            return path
        for t in d.transitions():
            if t.dest and state in t.sources and t.dest not in seen:
                seen.add(t.dest)
                queue.append((t.dest, [*path, t.trigger]))
    raise AssertionError(f"{target} unreachable")


class Driver:
    """Records steps on one pathway, an hour apart, as a given user."""

    def __init__(self, pathway, actor, start: datetime, step=timedelta(hours=1)):
        self.pathway, self.actor, self.t, self.step = pathway, actor, start, step

    def next_time(self) -> datetime:
        self.t += self.step
        return self.t

    def do(self, trigger: str, data: dict | None = None, actor=None, **kw):
        at = kw.pop("occurred_at", None) or self.next_time()
        if data is None:
            data = valid_data(trigger, self.pathway.state, at)
            if any(f.name == "task" for f in d.fields_for(trigger, self.pathway.state)):
                data["task"] = self.open_task()
        return services.record(
            self.pathway,
            trigger,
            data,
            at,
            actor or self.actor,
            kw.pop("expected_version", self.pathway.version),
            kw.pop("request_id", uuid.uuid4().hex),
            **kw,
        )

    def open_task(self) -> int:
        """The number of an open task of the pathway, added first if it has none."""
        history = services.load_history(self.pathway)
        found = [t.seq for t in history.tasks() if t.status == "open"]
        return found[0] if found else self.do(d.ADD_TASK_TRIGGER).event.seq

    def fire(self, trigger: str, **kw):
        """Record ``trigger``, first recording what its guards need to have happened."""
        transition = d.transition_for(trigger, self.pathway.state)
        for guard in transition.guards if transition else ():
            if guard.name in PREREQUISITE:
                self.do(PREREQUISITE[guard.name])
        return self.do(trigger, **kw)

    def walk_to(self, state: str):
        for trigger in shortest_path(state):
            self.fire(trigger)
        assert self.pathway.state == state
        return self


def new_patient(actor, mrn: str | None = None):
    return register_patient(
        actor,
        mrn=mrn or f"M{uuid.uuid4().hex[:8]}",
        family_name="Doe",
        given_name="Jane",
        birth_date=date(1960, 5, 1),
        sex="female",
    )


def new_pathway(actor, referral: datetime | None = None, urgency: str = "routine", **extra):
    referral = referral or datetime.now(UTC) - timedelta(days=300)
    fields = {
        "referral_received_at": referral,
        "referral_source": "gp",
        "urgency": urgency,
        "diagnosis_category": "metastatic_spinal",
        "tumour_site": "T8",
        "primary_cancer_site": "breast",
        "presenting_symptoms": ["back_pain"],
        "lead_surgeon": "surgeon",
        "coordinator": "coordinator",
        **extra,
    }
    return services.open_pathway(actor, new_patient(actor), **fields)


def driver(users, referral: datetime | None = None, urgency="routine", actor="coordinator"):
    referral = referral or datetime.now(UTC) - timedelta(days=300)
    pathway = new_pathway(users["coordinator"], referral, urgency)
    return Driver(pathway, users[actor], referral)


def whole_responses(app):
    """``app`` for a test's live server (werkzeug's, in a thread), answering each response
    read whole, its file closed before it is sent. When the browser drops a connection
    while a static file is being sent (it navigated on), werkzeug's server can skip
    closing the file; the ResourceWarning of its garbage collection then fails whichever
    test is running at that moment."""

    def wsgi(environ, start_response):
        body = app(environ, start_response)
        try:
            return [b"".join(body)]
        finally:
            if hasattr(body, "close"):
                body.close()

    return wsgi
