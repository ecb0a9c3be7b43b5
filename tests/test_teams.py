"""Minimum necessary access: a user sees their teams' patients on every list, page, export
and API call; another team's patient only through audited, time-limited emergency access.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import select

from tests.helpers import enrol, log_in
from tracker.api.services import create_token
from tracker.audit.models import AuditEntry
from tracker.demo import DEMO_PASSWORD, seed
from tracker.engine import services, teams
from tracker.engine.errors import InvalidData
from tracker.engine.models import Event, Pathway
from tracker.patients.models import Patient
from tracker.teams.models import EmergencyAccess, UserTeam
from tracker.teams.services import set_teams
from tracker.users.models import User
from tracker.web.access import ACCESS

MINE = "spine"


@pytest.fixture
def demo(session):
    """The demo's pathways (every team among them), and the coordinator narrowed to the
    spine team."""
    seed(40, seed_value=11)
    coordinator = session.scalar(select(User).where(User.username == "coordinator"))
    _list_on_meetings(session, coordinator)
    _notify(session, coordinator)
    set_teams(coordinator, [MINE])
    enrol(session.scalar(select(User).where(User.username == "admin")))
    session.commit()
    return coordinator


def _notify(session, coordinator) -> None:
    """A notification about every pathway of every team, so the notifications page would
    list other teams' patients."""
    from tracker.alerts.models import Notification

    for pathway_id in session.scalars(select(Pathway.id)):
        session.add(
            Notification(
                user_id=coordinator.id,
                kind="breached",
                pathway_id=pathway_id,
                dedupe_key=f"test:{pathway_id}",
            )
        )


def _list_on_meetings(session, coordinator) -> None:
    """One MDT meeting with every pathway of every team that waits for one (a meeting
    of each team in turn), so the meeting page lists other teams' patients."""
    from tracker.mdt import services as mdt

    waiting = session.scalars(
        select(Pathway).where(Pathway.state == "mdt_review").order_by(Pathway.id)
    ).all()
    assert {p.team for p in waiting} - {MINE}, "the seed has another team's pathway in review"
    day = (datetime.now(UTC) + timedelta(days=7)).date().isoformat()
    for team in sorted({p.team for p in waiting}):
        meeting = mdt.create_meeting(
            {"team": team, "meeting_date": day, "start_time": "08:00", "location": "Room 1",
             "chair": "surgeon"},
            coordinator,
        )  # fmt: skip
        for pathway in (p for p in waiting if p.team == team):
            services.record(
                pathway,
                "schedule_mdt",
                {"meeting_id": meeting.id, "question": "Q", "presenter": "surgeon",
                 "triage": "full_discussion"},
                datetime.now(UTC),
                coordinator,
                pathway.version,
                uuid.uuid4().hex,
            )  # fmt: skip


def _meeting_urls(session) -> list[str]:
    """The meetings of the other teams (their cases: other teams' patients)."""
    from tracker.mdt.models import MdtMeeting

    meetings = session.scalars(select(MdtMeeting).where(MdtMeeting.team != MINE)).all()
    return [f"/mdt/meetings/{m.id}{page}" for m in meetings for page in ("", "/agenda")]


def _login(client, username: str = "coordinator") -> None:
    response = log_in(client, username, DEMO_PASSWORD)
    assert response.status_code == 302, response.text


def _identifiers(patient: Patient) -> set[str]:
    found = {patient.mrn}
    if patient.nhs_number:
        digits = patient.nhs_number
        found |= {digits, f"{digits[:3]} {digits[3:6]} {digits[6:]}"}
    return found


def _others(session) -> set[str]:
    """Patterns that find the patients with no pathway in the spine team, and their
    pathways: MRN and NHS number, a link to the pathway, its id in a CSV's first columns."""
    out: set[str] = set()
    for patient in session.scalars(select(Patient)):
        if patient.pathways and all(p.team != MINE for p in patient.pathways):
            out |= {rf"(?<![0-9A-Za-z]){re.escape(i)}(?![0-9])" for i in _identifiers(patient)}
            for p in patient.pathways:
                out |= {rf'/pathways/{p.id}"', rf"(?m)^([^,\n]*,)?{p.id},"}
    return out


def _list_urls() -> list[str]:
    """Every page and export that lists patients (the matrix's ``list`` and ``export``
    rules without an id in the URL), with the arguments that fill them."""
    urls = {
        "worklist.index": "/",
        "worklist.export": "/worklist.csv",
        "patients.index": "/patients/?q=a",
        "mdt.index": "/mdt/",
        "mdt.meeting": "(the meetings of other teams: _meeting_urls)",
        "review.index": "/sign-off/?surgeon=surgeon",
        "reports.this_week": "/this-week?who=all",
        "returns.ptl": "/ptl",
        "returns.ptl_csv": "/ptl.csv",
        "notifications.index": "/notifications/",
        "mywork.index": "/my-work/",
        "mdt.agenda_print": "(the agendas of other teams' meetings: _meeting_urls)",
        "bulk.act": "(the patients ticked for a bulk action: _bulk_urls)",
    }
    listing = {
        e
        for e, rule in ACCESS.items()
        if rule.shows in ("list", "export")
        and not e.startswith(("api.", "audit.", "teams."))
        and e not in ("returns.cwt", "returns.cwt_csv")  # by month: _cwt_urls
    }
    assert listing == set(urls), "a new list: add it here, with arguments that fill it"
    made = ("mdt.meeting", "mdt.agenda_print", "bulk.act")
    return [url for endpoint, url in urls.items() if endpoint not in made]


def _shown(text: str, patterns: set[str]) -> set[str]:
    return {p for p in patterns if re.search(p, text)}


def test_each_referral_belongs_to_the_team_of_its_diagnosis_or_the_one_it_names(
    session, users, now
):
    from tests.helpers import new_patient

    patient = new_patient(users["coordinator"])
    base = {
        "referral_received_at": now - timedelta(days=2),
        "referral_source": "gp",
        "urgency": "urgent",
        "tumour_site": "T8",
        "primary_cancer_site": "breast",
    }
    by_diagnosis = services.open_pathway(
        users["coordinator"],
        patient,
        diagnosis_category="metastatic_spinal",
        request_id=uuid.uuid4().hex,
        **base,
    )
    named = services.open_pathway(
        users["coordinator"],
        patient,
        diagnosis_category="metastatic_spinal",
        team="bone_sarcoma",
        confirm_another_pathway=True,
        request_id=uuid.uuid4().hex,
        **base,
    )
    session.flush()
    assert by_diagnosis.team == "metastatic" and named.team == "bone_sarcoma"
    referral = session.scalar(
        select(Event).where(Event.pathway_id == by_diagnosis.id, Event.seq == 1)
    )
    assert referral.data["team"] == "metastatic"  # written in the referral
    services.record(
        named,
        "reassign",
        {"team": "spine"},
        now - timedelta(days=1),
        users["coordinator"],
        named.version,
        uuid.uuid4().hex,
    )
    session.flush()
    assert named.team == "spine"
    with pytest.raises(InvalidData, match="team"):
        services.record(
            named,
            "reassign",
            {"team": "orthopaedics"},
            now,
            users["coordinator"],
            named.version,
            uuid.uuid4().hex,
        )


def test_every_list_and_export_shows_only_the_users_teams(app, client, session, demo):
    others = _others(session)
    assert others, "the seed has patients of other teams"
    urls = _list_urls() + _cwt_urls(session) + _meeting_urls(session) + _bulk_urls(session)
    _login(client)
    # First with every team: each list shows some of the other teams' patients, so the
    # check below could fail.
    set_teams(demo, teams.codes())
    session.commit()
    before = {url: _shown(client.get(url).text, others) for url in urls}
    assert all(before.values()), str({u: len(v) for u, v in before.items()})
    set_teams(demo, [MINE])
    session.commit()
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        assert _shown(response.text, others) == set(), url


def _bulk_urls(session) -> list[str]:
    """A bulk action's page with every pathway ticked (as a list that showed them all)."""
    from urllib.parse import urlencode

    rows = session.execute(select(Pathway.id, Pathway.version).order_by(Pathway.id).limit(200))
    ticked = [("pathway", f"{ident}:{version}") for ident, version in rows]
    return ["/bulk/?" + urlencode([("action", "lead_surgeon"), *ticked])]


def _cwt_urls(session) -> list[str]:
    """The monthly return of a month in which another team's clock stopped."""
    from tracker.engine.models import PathwayClock

    stopped = session.scalar(
        select(PathwayClock.stopped_at)
        .join(Pathway, Pathway.id == PathwayClock.pathway_id)
        .where(
            Pathway.team != MINE,
            PathwayClock.clock.in_(("fds_28", "dtt_31", "rtt_62")),
            PathwayClock.status.in_(("met", "missed")),
            # A clock missed because its pathway closed has no stop (PostgreSQL sorts
            # NULL first in descending order).
            PathwayClock.stopped_at.is_not(None),
        )
        .order_by(PathwayClock.stopped_at.desc())
        .limit(1)
    )
    month = stopped.astimezone(teams_zone()).strftime("%Y-%m")
    return [f"/returns/cwt?month={month}", f"/returns/cwt.csv?month={month}"]


def teams_zone():
    from tracker.core.clock import local_zone

    return local_zone()


def _another_teams_pathway(session) -> Pathway:
    return session.scalar(select(Pathway).where(Pathway.team != MINE).order_by(Pathway.id))


def _pages_of(pathway: Pathway) -> list[str]:
    """Every page of one record (the matrix's ``patient`` and ``pathway`` rules)."""
    pages = {
        "patients.show": f"/patients/{pathway.patient_id}",
        "patients.edit": f"/patients/{pathway.patient_id}/edit",
        "patients.open_pathway": f"/patients/{pathway.patient_id}/pathways/new",
        "pathway.show": f"/pathways/{pathway.id}",
        "pathway.print_view": f"/pathways/{pathway.id}/print",
        "pathway.record": f"/pathways/{pathway.id}/record/add_note",
        "pathway.mdt_outcome": f"/pathways/{pathway.id}/mdt-outcome",
        "pathway.amend": f"/pathways/{pathway.id}/amend/1",
        "pathway.void": f"/pathways/{pathway.id}/void",
        "mdt.list_case": f"/mdt/pathways/{pathway.id}/list",
    }
    one_record = {
        e
        for e, rule in ACCESS.items()
        if rule.shows in ("patient", "pathway")
        and not e.startswith("api.")
        # A meeting's case live and its letters need a listed case and an outcome:
        # tests/test_mdt_running.py::test_a_gp_letter_is_a_pdf_stored_per_generation_and_audited
        # refuses them to another team.
        and e not in ("mdt.live_case", "mdt.generate_letter", "mdt.document")
    }
    assert one_record == set(pages), "a new page of one record: add it here"
    return list(pages.values())


def test_another_teams_record_needs_emergency_access_which_is_audited_and_expires(
    client, session, demo
):
    pathway = _another_teams_pathway(session)
    _login(client)
    for url in _pages_of(pathway):
        response = client.get(url)
        assert response.status_code == 403, url
        assert "Emergency access" in response.text and pathway.patient.mrn not in response.text
    refused = session.scalars(
        select(AuditEntry).where(AuditEntry.action == "refused").order_by(AuditEntry.id.desc())
    ).first()
    assert "not one of your teams" in refused.detail

    action = f"/patients/{pathway.patient_id}/emergency-access"
    target = f"/pathways/{pathway.id}"
    short = client.post(action, data={"reason": "look", "next": target})
    assert short.status_code == 422 and "at least 10 characters" in short.text
    assert session.scalar(select(EmergencyAccess.id)) is None

    granted = client.post(
        action, data={"reason": "Emergency admission overnight, on call", "next": target}
    )
    assert granted.status_code == 302 and granted.headers["Location"] == target
    page = client.get(target)
    assert page.status_code == 200 and "Emergency access" in page.text
    for url in _pages_of(pathway):
        # Let through (a step that does not apply now is the page's own 409).
        assert client.get(url).status_code in (200, 409), url
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "emergency_access"))
    assert entry.patient_id == pathway.patient_id and "on call" in entry.detail
    view = session.scalars(
        select(AuditEntry)
        .where(AuditEntry.action == "view", AuditEntry.pathway_id == pathway.id)
        .order_by(AuditEntry.id.desc())
    ).first()
    assert '"emergency_access"' in view.detail

    later = datetime.now(UTC) + timedelta(minutes=121)
    with time_machine.travel(later, tick=False):
        _login(client)
        assert client.get(target).status_code == 403


def test_the_administrators_see_yesterdays_emergency_access(client, session, demo):
    pathway = _another_teams_pathway(session)
    _login(client)
    client.post(
        f"/patients/{pathway.patient_id}/emergency-access",
        data={"reason": "Cord compression, admitted via ED", "next": "/"},
    )
    client.post("/logout")
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    with time_machine.travel(tomorrow, tick=False):
        _login(client, "admin")
        report = client.get("/audit/emergency-access")
        assert report.status_code == 200
        assert "Cord compression, admitted via ED" in report.text
        assert pathway.patient.mrn in report.text
        assert client.get("/audit/emergency-access?day=nonsense").status_code == 200
    _login(client, "coordinator")


def test_patients_without_a_pathway_are_seen_by_every_team(client, session, demo):
    from tests.helpers import new_patient

    patient = new_patient(demo)
    session.commit()
    _login(client)
    assert client.get(f"/patients/{patient.id}").status_code == 200
    assert patient.mrn in client.get(f"/patients/?q={patient.mrn}").text


def test_the_api_shows_only_the_callers_teams(client, session, demo):
    _, plain = create_token(demo, "test")
    session.commit()
    auth = {"Authorization": f"Bearer {plain}"}
    other = _another_teams_pathway(session)
    response = client.get(f"/api/v1/pathways/{other.id}", headers=auth)
    assert response.status_code == 403 and response.json["error"] == "other_team"
    for url in (
        f"/api/v1/pathways/{other.id}/events",
        f"/api/v1/pathways/{other.id}/fhir",
        f"/api/v1/patients/{other.patient_id}",
    ):
        assert client.get(url, headers=auth).status_code == 403, url
    assert (
        client.post(
            f"/api/v1/pathways/{other.id}/events",
            headers=auth,
            json={"trigger": "add_note", "data": {"note": "x"}, "expected_version": other.version},
        ).status_code
        == 403
    )
    listed = client.get("/api/v1/pathways?page=1", headers=auth).json
    assert listed["total"] == session.query(Pathway).filter(Pathway.team == MINE).count()
    assert {item["id"] for item in listed["items"]}.isdisjoint(
        {p.id for p in session.scalars(select(Pathway).where(Pathway.team != MINE))}
    )
    ptl = client.get("/api/v1/ptl", headers=auth).json
    assert all(session.get(Pathway, item["pathway_id"]).team == MINE for item in ptl["items"])


def test_an_administrator_sets_a_users_teams_and_it_is_audited(client, session, demo):
    _login(client, "admin")
    page = client.get(f"/users/{demo.id}")
    assert 'value="spine" checked' in page.text or "checked" in page.text
    response = client.post(
        f"/users/{demo.id}",
        data={
            "role": "coordinator",
            "active": "y",
            "teams": ["spine", "metastatic"],
            "teams_shown": "1",
        },
    )
    assert response.status_code == 302
    assert set(session.scalars(select(UserTeam.team).where(UserTeam.user_id == demo.id))) == {
        "spine",
        "metastatic",
    }
    entry = session.scalars(
        select(AuditEntry).where(AuditEntry.action == "update_user").order_by(AuditEntry.id.desc())
    ).first()
    assert "metastatic" in entry.detail and "teams" in entry.detail
    listing = client.get("/users/")
    assert "Spine, Metastatic spine" in listing.text or "Metastatic spine, Spine" in listing.text


def test_a_team_list_that_cannot_be_read_stops_the_app():
    from tests.conftest import make_app

    with pytest.raises(ValueError, match="code=Label"):
        make_app("sqlite://", TEAMS="spine")
    assert teams.parse("a=A, b_2=B two") == (("a", "A"), ("b_2", "B two"))
    with pytest.raises(ValueError, match="listed twice"):
        teams.parse("a=A,a=B")


# -- a refused duplicate names another team's patient to no one outside it ----------------


def _another_teams_patient(session) -> Patient:
    """A patient all of whose pathways are another team's, given an NHS number."""
    for patient in session.scalars(select(Patient).order_by(Patient.id)):
        if patient.pathways and all(p.team != MINE for p in patient.pathways):
            patient.nhs_number = "9434765919"
            session.commit()
            return patient
    raise AssertionError("the demo has no such patient")


def _my_patient(session) -> Patient:
    pathway = session.scalar(select(Pathway).where(Pathway.team == MINE).order_by(Pathway.id))
    return pathway.patient


def _registration(**fields) -> dict:
    return {
        "mrn": f"T{uuid.uuid4().hex[:8]}",
        "family_name": "Okafor",
        "given_name": "Ada",
        "birth_date": "1958-11-30",
        "sex": "female",
        **fields,
    }


def _names_nobody(text: str, holder: Patient) -> None:
    for secret in (
        holder.name,
        f"{holder.family_name}, {holder.given_name}",
        f"/patients/{holder.id}",
        f"patient {holder.id}",
    ):
        assert secret not in text, secret


def _refusals(session, holder: Patient) -> list[AuditEntry]:
    return list(
        session.scalars(
            select(AuditEntry).where(
                AuditEntry.action == "refused", AuditEntry.patient_id == holder.id
            )
        )
    )


def test_a_duplicate_of_another_teams_patient_is_refused_without_naming_them(client, session, demo):
    holder, mine = _another_teams_patient(session), _my_patient(session)
    before = session.query(Patient).count()
    _login(client)
    cases = [
        ("/patients/new", _registration(mrn=holder.mrn.lower()), "This MRN"),
        ("/patients/new", _registration(nhs_number=holder.nhs_number), "This NHS number"),
        (
            f"/patients/{mine.id}/edit",
            {**_registration(mrn=mine.mrn, nhs_number=holder.nhs_number)},
            "This NHS number",
        ),
        (f"/patients/{mine.id}/edit", _registration(mrn=holder.mrn), "This MRN"),
    ]
    for url, data, what in cases:
        response = client.post(url, data=data)
        assert response.status_code == 422, url
        text = response.text
        assert f"{what} is already registered to a patient of another team" in text
        assert "Ask that team" in text and "emergency access" in text
        _names_nobody(text, holder)
        if "nhs_number" in data and data.get("mrn") != holder.mrn.lower():
            assert holder.mrn not in text  # the MRN is shown only as the user typed it
    assert session.query(Patient).count() == before
    refusals = _refusals(session, holder)
    assert len(refusals) == len(cases)
    assert all(
        e.outcome == "refused" and "another team" in e.detail and e.username == "coordinator"
        for e in refusals
    )

    # With emergency access to that patient, the page names and links them as before.
    client.post(
        f"/patients/{holder.id}/emergency-access",
        data={"reason": "Transferred overnight, checking records", "next": "/"},
    )
    response = client.post("/patients/new", data=_registration(mrn=holder.mrn))
    assert response.status_code == 422
    assert f'href="/patients/{holder.id}"' in response.text
    assert "another team" not in response.text


def test_the_api_refuses_a_duplicate_of_another_teams_patient_without_naming_them(
    client, session, demo
):
    holder, mine = _another_teams_patient(session), _my_patient(session)
    _, plain = create_token(demo, "test")
    session.commit()
    auth = {"Authorization": f"Bearer {plain}"}
    body = {**_registration(mrn=holder.mrn), "sex": "female"}
    answers = [
        (client.post("/api/v1/patients", headers=auth, json=body), "duplicate_mrn", "MRN"),
        (
            client.patch(
                f"/api/v1/patients/{mine.id}", headers=auth, json={"nhs_number": holder.nhs_number}
            ),
            "duplicate_nhs_number",
            "NHS number",
        ),
    ]
    for response, code, what in answers:
        assert response.status_code == 409, response.json
        assert response.json["error"] == code
        assert response.json["other_team"] is True
        assert "patient_id" not in response.json
        assert (
            f"This {what} is already registered to a patient of another team"
            in (response.json["message"])
        )
        _names_nobody(response.text, holder)
        assert holder.mrn not in response.json["message"]
    refusals = _refusals(session, holder)
    assert len(refusals) == 2 and all("another team" in e.detail for e in refusals)
    # Their own team's patient is named, with the id, as before.
    same = client.post("/api/v1/patients", headers=auth, json={**body, "mrn": mine.mrn})
    assert same.status_code == 409 and same.json["patient_id"] == mine.id
