"""Demo data: realistic journeys spread over every state, written in bulk.

Journeys are simulated with the same machine, data dictionary and target rules
the services use, derived by the engine's one derivation, and written with the
driver's own bulk load (``tracker.core.bulk_load``), a large seed built by worker
processes while the first writes. ``flask tracker verify`` replays them like any
other.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import random
import sys
import traceback
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select

from tracker.audit.chain import FIELDS, content_items, current_key, seal_contents
from tracker.audit.seals import seal_of_values
from tracker.core.bulk_load import Prepared, insert_rows, prepare, reserve_ids
from tracker.core.clock import local_date
from tracker.core.db import utcnow
from tracker.core.text import identifier_key
from tracker.engine import clocks, consistency, daily, teams
from tracker.engine import steps as d
from tracker.engine.counts import add_pathways
from tracker.engine.derive import derive
from tracker.engine.dictionary import default_priority, with_scores
from tracker.engine.fields import SPINAL_LEVELS, SpinalLevels, expand_levels
from tracker.engine.history import History, Step
from tracker.engine.machine import expected_destination
from tracker.engine.models import Event, Pathway, PathwayClock, PathwayFact, PathwayTask
from tracker.engine.steps import validate_event_data
from tracker.extensions import db
from tracker.patients.models import Patient, name_search_key
from tracker.teams.models import UserTeam
from tracker.users.models import User
from tracker.users.passwords import set_password

DEMO_PASSWORD = "demo-password-123"  # noqa: S105 - published demo logins, demo data only
DEMO_USERS = (
    ("coordinator", "coordinator", "Claire Morgan"),
    ("coordinator2", "coordinator", "Tom Baker"),
    ("surgeon", "surgeon", "Mr Ravi Shah"),
    ("surgeon2", "surgeon", "Ms Anna Kowalski"),
    ("viewer", "viewer", "Dr Lena Ortiz (oncology)"),
    ("admin", "admin", "System Administrator"),
)
FAMILY = [
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Williams",
    "Wilson",
    "Johnson",
    "Davies",
    "Patel",
    "Wright",
    "Walker",
    "Evans",
    "Thomas",
    "Roberts",
    "Green",
    "Hall",
    "Wood",
    "Hughes",
    "Clarke",
    "Khan",
    "Lewis",
    "Harris",
    "Martin",
    "Cooper",
]
GIVEN = [
    "Olivia",
    "Amelia",
    "Isla",
    "Ava",
    "Mia",
    "Grace",
    "Sophia",
    "Lily",
    "Noah",
    "Oliver",
    "George",
    "Arthur",
    "Leo",
    "Harry",
    "Jack",
    "Oscar",
    "Charlie",
    "Muhammad",
    "Margaret",
    "Peter",
    "Susan",
    "David",
    "Helen",
    "Michael",
]
SITES = (
    "T7-T9",
    "L2-L3",
    "C5-C6",
    "T11-L1",
    "T4",
    "L4-L5",
    "S1",
    "C2",
    "Proximal femur",
    "Humerus",
    "Pelvis (acetabulum)",
    "T10-T12",
)


def ensure_demo_users() -> dict[str, User]:
    users = {u.username: u for u in db.session.scalars(select(User))}
    for username, role, full_name in DEMO_USERS:
        if username not in users:
            user = User(username=username, role=role, full_name=full_name, active=True)
            set_password(user, DEMO_PASSWORD)
            db.session.add(user)
            users[username] = user
    db.session.flush()
    members = set(db.session.execute(select(UserTeam.user_id, UserTeam.team)).tuples())
    for user in users.values():  # the demo's people work in every team
        db.session.add_all(
            UserTeam(user_id=user.id, team=code)
            for code in teams.codes()
            if (user.id, code) not in members
        )
    db.session.flush()
    return users


class Journey:
    """One simulated pathway: its steps, kept valid by the machine as they are added."""

    def __init__(self, rng: random.Random, referral: datetime, now: datetime, urgency: str):
        self.rng, self.now, self.urgency = rng, now, urgency
        self.t = referral
        self.state = d.INITIAL_STATE
        self.steps: list[dict] = []
        self.stack: list[str] = []
        self.recurrences = 0

    def gap(self, low_hours: float, high_hours: float) -> datetime:
        scale = 0.15 if self.urgency == "emergency" else 1.0
        return self.t + timedelta(hours=self.rng.uniform(low_hours, high_hours) * scale)

    def add(
        self,
        trigger: str,
        data: dict | None = None,
        at: datetime | None = None,
        by: str = "coordinator",
    ) -> bool:
        """Append a step if it has happened by now; False ends the journey here."""
        at = at or self.gap(2, 72)
        if at > self.now:
            return False
        if trigger == d.AMEND_TRIGGER:
            to_state = self.state
        elif trigger == d.VOID_TRIGGER:
            to_state = self.stack.pop()
        else:
            to_state = expected_destination(trigger, self.state)
            assert to_state is not None, f"demo journey: {trigger} from {self.state}"
            if d.changes_state(trigger):
                self.stack.append(self.state)
            if trigger == "suspect_recurrence":
                self.recurrences += 1
        self.steps.append(
            {
                "trigger": trigger,
                "from_state": self.state,
                "to_state": to_state,
                "occurred_at": at,
                "data": data or {},
                "by": by,
            }
        )
        self.state, self.t = to_state, at
        if (consequence := d.follows(trigger, data or {})) is not None:
            # Recorded with it, as the services do (a Clavien-Dindo V complication: death).
            return self.add(consequence, {}, at=at, by=by) and False
        return True


def _first_visit(j: Journey) -> dict:
    """The first follow-up visit, booked about three months after surveillance starts."""
    return {"next_due": (j.t + timedelta(days=95)).date().isoformat()}


def _mdt(rng, j: Journey, surgical: bool) -> dict:
    data = {
        "meeting_date": j.t.date().isoformat(),
        "disciplines": rng.sample(
            [
                "spinal_surgery",
                "clinical_oncology",
                "radiology",
                "pathology",
                "medical_oncology",
                "physiotherapy",
            ],
            4,
        ),
        "rationale": "Discussed with imaging and histology; plan agreed with the patient.",
        "ecog": rng.randint(0, 3),
        "karnofsky": rng.choice([50, 60, 70, 80, 90]),
        "asia_grade": rng.choice("CDDEE"),
        "bilsky_grade": rng.choice(["1b", "1c", "2", "3"] if surgical else ["0", "1a", "1b"]),
        "sins": {
            "location": rng.choice([1, 2, 3]),
            "pain": rng.choice([1, 3]),
            "bone_lesion": rng.choice([1, 2]),
            "alignment": rng.choice([0, 2]),
            "collapse": rng.choice([0, 1, 2, 3]),
            "posterolateral": rng.choice([0, 1, 3]),
        },
    }
    if rng.random() < 0.7:
        data["tokuhashi"] = {
            "general_condition": rng.choice([1, 2]),
            "extraspinal_bone_metastases": rng.randint(0, 2),
            "vertebral_metastases": rng.randint(0, 2),
            "visceral_metastases": rng.randint(0, 2),
            "primary_site": rng.choice([0, 2, 3, 5]),
            "palsy": rng.choice([1, 2]),
        }
        # Agreeing with the Karnofsky and ASIA of this record (drawn above all the same, so
        # that every seed keeps its journeys); the primary site follows the referral
        # (_coherent).
        data["tokuhashi"] |= {
            "general_condition": consistency.general_condition_for(data["karnofsky"]),
            "palsy": consistency.palsy_for(data["asia_grade"]),
        }
    return data


# The radiosensitivity of each primary's usual histology, for the demo's MDT records.
_RADIOSENSITIVITY = {
    "breast": "radiosensitive",
    "prostate": "radiosensitive",
    "myeloma": "radiosensitive",
    "lung": "moderately_sensitive",
    "kidney": "radioresistant",
    "unknown": "unknown",
}


_BONES = ("femur", "humerus", "pelvis", "tibia")
_BELOW_THE_CORD = ("L2", "L3", "L4", "L5", "S")  # no spinal cord: no intramedullary tumour


def _coherent_referral(referral: dict, site: str) -> None:
    """The diagnosis agrees with the site: a long bone or the pelvis is a primary bone
    tumour, a spinal site is not; an intramedullary tumour lies where the cord is; only
    metastatic disease has a primary cancer elsewhere. The draws stay as they were."""
    category = referral["diagnosis_category"]
    bone = any(b in site.lower() for b in _BONES)
    if bone:
        category = "primary_bone"
    elif category == "primary_bone":
        category = "metastatic_spinal"
    elif category == "intradural_intramedullary" and site.startswith(_BELOW_THE_CORD):
        category = "primary_spinal"
    referral["diagnosis_category"] = category
    if category != "metastatic_spinal":
        referral["primary_cancer_site"] = "not_applicable"


_SPINAL_ONLY = ("sins", "bilsky_grade", "tokuhashi")


def _a_bone(events: list[dict], site: str) -> None:
    """A tumour of a long bone or the pelvis: imaged there, no spinal scores, and operated
    on by resection and reconstruction rather than decompression."""
    for e in events:
        data = e["data"]
        for key in _SPINAL_ONLY:
            data.pop(key, None)
        if e["trigger"] in ("record_imaging",):
            data["region"] = site
        if "procedures" in data:
            data["procedures"] = ["en_bloc_resection", "prosthetic_reconstruction"]
            data["approach"] = "open"
        if "changes" in data and "levels" in data["changes"]:
            data["changes"]["levels"] = f"{site} (corrected)"


# -- tracking notes and tasks -------------------------------------------------------------------

_NOTES = (
    "Awaiting MRI slot; radiology chased.",
    "Biopsy booked; patient aware.",
    "Listed for next MDT; histology pending.",
    "Patient asked for a second opinion; GP informed.",
    "Waiting for oncology to confirm the start date.",
    "Bloods and anaesthetic review outstanding.",
)
_TASKS = (
    "Chase the MRI report",
    "Book the CT-guided biopsy",
    "Confirm the MDT listing",
    "Ring the patient with the plan",
    "Request the outside imaging",
    "Send the clinic letter to the GP",
)


def _track(events: list[dict], referral: dict, at: datetime, now: datetime) -> None:
    """An open pathway's tracking: a note and a task or two, now and then (their own random
    numbers, so every seed's journeys stay as they were). Some tasks are overdue."""
    r = random.Random(f"tracking {at.isoformat()}")  # noqa: S311 - demo data
    last = events[-1]
    if last["to_state"] in d.FINAL_STATES or r.random() < 0.4:
        return
    state, since = last["to_state"], last["occurred_at"]

    def add(trigger: str, data: dict, when: datetime, by: str) -> None:
        events.append(
            {
                "trigger": trigger,
                "from_state": state,
                "to_state": state,
                "occurred_at": when,
                "data": data,
                "by": by,
                "recorded_after": r.randint(1, 30),
            }
        )

    when = since + (now - since) * r.uniform(0.3, 0.7)
    add(d.TRACKING_NOTE_TRIGGER, {"note": r.choice(_NOTES)}, when, "coordinator")
    for _ in range(r.choice((1, 1, 2))):
        when = when + (now - when) * r.uniform(0.1, 0.5)
        owner = referral[r.choice(("coordinator", "lead_surgeon"))]
        due = local_date(when) + timedelta(days=r.randint(0, 10))
        task = {"what": r.choice(_TASKS), "owner": owner, "due_on": due.isoformat()}
        add(d.ADD_TASK_TRIGGER, task, when, "coordinator")


# -- lesions ------------------------------------------------------------------------------------


def lesion_rng(referral: datetime) -> random.Random:
    """The lesions' own random numbers, seeded by the referral: charting lesions draws
    nothing from the main sequence or the journey's, so every seed's journeys stay as
    they were."""
    return random.Random(f"lesions {referral.isoformat()}")  # noqa: S311 - demo data


_SPINE_FOR_METASTASES = SPINAL_LEVELS[2:24]  # C3 to L5
_BONE_SITES = {"Proximal femur": ("femur", 3), "Humerus": ("humerus", 1), "Pelvis": ("pelvis", 0)}


def _sins(r: random.Random, location: int) -> dict:
    return {
        "location": location,
        "pain": r.choice([0, 1, 3]),
        "bone_lesion": r.choice([0, 1, 2]),
        "alignment": r.choice([0, 0, 2]),
        "collapse": r.choice([0, 1, 2]),
        "posterolateral": r.choice([0, 1]),
    }


def _sins_location(level: str) -> int:
    if level in ("C1", "C2", "C7", "T1", "T2", "T11", "T12", "L1", "L5", "S1"):
        return 3
    if level[0] == "C" or level in ("L2", "L3", "L4"):
        return 2
    return 1 if level[0] == "T" else 0


def _mirels(r: random.Random, site: int) -> dict:
    return {
        "site": site,
        "pain": r.choice([1, 2, 3]),
        "lesion": r.choice([2, 3, 3]),
        "size": r.choice([1, 2, 3]),
    }


def _span(levels: str, by: int) -> str:
    """The instrumentation span of an operation at ``levels``: ``by`` levels above and below."""
    covered = expand_levels(levels)
    first = max(SPINAL_LEVELS.index(covered[0]) - by, 0)
    last = min(SPINAL_LEVELS.index(covered[-1]) + by, len(SPINAL_LEVELS) - 1)
    return f"{SPINAL_LEVELS[first]}-{SPINAL_LEVELS[last]}"


def _chart(at: datetime, state: str, r: random.Random, **data) -> dict:
    return {
        "trigger": "record_lesion",
        "from_state": state,
        "to_state": state,
        "occurred_at": at,
        "data": data,
        "by": "surgeon",
        "recorded_after": r.randint(1, 90),  # minutes; not drawn from the main sequence
    }


def _chart_lesions(events: list[dict], referral: dict, site: str, r: random.Random) -> None:
    """Chart the journey's lesions and link the steps to them: the tumour site charted once
    imaged (a metastatic spine has one or two more lesions, and now and then a femoral one
    scored by Mirels); a recurrence is a new lesion at a new level, imaged, discussed and
    irradiated there; operations and radiotherapy name the lesions they treat."""
    imaging = next((i for i, e in enumerate(events) if e["trigger"] == "record_imaging"), None)
    if imaging is None:
        return
    bone = next((b for name, b in _BONE_SITES.items() if site.startswith(name)), None)
    metastatic = referral["diagnosis_category"] == consistency.METASTATIC
    index = events[imaging]
    at, state = index["occurred_at"], index["to_state"]
    inserts: dict[int, list[dict]] = {imaging: []}
    if bone:
        name, mirels_site = bone
        data = {"lesion_ref": site, "bone": name, "side": r.choice(["left", "right"])}
        if mirels_site:
            data["mirels"] = _mirels(r, mirels_site)
        inserts[imaging].append(_chart(at, state, r, finding="new", **data))
        index_levels = None
    else:
        index_levels = SpinalLevels("levels", "Levels").check(site)
        data = {"lesion_ref": site, "levels": index_levels, "finding": "new"}
        data["sins"] = _sins(r, _sins_location(expand_levels(index_levels)[0]))
        if index["data"].get("bilsky_grade"):
            data["bilsky_grade"] = index["data"]["bilsky_grade"]
        inserts[imaging].append(_chart(at, state, r, **data))
    index_ref = site
    busy = set(expand_levels(index_levels)) if index_levels else set()
    free = [lv for lv in _SPINE_FOR_METASTASES if lv not in busy]
    if metastatic:
        for level in sorted(r.sample(free, r.randint(1, 2)), key=SPINAL_LEVELS.index):
            inserts[imaging].append(
                _chart(
                    at,
                    state,
                    r,
                    lesion_ref=level,
                    levels=level,
                    finding="new",
                    sins=_sins(r, _sins_location(level)),
                    bilsky_grade=r.choice(["0", "1a"]),
                )
            )
            busy.add(level)
        if r.random() < 0.4:
            side = r.choice(["left", "right"])
            inserts[imaging].append(
                _chart(
                    at,
                    state,
                    r,
                    lesion_ref=f"{side} femur",
                    bone="femur",
                    side=side,
                    finding="new",
                    mirels=_mirels(r, r.choice([2, 3])),
                )
            )
    # The first episode's steps name the index lesion.
    current, current_levels = index_ref, index_levels
    for i, e in enumerate(events):
        data = e["data"]
        if i > imaging and e["trigger"] == "suspect_recurrence" and metastatic:
            following = next(
                (k for k in range(i + 1, len(events)) if events[k]["trigger"] == "record_imaging"),
                None,
            )
            left = [lv for lv in _SPINE_FOR_METASTASES if lv not in busy]
            if following is not None and left:
                level = r.choice(left)
                busy.add(level)
                new = events[following]
                chart = _chart(
                    new["occurred_at"],
                    new["to_state"],
                    r,
                    lesion_ref=level,
                    levels=level,
                    finding="new",
                    sins=_sins(r, _sins_location(level)),
                )
                inserts.setdefault(following - 1, []).append(chart)
                current, current_levels = level, level
            continue
        if i <= imaging:
            continue
        if e["trigger"] == "record_imaging":
            data["lesions"] = [current]
        elif d.is_mdt_outcome(e["trigger"], e["from_state"]) and (
            data.get("sins") or data.get("bilsky_grade")
        ):
            if bone:
                continue
            data["lesion"] = current
        elif e["trigger"] == "record_surgery":
            data["lesions"] = [current]
            if current_levels and "stabilisation_fusion" in data.get("procedures", []):
                data["instrumented_levels"] = _span(current_levels, 2)
        elif e["trigger"] == "record_treatment" and data.get("modality") in (
            "sbrt",
            "conventional_rt",
        ):
            data["lesions"] = [current]
            if current_levels:
                data["levels"] = current_levels
            elif bone:
                data["bone"] = bone[0]
    # Insert, and renumber what corrections point at.
    old_to_new, out = {}, []
    for i, e in enumerate(events):
        out.append(e)
        old_to_new[i + 1] = len(out)
        out.extend(inserts.get(i, []))
    for e in out:
        if e["trigger"] in d.CORRECTION_TRIGGERS and "event_seq" in e["data"]:
            e["data"]["event_seq"] = old_to_new[e["data"]["event_seq"]]
    events[:] = out


def _coherent(events: list[dict], referral: dict) -> None:
    """The MDT records agree with the referral: Tokuhashi on metastatic spinal disease only,
    its primary site and the radiosensitivity from the primary cancer."""
    site = referral["primary_cancer_site"]
    for e in events:
        if not d.is_mdt_outcome(e["trigger"], e["from_state"]):
            continue
        data = e["data"]
        if site in _RADIOSENSITIVITY:
            data["radiosensitivity"] = _RADIOSENSITIVITY[site]
        if "tokuhashi" not in data:
            continue
        if referral["diagnosis_category"] != consistency.METASTATIC:
            del data["tokuhashi"]
            continue
        data["tokuhashi"]["primary_site"] = consistency.PRIMARY_SITE_POINTS.get(site, 2)


def _mri_contraindicated(x: random.Random, data: dict) -> dict:
    """Now and then a CT stands for the MRI: a pacemaker, say."""
    if data["modality"] == "ct" and x.random() < 0.3:
        return {**data, "mri_contraindicated": True}
    return data


def _fatal_sometimes(x: random.Random, data: dict) -> dict:
    """Rarely a complication is fatal (Clavien-Dindo V): the death is recorded with it."""
    return {**data, "clavien_dindo": "V"} if x.random() < 0.03 else data


def _imaging(rng, levels: str) -> dict:
    data = {
        "modality": rng.choice(["mri", "mri", "ct", "pet_ct"]),
        "region": "Whole spine",
        "levels": levels,
        "findings": "Lesion with epidural extension at the stated levels.",
        "bilsky_grade": rng.choice(["1a", "1b", "1c", "2"]),
    }
    if data["modality"] != "mri":  # a Bilsky grade is read on MRI only
        del data["bilsky_grade"]
    return data


def journey_rng(referral: datetime, now: datetime) -> random.Random:
    """The journey's own random numbers for the steps of the national waiting-time rules
    (telling the patient, agreeing the plan, adjustments, upgrades, delays): seeded by the
    referral's age, drawn from the main sequence, so that sequence, and every seed's
    journeys, stay as they were, whatever the day the demo is made."""
    age = round((now - referral).total_seconds(), 3)
    return random.Random(f"journey {age}")  # noqa: S311 - demo data


def referral_priority(x: random.Random, urgency: str) -> str:
    """Most non-emergency referrals are urgent suspected cancer; some routine ones are not
    (a consultant may upgrade them)."""
    if urgency == "routine" and x.random() < 0.3:
        return "routine"
    return default_priority(urgency)


_DELAYS = (
    "Capacity: no theatre slot within the standard.",
    "Patient choice: wanted time to consider the options.",
    "Clinical: medically unfit, optimised first.",
    "Diagnostic delay: a second biopsy was needed.",
)


def simulate(
    rng: random.Random,
    referral: datetime,
    now: datetime,
    urgency: str,
    site: str,
    priority: str | None = None,
) -> Journey:
    j = Journey(rng, referral, now, urgency)
    x = journey_rng(referral, now)
    priority = priority or default_priority(urgency)
    plan = rng.choices(["surgery", "oncology", "palliative", "surveillance"], [5, 3, 1, 1])[0]
    # (trigger, data, who, and optionally when: a step of the national rules is timed by
    # the journey's own numbers, so the main sequence is drawn as before)
    steps: list[tuple] = []

    def go():
        for trigger, make, by, *when in steps:
            if not j.add(trigger, make(), by=by, at=when[0]() if when else None):
                return False
            if j.state in d.FINAL_STATES:
                return False
        steps.clear()
        return True

    def later(low_days: float, high_days: float):
        return lambda: j.t + timedelta(days=x.uniform(low_days, high_days))

    def late(data: dict) -> dict:
        """A step that stops a clock more than 62 days after the referral says why."""
        if (j.t - referral).days > 55:
            return {**data, "breach_reason": x.choice(_DELAYS)}
        return data

    if urgency != "emergency":
        if x.random() < 0.06:  # did not attend the first appointment, rebooked
            rebooked = (referral + timedelta(days=x.uniform(6, 14))).date().isoformat()
            steps.append(
                (
                    "record_adjustment",
                    lambda: {
                        "kind": "dna_first_appointment",
                        "reason": "Did not attend the first appointment.",
                        "rebooked_on": rebooked,
                    },
                    "coordinator",
                    later(1, 4),
                )
            )
        if priority == "routine" and x.random() < 0.5:  # the consultant upgrades it
            steps.append(
                (
                    "upgrade_referral",
                    lambda: {"upgraded_on": j.t.date().isoformat(), "consultant": "surgeon"},
                    "surgeon",
                    later(1, 10),
                )
            )

    steps += [
        ("request_imaging", dict, "coordinator"),
        ("record_imaging", lambda: _mri_contraindicated(x, _imaging(rng, site)), "coordinator"),
    ]
    if rng.random() < 0.6:
        steps += [
            ("request_biopsy", dict, "coordinator"),
            (
                "record_biopsy",
                lambda: {
                    "method": "ct_guided_core",
                    "result": "malignant",
                    "histology": "Metastatic adenocarcinoma.",
                },
                "coordinator",
            ),
        ]
    if urgency != "emergency" and x.random() < 0.3:  # a wait for clinic before the MDT
        steps.append(
            (
                "record_assessment",
                lambda: {"pain_nrs": x.randint(2, 7)},
                "coordinator",
                later(8, 40),
            )
        )
    steps += [
        ("refer_to_mdt", dict, "coordinator"),
        (
            "schedule_mdt",
            lambda: {"meeting_date": (j.t + timedelta(days=2)).date().isoformat()},
            "coordinator",
        ),
    ]
    if not go():
        return j
    if x.random() < 0.04:  # the MDT concludes benign: the patient is told, the pathway ends
        told = {"outcome": "cancer_ruled_out", "method": x.choice(["face_to_face", "letter"])}
        j.add("rule_out_cancer", {"reason": "benign", **told}, at=later(2, 10)())
        return j
    if rng.random() < 0.04:  # transferred to another centre before the MDT decided
        j.add("withdraw", {"reason": rng.choice(["transferred", "declined"])})
        return j
    if rng.random() < 0.05:  # a void: a step recorded in error and undone
        if not j.add("withdraw", {"reason": "declined"}):
            return j
        j.add(d.VOID_TRIGGER, {"reason": "Recorded on the wrong patient."}, at=j.gap(0.1, 2))
    steps.append(
        (
            "plan_" + plan,
            lambda: {
                **_mdt(rng, j, plan == "surgery"),
                **(_first_visit(j) if plan == "surveillance" else {}),
            },
            "surgeon",
        )
    )
    if rng.random() < 0.7:  # the lead surgeon reviews the story so far after the MDT
        steps.append(("sign_off", dict, "surgeon"))
    if priority != "emergency_presentation" and x.random() < 0.85:
        steps.append(
            (
                "communicate_diagnosis",
                lambda: {
                    "outcome": "cancer_confirmed",
                    "method": x.choice(["face_to_face", "face_to_face", "telephone", "video"]),
                },
                "coordinator",
                later(0.1, 6),
            )
        )
    if plan in ("surgery", "oncology") and x.random() < 0.7:
        agreed = {"surgery": "surgery", "oncology": "radiotherapy"}[plan]
        steps.append(
            ("agree_treatment", lambda: {"treatment": agreed}, "coordinator", later(0.2, 5))
        )
    if plan in ("surgery", "oncology") and urgency != "emergency" and x.random() < 0.15:
        # A wait for the treatment itself (a theatre list, a planning scan): some breach.
        steps.append(
            (
                "record_assessment",
                lambda: {"pain_nrs": x.randint(2, 7)},
                "coordinator",
                later(20, 50),
            )
        )
    if plan == "surgery" and x.random() < 0.1:  # offered an admission, declined it
        offered = later(2, 5)()
        available = offered + timedelta(days=x.uniform(5, 15))
        steps += [
            (
                "record_adjustment",
                lambda: {
                    "kind": "patient_declined_admission",
                    "reason": "Declined the offered date: family commitments.",
                    "offered_date": offered.date().isoformat(),
                    "available_from": available.date().isoformat(),
                },
                "coordinator",
                lambda: offered - timedelta(days=1),
            ),
            (
                "record_assessment",
                lambda: {"pain_nrs": x.randint(2, 6)},
                "coordinator",
                lambda: available,
            ),
        ]
    if plan == "surgery":
        steps += [
            (
                "record_preop_assessment",
                lambda: {"asa_grade": rng.randint(1, 3), "consent_taken": True},
                "coordinator",
            ),
            (
                "record_surgery",
                lambda: late(
                    {
                        "lead_surgeon": rng.choice(["surgeon", "surgeon2"]),
                        "levels": site,
                        "procedures": rng.sample(
                            [
                                "decompression",
                                "stabilisation_fusion",
                                "laminectomy",
                                "vertebroplasty",
                            ],
                            2,
                        ),
                        "approach": rng.choice(["open", "minimally_invasive"]),
                        "neuromonitoring": ["ssep", "mep"],
                        "duration_min": rng.randint(90, 420),
                        "blood_loss_ml": rng.randint(100, 1500),
                    }
                ),
                "surgeon",
            ),
        ]
        if rng.random() < 0.25:
            steps.append(
                (
                    "record_complication",
                    lambda: _fatal_sometimes(
                        x,
                        {
                            "complication": rng.choice(["csf_leak", "wound_infection", "vte"]),
                            "clavien_dindo": rng.choice(["I", "II", "IIIa", "IIIb"]),
                        },
                    ),
                    "surgeon",
                )
            )
        steps += [
            ("start_rehabilitation", dict, "coordinator"),
            (
                "record_therapy_session",
                lambda: {"mobility": "walking_aid", "pain_nrs": rng.randint(1, 6)},
                "coordinator",
            ),
            (
                *(
                    ("start_oncology_treatment", dict)
                    if rng.random() < 0.5
                    else ("start_surveillance", lambda: _first_visit(j))
                ),
                "coordinator",
            ),
        ]
    elif plan == "palliative":
        steps.append(
            (
                "record_assessment",
                lambda: {"pain_nrs": rng.randint(3, 8), "ecog": rng.randint(2, 4)},
                "coordinator",
            )
        )
        steps.append(("record_death" if rng.random() < 0.5 else "discharge", dict, "coordinator"))
    if not go():
        return j
    if j.state == "oncology_treatment":
        start = j.t.date().isoformat()
        steps += [
            (
                "record_treatment",
                lambda: late(
                    {"modality": "sbrt", "dose_gy": 24.0, "fractions": 3, "start_date": start}
                ),
                "coordinator",
            ),
            ("start_surveillance", lambda: _first_visit(j), "coordinator"),
        ]
    if not go():
        return j
    if rng.random() < 0.1:
        # A record corrected after the fact: the imaging levels were mistyped.
        imaging = next(i for i, s in enumerate(j.steps) if s["trigger"] == "record_imaging")
        j.add(
            d.AMEND_TRIGGER,
            {
                "event_seq": imaging + 2,
                "changes": {"levels": site + " (corrected)"},
                "reason": "Levels mistyped at entry.",
            },
            at=j.gap(0.2, 3),
        )
    for _ in range(rng.randint(0, 4)):
        if j.state != "surveillance":
            break
        status = rng.choices(["ned", "stable", "recurrence"], [6, 3, 1])[0]
        at = j.gap(24 * 60, 24 * 100)
        follow_up = {
            "imaging_done": True,
            "status": status,
            "next_due": (at + timedelta(days=90)).date().isoformat(),
        }
        if not j.add("record_follow_up", follow_up, at=at):
            return j
        if status == "recurrence":
            episode = {"urgency": "urgent", "referral_priority": "urgent_suspected_cancer"}
            if not j.add("suspect_recurrence", episode):
                return j
            if not j.add("record_imaging", _imaging(rng, site)):
                return j
            if not (
                j.add("refer_to_mdt")
                and j.add(
                    "schedule_mdt", {"meeting_date": (j.t + timedelta(days=3)).date().isoformat()}
                )
            ):
                return j
            j.add("plan_oncology", _mdt(rng, j, False), at=j.gap(72, 120), by="surgeon")
            if j.state == "oncology_treatment":
                j.add(
                    "record_treatment",
                    {
                        "modality": "conventional_rt",
                        "dose_gy": 20.0,
                        "fractions": 5,
                        "start_date": j.t.date().isoformat(),
                    },
                )
            return j
    if j.state == "surveillance" and rng.random() < 0.3:
        last = next((s for s in reversed(j.steps) if s["trigger"] == "record_follow_up"), None)
        if last and last["data"]["status"] in ("ned", "stable"):
            j.add("discharge")
    return j


def _referral_age_days(rng: random.Random, urgency: str) -> float:
    """Most referrals recent, so the demo spreads over every state, with a long tail."""
    if urgency == "emergency":
        return rng.choice([rng.uniform(0.05, 3), rng.uniform(0.05, 60)])
    band = rng.choices([(0.2, 21), (21, 90), (90, 420)], [5, 3, 2])[0]
    return rng.uniform(*band)


def _patients(rng: random.Random, ids: list[int], start_mrn: int, now: datetime) -> list[dict]:
    rows = []
    for i, patient_id in enumerate(ids):
        mrn = f"D{start_mrn + i:07d}"
        family, given = rng.choice(FAMILY), rng.choice(GIVEN)
        rows.append(
            {
                "id": patient_id,
                "mrn": mrn,
                # A bulk insert: the model's hooks do not run, so the keys are set here.
                "mrn_key": identifier_key(mrn),
                "search_key": name_search_key(family, given),
                "family_name": family,
                "given_name": given,
                "birth_date": date(1940, 1, 1) + timedelta(days=rng.randint(0, 22000)),
                "sex": rng.choice(["female", "male"]),
                "created_at": now,
            }
        )
    return rows


# Pathways simulated, derived and written per batch; a large seed builds its batches in
# worker processes while this one writes them.
BATCH = 1000


@dataclass(frozen=True)
class _Batch:
    """What one batch is built from: its place in the seed and the ids given to it."""

    index: int
    first: int  # the seed's count of pathways before this batch
    seed_value: int
    start_mrn: int
    patient_ids: list[int]
    pathway_ids: list[int]
    user_ids: dict[str, int]
    now: datetime
    validate_every: int
    seal_key: bytes


@dataclass
class _Built:
    """A batch's rows as the driver takes them, ready to write but for the events' ids
    and their places in the event chain."""

    patients: Prepared
    pathways: Prepared
    clocks: Prepared
    facts: Prepared
    tasks: Prepared
    events: Prepared  # every column but the id, _REFERENCES and the chain's
    event_items: list[str]  # each event's content_items of _KNOWN_AT_BUILD
    event_targets: list[tuple[int | None, int | None]]  # places in the batch it amends, voids
    states: list[tuple[int, str]]  # (pathway id, state)
    report_counts: Counter
    built_by: int  # the process id of the builder


# An event's references to other events are known once the writer gives out the ids; the
# fields before them in the chain's content (they are its last) are worked out with the
# rest of the batch.
_REFERENCES = ("amends_event_id", "voids_event_id")
_KNOWN_AT_BUILD = FIELDS["event"][: -len(_REFERENCES)]


def seed(
    pathways: int,
    seed_value: int = 7,
    validate_every: int = 1,
    progress: Callable[[int], None] | None = None,
    now: datetime | None = None,
    workers: int | None = None,
    batch: int = BATCH,
) -> int:
    """Create demo users and ``pathways`` journeys; writes, the caller commits.

    Each batch of ``batch`` pathways draws from its own random numbers (the first from
    ``seed_value`` itself), so the data are the same whoever builds them: this process,
    or, with ``workers`` (by default one per core when there is more than one batch),
    that many processes forked from it, while this one writes what they built."""
    now = now or utcnow()
    users = ensure_demo_users()
    user_ids = {name: u.id for name, u in users.items()}
    connection = db.session.connection()
    start_mrn = (db.session.scalar(select(func.count(Patient.id))) or 0) + 1
    patient_ids = reserve_ids(connection, Patient.__table__, pathways)
    pathway_ids = reserve_ids(connection, Pathway.__table__, pathways)
    key = current_key()
    jobs = [
        _Batch(
            index=i,
            first=first,
            seed_value=seed_value,
            start_mrn=start_mrn + first,
            patient_ids=patient_ids[first : first + batch],
            pathway_ids=pathway_ids[first : first + batch],
            user_ids=user_ids,
            now=now,
            validate_every=validate_every,
            seal_key=key,
        )
        for i, first in enumerate(range(0, pathways, batch))
    ]
    if workers is None:
        workers = _cores() if len(jobs) > 1 else 0
    report_counts: Counter = Counter()
    states: list[tuple[int, str]] = []
    for built in _built(jobs, workers):
        _write(connection, built)
        report_counts.update(built.report_counts)
        states += built.states
        if progress:
            progress(len(built.states))
    add_pathways(connection, states)
    daily.add(connection, report_counts)
    return pathways


def _cores() -> int:
    """The cores this process may run on (a container's or a pinned process's own)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _built(jobs: list[_Batch], workers: int) -> Iterator[_Built]:
    """Each batch built, in order: here, or by ``workers`` forked processes (Linux's
    fork: the workers share what this process has loaded), with at most two batches per
    worker built or waiting ahead of the writer (a bound on memory). A batch that fails
    in a worker stops the seed with its error; so does a worker that dies."""
    if workers < 1 or not sys.platform.startswith("linux"):
        yield from map(_build, jobs)
        return
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_forked) as pool:
        pending: deque = deque()
        try:
            for job in jobs:
                pending.append(pool.submit(_build_in_worker, job))
                if len(pending) >= 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def _build_in_worker(job: _Batch) -> _Built:
    """``_build`` in a worker: its error comes back as one that crosses processes (not
    every exception can be rebuilt from what pickling keeps of it)."""
    try:
        return _build(job)
    except Exception:
        raise RuntimeError(
            f"demo batch {job.index} (pathways {job.first + 1} to "
            f"{job.first + len(job.pathway_ids)}) failed:\n{traceback.format_exc()}"
        ) from None


def _forked() -> None:
    """A worker never uses the connections it inherited: they belong to the writer. Nor
    does it free what it inherited: the collector leaves it out of every pass (a tenth of
    a worker's time here)."""
    db.engine.dispose(close=False)
    gc.freeze()


def _write(connection, built: _Built) -> None:
    """Write a built batch: the events get their ids and their places in the event chain."""
    ids = reserve_ids(connection, Event.__table__, len(built.event_targets))
    given, contents = [], []
    for place, (items, (amends, voids)) in enumerate(
        zip(built.event_items, built.event_targets, strict=True)
    ):
        row = {
            "id": ids[place],
            "amends_event_id": None if amends is None else ids[amends],
            "voids_event_id": None if voids is None else ids[voids],
        }
        given.append(row)
        contents.append(f"{items},{content_items(row, _REFERENCES)}")
    for row, (position, prev, link) in zip(given, seal_contents("event", contents), strict=True):
        row["chain_seq"], row["prev_hash"], row["hash"] = position, prev, link
    events = built.events.joined(prepare(connection.dialect, Event.__table__, given))
    for table, rows in (
        (Patient.__table__, built.patients),
        (Pathway.__table__, built.pathways),
        (Event.__table__, events),
        (PathwayClock.__table__, built.clocks),
        (PathwayFact.__table__, built.facts),
        (PathwayTask.__table__, built.tasks),
    ):
        insert_rows(connection, table, rows)


def _build(job: _Batch) -> _Built:
    """Simulate, check and derive one batch of journeys: every row it writes."""
    seed_value = job.seed_value if job.index == 0 else f"{job.seed_value}/{job.index}"
    rng = random.Random(seed_value)  # noqa: S311 - demo data, not secrets
    now = job.now
    patient_rows = _patients(rng, job.patient_ids, job.start_mrn, now)
    for row in patient_rows:
        row["seal"] = seal_of_values(Patient, row["id"], row, job.seal_key)
    journeys = []
    for k, (row, pathway_id) in enumerate(zip(patient_rows, job.pathway_ids, strict=True)):
        urgency = rng.choices(["emergency", "urgent", "routine"], [1, 3, 4])[0]
        referral = now - timedelta(days=_referral_age_days(rng, urgency))
        site = rng.choice(SITES)
        priority = referral_priority(journey_rng(referral, now), urgency)
        journey = simulate(rng, referral, now, urgency, site, priority)
        check = (job.first + k) % job.validate_every == 0
        journeys.append((row["id"], pathway_id, urgency, priority, referral, site, journey, check))
    return _derive_batch(rng, journeys, job.user_ids, clocks.rules(), now, patient_rows)


def _derive_batch(rng, journeys, user_ids, rules, now, patient_rows) -> _Built:
    event_batches = []
    pathway_rows, clock_rows, fact_rows, task_rows = [], [], [], []
    report_counts: Counter = Counter()
    for patient_id, pathway_id, urgency, priority, referral, site, j, check in journeys:
        open_data = {
            "referral_source": rng.choice(["gp", "emergency_department", "oncology"]),
            "urgency": urgency,
            "referral_priority": priority,
            "diagnosis_category": rng.choice(
                ["metastatic_spinal"] * 3
                + ["primary_spinal", "primary_bone", "intradural_intramedullary"]
            ),
            "tumour_site": site,
            "primary_cancer_site": rng.choice(
                ["breast", "lung", "prostate", "kidney", "myeloma", "unknown"]
            ),
            "presenting_symptoms": sorted(
                rng.sample(["back_pain", "weakness", "numbness", "weight_loss"], 2)
            ),
            "lead_surgeon": rng.choice(["surgeon", "surgeon2"]),
            "coordinator": rng.choice(["coordinator", "coordinator2"]),
        }
        open_data["team"] = teams.for_diagnosis(open_data["diagnosis_category"])
        events = [
            {
                "trigger": d.OPEN_TRIGGER,
                "from_state": None,
                "to_state": d.INITIAL_STATE,
                "occurred_at": referral,
                "data": open_data,
                "by": "coordinator",
            },
            *j.steps,
        ]
        _coherent_referral(open_data, site)
        _coherent(events, open_data)
        if open_data["diagnosis_category"] == "primary_bone":
            _a_bone(events, site)
        _chart_lesions(events, open_data, site, lesion_rng(referral))
        _track(events, open_data, referral, now)
        steps = []
        for seq, e in enumerate(events, start=1):
            data = e["data"]
            if e["trigger"] not in d.CORRECTION_TRIGGERS and e["trigger"] != d.OPEN_TRIGGER:
                if check:
                    data = validate_event_data(
                        e["trigger"], e["from_state"], data, e["occurred_at"]
                    )
                else:
                    data = with_scores(dict(data))
            e["data"] = data
            e["seq"] = seq
            steps.append(
                Step(
                    seq=seq,
                    trigger=e["trigger"],
                    from_state=e["from_state"],
                    to_state=e["to_state"],
                    occurred_at=e["occurred_at"],
                    data=dict(data),
                    original=data,
                    amends_seq=data.get("event_seq") if e["trigger"] == d.AMEND_TRIGGER else None,
                    voids_seq=None,
                    recorded_by_id=user_ids[e["by"]],
                )
            )
        for step in steps:
            if step.trigger == d.VOID_TRIGGER:
                target = next(
                    s
                    for s in reversed(steps[: step.seq - 1])
                    if s.changes_state and s.voided_by is None
                )
                step.voids_seq = target.seq
                step.data = events[step.seq - 1]["data"] = {**step.data, "event_seq": target.seq}
        history = History(steps)
        derived = derive(urgency, referral, history, now, rules)
        row = {
            "id": pathway_id,
            "patient_id": patient_id,
            "state": derived.state,
            "version": len(events),
            "referral_received_at": referral,
            "referral_source": open_data["referral_source"],
            "urgency": urgency,
            "diagnosis_category": open_data["diagnosis_category"],
            "tumour_site": site,
            "primary_cancer_site": open_data["primary_cancer_site"],
            "presenting_symptoms": open_data["presenting_symptoms"],
            "lead_surgeon_id": user_ids[open_data["lead_surgeon"]],
            "coordinator_id": user_ids[open_data["coordinator"]],
            "opened_at": referral,
            **derived.row_values(),
        }
        pathway_rows.append(row)
        report_counts.update(daily.contribution(row, derived.clocks, derived.facts))
        clock_rows += ({"pathway_id": pathway_id, **values} for values in derived.clocks)
        fact_rows += ({"pathway_id": pathway_id, **values} for values in derived.facts)
        task_rows += (
            {
                "pathway_id": pathway_id,
                "owner_id": user_ids[values["owner"]],
                **{k: v for k, v in values.items() if k != "owner"},
            }
            for values in derived.tasks
        )
        event_batches.append((pathway_id, events))
    # Event ids are places in the batch until the writer gives out real ones.
    rows, targets = [], []
    for pathway_id, events in event_batches:
        first = len(rows)
        for e in events:
            target = None
            if e["trigger"] in d.CORRECTION_TRIGGERS:
                target = first + e["data"]["event_seq"] - 1
            targets.append(
                (
                    target if e["trigger"] == d.AMEND_TRIGGER else None,
                    target if e["trigger"] == d.VOID_TRIGGER else None,
                )
            )
            rows.append(
                {
                    "pathway_id": pathway_id,
                    "seq": e["seq"],
                    "trigger": e["trigger"],
                    "from_state": e["from_state"],
                    "to_state": e["to_state"],
                    "occurred_at": e["occurred_at"],
                    "recorded_at": min(
                        now,
                        e["occurred_at"]
                        + timedelta(minutes=e.get("recorded_after") or rng.randint(1, 90)),
                    ),
                    "recorded_by_id": user_ids[e["by"]],
                    "data": e["data"],
                    "request_id": f"demo-{pathway_id}-{e['seq']}",
                }
            )
    dialect = db.engine.dialect
    return _Built(
        patients=prepare(dialect, Patient.__table__, patient_rows),
        pathways=prepare(dialect, Pathway.__table__, pathway_rows),
        clocks=prepare(dialect, PathwayClock.__table__, clock_rows),
        facts=prepare(dialect, PathwayFact.__table__, fact_rows),
        tasks=prepare(dialect, PathwayTask.__table__, task_rows),
        events=prepare(dialect, Event.__table__, rows),
        event_items=[content_items(row, _KNOWN_AT_BUILD) for row in rows],
        event_targets=targets,
        states=[(row["id"], row["state"]) for row in pathway_rows],
        report_counts=report_counts,
        built_by=os.getpid(),
    )
