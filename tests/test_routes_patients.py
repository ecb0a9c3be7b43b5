"""Patients: registration (with duplicate MRNs refused), the patient list and page, and
opening a pathway from a referral."""

from __future__ import annotations

import html
import re
import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from tests.helpers import new_pathway, new_patient
from tracker.engine.models import Event, Pathway
from tracker.extensions import db
from tracker.patients.models import Patient

LONDON = ZoneInfo("Europe/London")


def local_input(at: datetime) -> str:
    return at.astimezone(LONDON).strftime("%Y-%m-%dT%H:%M")


def local_now_input(minutes_ago: int = 5) -> str:
    return local_input(datetime.now(UTC) - timedelta(minutes=minutes_ago))


def shown(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def field_error(response, name: str) -> str:
    match = re.search(rf'<div id="{re.escape(name)}-error"[^>]*>(.*?)</div>', shown(response), re.S)
    return match.group(1).strip() if match else ""


def input_value(response, name: str) -> str | None:
    """The value of the <input name=...> on the page."""
    tag = re.search(rf'<input[^>]*\bname="{re.escape(name)}"[^>]*>', shown(response))
    value = re.search(r'\bvalue="([^"]*)"', tag.group(0)) if tag else None
    return value.group(1) if value else None


def count(model) -> int:
    return db.session.scalar(select(func.count(model.id)))


def patient_post(**fields) -> dict:
    return {
        "mrn": "RX1234567",
        "family_name": "Okafor",
        "given_name": "Ada",
        "birth_date": "1958-11-30",
        "sex": "female",
        **fields,
    }


def referral_post(**fields) -> dict:
    return {
        "request_id": uuid.uuid4().hex,
        "referral_received_at": local_now_input(60),
        "referral_source": "emergency_department",
        "urgency": "urgent",
        "diagnosis_category": "metastatic_spinal",
        "tumour_site": "T10-T11",
        "primary_cancer_site": "prostate",
        "presenting_symptoms": ["back_pain", "weakness"],
        "lead_surgeon": "surgeon2",
        "coordinator": "coordinator",
        **fields,
    }


@pytest.fixture
def patient(users, session):
    patient = new_patient(users["coordinator"], mrn="RX0000001")
    session.commit()
    return patient


# -- registration --------------------------------------------------------------------------------


def test_register_form(client, login, users):
    login("coordinator")
    response = client.get("/patients/new")
    assert response.status_code == 200
    for name in ("mrn", "family_name", "given_name", "birth_date", "sex"):
        assert f'name="{name}"' in shown(response), name


def test_register_a_patient(client, login, users):
    login("surgeon")
    before = count(Patient)
    response = client.post("/patients/new", data=patient_post(mrn="  RX1234567 "))
    assert response.status_code == 302
    patient = db.session.scalar(select(Patient).where(Patient.mrn == "RX1234567"))
    assert count(Patient) == before + 1
    assert response.headers["Location"] == f"/patients/{patient.id}"
    assert (patient.family_name, patient.birth_date, patient.sex) == (
        "Okafor",
        date(1958, 11, 30),
        "female",
    )
    assert patient.created_by_id == users["surgeon"].id
    page = shown(client.get(response.headers["Location"]))
    assert "Registered OKAFOR, Ada (RX1234567)." in page
    assert "30 Nov 1958" in page and "Female" in page and "No pathway yet." in page


def test_register_refuses_invalid_data_beside_the_fields(client, login, users):
    login("coordinator")
    before = count(Patient)
    response = client.post(
        "/patients/new", data=patient_post(family_name="", birth_date="30/02/1958", sex="x")
    )
    assert response.status_code == 422
    assert field_error(response, "family_name") == "Family name is required."
    assert field_error(response, "birth_date") == "Not a valid date value."
    assert "Not a valid choice" in field_error(response, "sex")
    assert 'value="RX1234567"' in shown(response)  # what was typed is kept
    tomorrow = (date.today() + timedelta(days=1)).isoformat()
    response = client.post("/patients/new", data=patient_post(birth_date=tomorrow))
    assert response.status_code == 422
    assert field_error(response, "birth_date") == "Date of birth cannot be in the future"
    response = client.post("/patients/new", data=patient_post(birth_date="1850-01-01"))
    assert response.status_code == 422
    assert "1900 or later" in field_error(response, "birth_date")
    response = client.post("/patients/new", data=patient_post(mrn="X" * 33))
    assert response.status_code == 422
    assert field_error(response, "mrn")
    assert count(Patient) == before


def test_duplicate_mrn_is_refused_with_a_link_to_the_patient(client, login, patient):
    login("coordinator")
    before = count(Patient)
    response = client.post("/patients/new", data=patient_post(mrn=" RX0000001"))
    assert response.status_code == 422
    assert "A patient with MRN RX0000001 is already registered (Doe, Jane)" in field_error(
        response, "mrn"
    )
    assert f'<a href="/patients/{patient.id}">DOE, Jane (RX0000001)</a>' in shown(response)
    assert count(Patient) == before


def test_duplicate_mrn_in_other_letter_case_is_refused(client, login, patient):
    login("coordinator")
    before = count(Patient)
    response = client.post("/patients/new", data=patient_post(mrn="rx0000001"))
    assert response.status_code == 422
    assert f'href="/patients/{patient.id}"' in shown(response)
    assert count(Patient) == before


def test_registering_twice_records_one_patient(client, login, users):
    login("coordinator")
    before = count(Patient)
    assert client.post("/patients/new", data=patient_post()).status_code == 302
    second = client.post("/patients/new", data=patient_post())
    assert second.status_code == 422
    assert "already registered" in shown(second)
    assert count(Patient) == before + 1


@pytest.mark.parametrize("username", ["viewer", "admin"])
def test_only_clinicians_register(client, login, users, username):
    login(username)
    assert client.get("/patients/new").status_code == 403
    assert client.post("/patients/new", data=patient_post()).status_code == 403
    assert count(Patient) == 0
    assert "Register patient" not in shown(client.get("/patients/"))


# -- the patient list and page ----------------------------------------------------------------


def test_patient_list_finds_by_mrn_or_name(client, login, users, session):
    actor = users["coordinator"]
    new_patient(actor, mrn="AB100")
    from tracker.patients.services import register_patient

    register_patient(
        actor,
        mrn="ZZ900",
        family_name="Whitfield",
        given_name="Tom",
        birth_date=date(1970, 1, 2),
        sex="male",
    )
    session.commit()
    login("viewer")
    everyone = shown(client.get("/patients/"))
    assert "AB100" in everyone and "ZZ900" in everyone
    by_mrn = shown(client.get("/patients/?q=ab100"))
    assert "AB100" in by_mrn and "ZZ900" not in by_mrn
    assert "ZZ900" in shown(client.get("/patients/?q=ZZ9"))  # an MRN prefix
    assert "ZZ900" not in shown(client.get("/patients/?q=Z900"))  # not a part inside it
    by_name = shown(client.get("/patients/?q=whitF"))
    assert "WHITFIELD, Tom" in by_name and "AB100" not in by_name
    assert "ZZ900" in shown(client.get("/patients/?q=tom"))
    assert "No patient found for “nobody”" in shown(client.get("/patients/?q=nobody"))


def test_patient_page_lists_pathways(client, login, users, session):
    pathway = new_pathway(users["coordinator"], urgency="emergency")
    session.commit()
    login("viewer")
    response = client.get(f"/patients/{pathway.patient.id}")
    assert response.status_code == 200
    page = shown(response)
    assert f'href="/pathways/{pathway.id}"' in page
    assert "Emergency" in page and "Referred" in page and "T8" in page
    assert "Open a pathway from a referral" not in page  # viewers read only


def test_unknown_patient_is_404(client, login, users, session):
    session.commit()
    login("coordinator")
    assert client.get("/patients/987654").status_code == 404
    assert client.get("/patients/987654/pathways/new").status_code == 404
    assert client.post("/patients/987654/pathways/new", data=referral_post()).status_code == 404


# -- opening a pathway --------------------------------------------------------------------------


def test_open_pathway_form_starts_now_and_names_the_coordinator(client, login, patient):
    login("coordinator")
    response = client.get(f"/patients/{patient.id}/pathways/new")
    assert response.status_code == 200
    page = shown(response)
    assert re.fullmatch(r"[0-9a-f]{32}", input_value(response, "request_id"))
    default = datetime.strptime(input_value(response, "referral_received_at"), "%Y-%m-%dT%H:%M")
    local_now = datetime.now(LONDON).replace(tzinfo=None)
    assert timedelta(0) <= local_now - default < timedelta(minutes=5)  # now, in local time
    assert '<option selected value="coordinator">' in page
    start = page.index('name="lead_surgeon"')
    lead = page[start : page.index("</select>", start)]
    assert 'value="surgeon"' in lead and 'value="surgeon2"' in lead
    assert 'value="coordinator"' not in lead and 'value="viewer"' not in lead


def test_open_a_pathway_from_a_referral(client, login, patient, users):
    login("coordinator")
    when = local_now_input(90)
    response = client.post(
        f"/patients/{patient.id}/pathways/new", data=referral_post(referral_received_at=when)
    )
    assert response.status_code == 302
    pathway = db.session.scalar(select(Pathway).where(Pathway.patient_id == patient.id))
    assert response.headers["Location"] == f"/pathways/{pathway.id}"
    assert pathway.state == "referred" and pathway.urgency == "urgent"
    assert local_input(pathway.referral_received_at) == when
    assert pathway.lead_surgeon == users["surgeon2"] and pathway.coordinator == users["coordinator"]
    assert pathway.presenting_symptoms == ["back_pain", "weakness"]
    (event,) = db.session.scalars(select(Event).where(Event.pathway_id == pathway.id)).all()
    assert event.trigger == "open_pathway"
    page = shown(client.get(response.headers["Location"]))
    assert "Pathway opened: the referral clock has started." in page
    assert "Referral received" in page and "Emergency department" in page
    assert "Back pain, Weakness" in page and "MRI within a week" in page  # the urgent clock


def test_open_pathway_refuses_invalid_data_beside_the_fields(client, login, patient):
    login("coordinator")
    before = (count(Pathway), count(Event))
    response = client.post(
        f"/patients/{patient.id}/pathways/new",
        data=referral_post(urgency="", tumour_site="", lead_surgeon="coordinator"),
    )
    assert response.status_code == 422
    assert field_error(response, "urgency") == "Urgency is required."
    assert field_error(response, "tumour_site") == "Tumour site is required."
    assert "Not a valid choice" in field_error(response, "lead_surgeon")
    future = local_input(datetime.now(UTC) + timedelta(days=2))
    response = client.post(
        f"/patients/{patient.id}/pathways/new", data=referral_post(referral_received_at=future)
    )
    assert response.status_code == 422
    assert "cannot be received in the future" in field_error(response, "referral_received_at")
    assert (count(Pathway), count(Event)) == before


def test_open_pathway_twice_with_the_same_request_opens_one(client, login, patient):
    login("coordinator")
    body = referral_post()
    first = client.post(f"/patients/{patient.id}/pathways/new", data=body)
    second = client.post(f"/patients/{patient.id}/pathways/new", data=body)
    assert first.status_code == 302 and second.status_code == 302
    assert second.headers["Location"] == first.headers["Location"]
    assert count(Pathway) == 1
    assert "already opened" in shown(client.get(second.headers["Location"]))


def test_open_pathway_refuses_an_overlong_request_id(client, login, patient):
    login("coordinator")
    response = client.post(
        f"/patients/{patient.id}/pathways/new", data=referral_post(request_id="r" * 100)
    )
    assert response.status_code == 422
    assert count(Pathway) == 0


@pytest.mark.parametrize("username", ["viewer", "admin"])
def test_only_clinicians_open_pathways(client, login, patient, username):
    login(username)
    assert client.get(f"/patients/{patient.id}/pathways/new").status_code == 403
    response = client.post(f"/patients/{patient.id}/pathways/new", data=referral_post())
    assert response.status_code == 403
    assert count(Pathway) == 0


# -- one MRN, however it is written (letter case beyond ASCII, accents, Unicode forms) ------


@pytest.fixture
def umlaut(users, session):
    patient = new_patient(users["coordinator"], mrn="ÄX1")
    session.commit()
    return patient


def test_an_mrn_written_another_way_is_refused_on_the_register_page(client, login, umlaut):
    login("coordinator")
    before = count(Patient)
    for mrn in ("äx1", "A\u0308X1", "\uff41\u0308x1"):  # small, combining, fullwidth
        response = client.post("/patients/new", data=patient_post(mrn=mrn))
        assert response.status_code == 422, mrn
        assert "A patient with MRN ÄX1 is already registered" in field_error(response, "mrn")
        assert f'href="/patients/{umlaut.id}"' in shown(response)
    assert count(Patient) == before


def test_an_mrn_written_another_way_is_refused_on_the_edit_page(client, login, umlaut, users):
    from tests.test_patient_details import edit_post

    other = new_patient(users["coordinator"], mrn="OTHER1")
    db.session.commit()
    login("coordinator")
    response = client.post(f"/patients/{other.id}/edit", data=edit_post(other, mrn="äx1"))
    assert response.status_code == 422
    assert "A patient with MRN ÄX1 is already registered" in field_error(response, "mrn")
    assert db.session.get(Patient, other.id).mrn == "OTHER1"


def test_an_unprintable_character_in_an_mrn_is_named_with_its_place(client, login, users):
    login("coordinator")
    response = client.post("/patients/new", data=patient_post(mrn="RX\u200b12"))
    assert response.status_code == 422
    message = field_error(response, "mrn")
    assert "position 3" in message and "U+200B ZERO WIDTH SPACE" in message, message


def test_the_searches_find_an_mrn_however_it_is_written(client, login, umlaut, session):
    login("viewer")
    for q in ("äx1", "ÄX1", "A\u0308x1"):
        assert "ÄX1" in shown(client.get("/patients/", query_string={"q": q})), q


def test_the_audit_log_filters_by_an_mrn_however_it_is_written(client, login, umlaut):
    login("admin")
    audit = client.get("/audit/", query_string={"mrn": "äx1"})
    assert audit.status_code == 200 and "No patient has the MRN" not in shown(audit)
