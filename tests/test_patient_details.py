"""Patient details: the NHS number (Modulus 11, unique) and GP practice at registration, on
the patient page, in search, FHIR, the API and the worklist CSV; correcting a patient's
details on the edit page and with PATCH /api/v1/patients/{id}, audited with old and new
values."""

from __future__ import annotations

import csv
import html
import io
import json
import re
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from tests.helpers import new_pathway
from tracker.api.services import create_token
from tracker.audit.models import AuditEntry
from tracker.engine.errors import InvalidData, RoleNotAllowed
from tracker.extensions import db
from tracker.patients.errors import DuplicateMRN, DuplicateNHSNumber
from tracker.patients.fields import (
    NHS_NUMBER,
    NHS_NUMBER_PATTERN,
    PATIENT_FIELDS,
    nhs_check_digit,
)
from tracker.patients.models import Patient
from tracker.patients.services import register_patient, update_patient

VALID = "9434765919"  # the NHS's own example: 943 476 5919
OTHER_VALID = "9990000018"  # the test range (999...)
THIRD_VALID = "4010232137"
CHECK_ELEVEN = "1000000060"  # 11 - (22 % 11) = 11: the check digit is 0


def shown(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def field_error(response, name: str) -> str:
    match = re.search(rf'<div id="{re.escape(name)}-error"[^>]*>(.*?)</div>', shown(response), re.S)
    return match.group(1).strip() if match else ""


def input_value(response, name: str) -> str | None:
    tag = re.search(rf'<input[^>]*\bname="{re.escape(name)}"[^>]*>', shown(response))
    value = re.search(r'\bvalue="([^"]*)"', tag.group(0)) if tag else None
    return value.group(1) if value else None


def audit(action: str, patient_id: int) -> list[AuditEntry]:
    query = select(AuditEntry).where(
        AuditEntry.action == action, AuditEntry.patient_id == patient_id
    )
    return list(db.session.scalars(query.order_by(AuditEntry.id)))


def patient_post(**fields) -> dict:
    return {
        "mrn": "RX1234567",
        "family_name": "Okafor",
        "given_name": "Ada",
        "birth_date": "1958-11-30",
        "sex": "female",
        **fields,
    }


def edit_post(patient: Patient, **fields) -> dict:
    """The edit form as it is shown for ``patient``, with ``fields`` typed over it."""
    return {
        "mrn": patient.mrn,
        "nhs_number": patient.nhs_number or "",
        "family_name": patient.family_name,
        "given_name": patient.given_name,
        "birth_date": patient.birth_date.isoformat(),
        "sex": patient.sex,
        "gp_practice": patient.gp_practice or "",
        **fields,
    }


@pytest.fixture
def patient(users, session):
    patient = register_patient(
        users["coordinator"],
        mrn="RX0000001",
        family_name="Doe",
        given_name="Jane",
        birth_date=date(1960, 5, 1),
        sex="female",
        nhs_number=VALID,
        gp_practice="Castle Street Surgery",
    )
    session.commit()
    return patient


@pytest.fixture
def other(users, session):
    other = register_patient(
        users["coordinator"],
        mrn="RX0000002",
        family_name="Roe",
        given_name="Richard",
        birth_date=date(1950, 1, 2),
        sex="male",
        nhs_number=OTHER_VALID,
    )
    session.commit()
    return other


@pytest.fixture
def auth(users, session):
    headers = {}
    for name in ("coordinator", "surgeon", "viewer", "admin"):
        _, plain = create_token(users[name], "test")
        headers[name] = {"Authorization": f"Bearer {plain}"}
    session.commit()
    return headers


def fresh(patient: Patient) -> Patient:
    db.session.expire_all()
    return db.session.get(Patient, patient.id)


# -- the NHS number's kind: Modulus 11 (no database) ---------------------------------------


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        (VALID, VALID),
        ("943 476 5919", VALID),
        ("  943 476 5919 ", VALID),
        ("9 4 3 4 7 6 5 9 1 9", VALID),
        (OTHER_VALID, OTHER_VALID),
        (THIRD_VALID, THIRD_VALID),
        (CHECK_ELEVEN, CHECK_ELEVEN),
    ],
)
def test_a_valid_nhs_number_is_stored_as_its_ten_digits(typed, stored):
    assert NHS_NUMBER.check(typed) == stored
    assert re.fullmatch(NHS_NUMBER_PATTERN, typed)  # the JSON schema says the same


@pytest.mark.parametrize(
    ("typed", "words"),
    [
        ("9434765918", "check digit"),  # one digit off
        ("9434765910", "check digit"),
        ("4934765919", "check digit"),  # two digits swapped
        ("1000000010", "check digit"),  # the remainder gives 10: no check digit can fit
        ("1000000019", "check digit"),
        ("94347659190", "10 digits"),  # 11 digits
        ("943476591", "10 digits"),  # 9 digits
        ("943-476-5919", "10 digits"),
        ("943476591X", "10 digits"),
        ("ABCDEFGHIJ", "10 digits"),
        ("٩٤٣٤٧٦٥٩١٩", "10 digits"),  # Arabic-Indic digits are digits, but not ASCII
        ("9434765919\t", "10 digits"),
        ("   ", "10 digits"),
        ("9" + " " * 20 + "434765919", "too long"),
        (9434765919, "must be text"),
    ],
)
def test_an_invalid_nhs_number_is_refused_with_words(typed, words):
    with pytest.raises(ValueError, match=words):
        NHS_NUMBER.check(typed)
    if words == "10 digits":  # the JSON schema refuses the same; a check digit it cannot
        assert not re.fullmatch(NHS_NUMBER_PATTERN, typed)


def test_the_modulus_11_check_digit():
    # 9*10 + 4*9 + 3*8 + 4*7 + 7*6 + 6*5 + 5*4 + 9*3 + 1*2 = 299; 299 % 11 = 2; 11 - 2 = 9
    assert nhs_check_digit("943476591") == 9
    assert nhs_check_digit("100000006") == 0  # 11 -> 0
    assert nhs_check_digit("100000001") is None  # 10 -> invalid
    assert NHS_NUMBER.describe(VALID) == "943 476 5919"


def test_the_patient_fields_are_the_data_dictionarys():
    assert [f.name for f in PATIENT_FIELDS] == [
        "mrn",
        "nhs_number",
        "family_name",
        "given_name",
        "birth_date",
        "sex",
        "gp_practice",
    ]
    optional = {f.name for f in PATIENT_FIELDS if not f.required}
    assert optional == {"nhs_number", "gp_practice"}
    assert NHS_NUMBER.json_schema()["pattern"] == NHS_NUMBER_PATTERN


# -- registration --------------------------------------------------------------------------


def test_register_with_nhs_number_and_gp_practice(client, login, users):
    login("coordinator")
    form = client.get("/patients/new")
    assert 'name="nhs_number"' in shown(form) and 'name="gp_practice"' in shown(form)
    response = client.post(
        "/patients/new",
        data=patient_post(nhs_number=" 943 476 5919", gp_practice="  Castle Street Surgery "),
    )
    assert response.status_code == 302, field_error(response, "nhs_number")
    patient = db.session.scalar(select(Patient).where(Patient.mrn == "RX1234567"))
    assert (patient.nhs_number, patient.gp_practice) == (VALID, "Castle Street Surgery")
    page = shown(client.get(response.headers["Location"]))
    assert "943 476 5919" in page and "Castle Street Surgery" in page


def test_register_without_the_optional_details(client, login, users):
    login("surgeon")
    response = client.post("/patients/new", data=patient_post(nhs_number="", gp_practice=""))
    assert response.status_code == 302
    patient = db.session.scalar(select(Patient).where(Patient.mrn == "RX1234567"))
    assert patient.nhs_number is None and patient.gp_practice is None


def test_register_refuses_an_invalid_nhs_number_beside_the_field(client, login, users):
    login("coordinator")
    response = client.post("/patients/new", data=patient_post(nhs_number="943 476 5918"))
    assert response.status_code == 422
    assert field_error(response, "nhs_number") == (
        "NHS number is not valid: its last digit is not the check digit of the first nine; "
        "check it was typed correctly"
    )
    response = client.post("/patients/new", data=patient_post(gp_practice="x" * 201))
    assert response.status_code == 422
    assert field_error(response, "gp_practice")
    response = client.post("/patients/new", data=patient_post(nhs_number="94347659190"))
    assert response.status_code == 422
    assert "10 digits" in field_error(response, "nhs_number")
    assert db.session.scalar(select(func.count(Patient.id))) == 0


def test_register_refuses_a_duplicate_nhs_number_naming_the_patient(client, login, patient):
    login("coordinator")
    response = client.post("/patients/new", data=patient_post(nhs_number="943 476 5919"))
    assert response.status_code == 422
    assert field_error(response, "nhs_number") == (
        "A patient with NHS number 943 476 5919 is already registered (Doe, Jane, MRN RX0000001)."
    )
    assert "This NHS number is already registered" in shown(response)
    assert f'<a href="/patients/{patient.id}">DOE, Jane (RX0000001)</a>' in shown(response)
    assert db.session.scalar(select(func.count(Patient.id))) == 1


def test_the_service_refuses_a_duplicate_nhs_number(users, patient):
    with pytest.raises(DuplicateNHSNumber) as refused:
        register_patient(
            users["coordinator"],
            mrn="RX10",
            family_name="A",
            given_name="B",
            birth_date=date(1970, 1, 1),
            sex="male",
            nhs_number="943 476 5919",
        )
    assert refused.value.patient.id == patient.id
    assert refused.value.field == "nhs_number"


def test_the_api_registers_and_refuses_a_duplicate_nhs_number(client, auth, patient):
    body = patient_post(nhs_number="999 000 0018", gp_practice="Riverside Practice")
    created = client.post("/api/v1/patients", json=body, headers=auth["coordinator"])
    assert created.status_code == 201, created.json
    assert created.json["nhs_number"] == OTHER_VALID
    assert created.json["gp_practice"] == "Riverside Practice"
    again = client.post(
        "/api/v1/patients",
        json={**body, "mrn": "RX7654321", "nhs_number": "9434765919"},
        headers=auth["coordinator"],
    )
    assert again.status_code == 409
    assert again.json["error"] == "duplicate_nhs_number"
    assert again.json["patient_id"] == patient.id
    assert "MRN RX0000001" in again.json["errors"]["nhs_number"][0]
    bad = client.post(
        "/api/v1/patients",
        json={**body, "mrn": "RX7654322", "nhs_number": "9434765918"},
        headers=auth["coordinator"],
    )
    assert bad.status_code == 422 and set(bad.json["errors"]) == {"nhs_number"}
    nulls = client.post(
        "/api/v1/patients",
        json={**patient_post(mrn="RX7654323"), "nhs_number": None, "gp_practice": None},
        headers=auth["coordinator"],
    )
    assert nulls.status_code == 201
    assert nulls.json["nhs_number"] is None and nulls.json["gp_practice"] is None


# -- search, FHIR, CSV ---------------------------------------------------------------------


def test_search_finds_an_nhs_number_or_its_start_with_or_without_spaces(
    client, login, patient, other
):
    login("viewer")
    for q in (VALID, "943 476 5919", " 943476 5919 ", "943 476", "9434"):
        page = shown(client.get("/patients/", query_string={"q": q}))
        assert "RX0000001" in page and "RX0000002" not in page, q
    page = shown(client.get("/patients/", query_string={"q": "476 5919"}))
    assert "RX0000001" not in page  # a part inside a number finds nothing
    page = shown(client.get("/patients/"))
    assert "943 476 5919" in page and "999 000 0018" in page


def test_fhir_patient_has_the_nhs_number_and_gp_practice(client, users, auth, session):
    pathway = new_pathway(users["coordinator"])
    update_patient(
        users["coordinator"],
        pathway.patient,
        {"nhs_number": VALID, "gp_practice": "Castle Street Surgery"},
    )
    bare = new_pathway(users["coordinator"])
    session.commit()
    response = client.get(f"/api/v1/pathways/{pathway.id}/fhir", headers=auth["viewer"])
    assert response.status_code == 200  # validated with fhir.resources before it is served
    (resource,) = [
        e["resource"] for e in response.json["entry"] if e["resource"]["resourceType"] == "Patient"
    ]
    assert resource["identifier"][0] == {
        "system": "https://fhir.nhs.uk/Id/nhs-number",
        "value": VALID,
    }
    assert resource["identifier"][1]["value"] == pathway.patient.mrn
    assert resource["generalPractitioner"] == [
        {"type": "Organization", "display": "Castle Street Surgery"}
    ]
    response = client.get(f"/api/v1/pathways/{bare.id}/fhir", headers=auth["viewer"])
    (resource,) = [
        e["resource"] for e in response.json["entry"] if e["resource"]["resourceType"] == "Patient"
    ]
    assert [i["system"] for i in resource["identifier"]] == ["urn:tracker:codesystem:mrn"]
    assert "generalPractitioner" not in resource


def test_worklist_csv_has_the_nhs_number_and_gp_practice(client, login, users, session):
    pathway = new_pathway(users["coordinator"])
    update_patient(
        users["coordinator"], pathway.patient, {"nhs_number": VALID, "gp_practice": "=Practice"}
    )
    new_pathway(users["coordinator"])
    session.commit()
    login("coordinator")
    response = client.get("/worklist.csv")
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    columns = rows[0].index("NHS number"), rows[0].index("GP practice")
    assert rows[0][columns[1]] == "GP practice"
    by_mrn = {row[0]: row for row in rows[1:]}
    assert [by_mrn[pathway.patient.mrn][i] for i in columns] == [VALID, "'=Practice"]  # no formula
    assert sorted([row[i] for i in columns] for row in rows[1:])[0] == ["", ""]
    assert rows[0][-5:] == [
        "Referral priority",
        "Referral priority (label)",
        "Steps not yet reviewed",
        "Tracking note",
        "Tracking note written",
    ]
    assert by_mrn[pathway.patient.mrn][-5:-3] == [
        "urgent_suspected_cancer",
        "Urgent suspected cancer",
    ]


# -- PATCH /api/v1/patients/{id} --------------------------------------------------------------

NEW_VALUES = {
    "mrn": "RX0000099",
    "nhs_number": "401 023 2137",
    "family_name": "Smith",
    "given_name": "Janet",
    "birth_date": "1961-06-02",
    "sex": "other",
    "gp_practice": "Riverside Practice",
}
STORED = {**NEW_VALUES, "nhs_number": THIRD_VALID}


@pytest.mark.parametrize("name", list(NEW_VALUES))
def test_patch_changes_one_field(client, auth, patient, name):
    url = f"/api/v1/patients/{patient.id}"
    response = client.patch(url, json={name: NEW_VALUES[name]}, headers=auth["surgeon"])
    assert response.status_code == 200, response.json
    assert response.json["changed"] == [name]
    assert response.json["patient"][name] == STORED[name]
    assert client.get(url, headers=auth["viewer"]).json[name] == STORED[name]
    (entry,) = audit("update_patient", patient.id)
    assert set(json.loads(entry.detail)["changes"]) == {name}


def test_patch_changes_every_field_at_once_and_audits_old_and_new(client, auth, patient, users):
    response = client.patch(
        f"/api/v1/patients/{patient.id}", json=NEW_VALUES, headers=auth["coordinator"]
    )
    assert response.status_code == 200, response.json
    assert sorted(response.json["changed"]) == sorted(NEW_VALUES)
    assert response.json["message"].startswith("Changed: MRN (hospital number), NHS number")
    body = {k: v for k, v in response.json["patient"].items() if k in STORED}
    assert body == STORED
    (entry,) = audit("update_patient", patient.id)
    assert entry.user_id == users["coordinator"].id and entry.method == "PATCH"
    assert json.loads(entry.detail)["changes"] == {
        "mrn": {"old": "RX0000001", "new": "RX0000099"},
        "nhs_number": {"old": VALID, "new": THIRD_VALID},
        "family_name": {"old": "Doe", "new": "Smith"},
        "given_name": {"old": "Jane", "new": "Janet"},
        "birth_date": {"old": "1960-05-01", "new": "1961-06-02"},
        "sex": {"old": "female", "new": "other"},
        "gp_practice": {"old": "Castle Street Surgery", "new": "Riverside Practice"},
    }


def test_patch_audits_the_changed_fields_only(client, auth, patient):
    sent = {"mrn": "RX0000001", "family_name": "Doe", "gp_practice": "New Surgery"}
    response = client.patch(f"/api/v1/patients/{patient.id}", json=sent, headers=auth["surgeon"])
    assert response.status_code == 200 and response.json["changed"] == ["gp_practice"]
    (entry,) = audit("update_patient", patient.id)
    assert json.loads(entry.detail) == {
        "changes": {"gp_practice": {"old": "Castle Street Surgery", "new": "New Surgery"}}
    }


def test_patch_with_nothing_changed_writes_nothing(client, auth, patient):
    before = db.session.scalar(select(func.count(AuditEntry.id)))
    same = {
        "nhs_number": "943 476 5919",
        "mrn": " RX0000001 ",
        "gp_practice": "Castle Street Surgery",
    }
    for body in ({}, same):
        response = client.patch(
            f"/api/v1/patients/{patient.id}", json=body, headers=auth["coordinator"]
        )
        assert response.status_code == 200, response.json
        assert response.json["changed"] == [] and response.json["message"] == "Nothing changed."
    assert audit("update_patient", patient.id) == []
    assert db.session.scalar(select(func.count(AuditEntry.id))) == before  # not even a view


def test_patch_clears_an_optional_field_with_null_or_blank(client, auth, patient):
    url = f"/api/v1/patients/{patient.id}"
    response = client.patch(url, json={"nhs_number": None}, headers=auth["coordinator"])
    assert response.status_code == 200 and response.json["patient"]["nhs_number"] is None
    response = client.patch(url, json={"gp_practice": ""}, headers=auth["coordinator"])
    assert response.status_code == 200 and response.json["patient"]["gp_practice"] is None
    assert (fresh(patient).nhs_number, fresh(patient).gp_practice) == (None, None)
    first, second = audit("update_patient", patient.id)
    assert json.loads(first.detail)["changes"] == {"nhs_number": {"old": VALID, "new": None}}
    assert json.loads(second.detail)["changes"]["gp_practice"]["new"] is None


def test_patch_reports_every_bad_field_at_once_and_changes_nothing(client, auth, patient):
    tomorrow = (date.today() + timedelta(days=1)).isoformat()
    response = client.patch(
        f"/api/v1/patients/{patient.id}",
        json={
            "mrn": "",
            "nhs_number": "943 476 5918",
            "family_name": "Valid",  # a good field among the bad ones
            "given_name": None,
            "birth_date": tomorrow,
            "sex": "robot",
            "gp_practice": "x" * 201,
            "deceased": True,
        },
        headers=auth["coordinator"],
    )
    assert response.status_code == 422
    assert response.json["error"] == "invalid_data"
    errors = response.json["errors"]
    assert set(errors) == {
        "mrn",
        "nhs_number",
        "given_name",
        "birth_date",
        "sex",
        "gp_practice",
        "deceased",
    }
    assert errors["mrn"] == ["MRN (hospital number) is required"]
    assert "check digit" in errors["nhs_number"][0]
    assert errors["birth_date"] == ["Date of birth cannot be in the future"]
    assert errors["deceased"] == ["is not a field of a patient"]
    assert fresh(patient).family_name == "Doe"
    assert audit("update_patient", patient.id) == []


@pytest.mark.parametrize("body", [[], "text", None])
def test_patch_needs_a_json_object(client, auth, patient, body):
    response = client.patch(f"/api/v1/patients/{patient.id}", json=body, headers=auth["surgeon"])
    assert response.status_code == 400 and response.json["error"] == "bad_request"


def test_patch_to_another_patients_mrn_in_other_case_is_409(client, auth, patient, other):
    response = client.patch(
        f"/api/v1/patients/{patient.id}",
        json={"mrn": "rx0000002", "gp_practice": "Changed too"},
        headers=auth["coordinator"],
    )
    assert response.status_code == 409
    assert response.json["error"] == "duplicate_mrn"
    assert response.json["patient_id"] == other.id
    assert response.json["errors"]["mrn"] == [
        "A patient with MRN RX0000002 is already registered (Roe, Richard)."
    ]
    assert (fresh(patient).mrn, fresh(patient).gp_practice) == (
        "RX0000001",
        "Castle Street Surgery",
    )
    assert audit("update_patient", patient.id) == []


def test_patch_own_mrn_in_other_case_is_a_change(client, auth, patient):
    response = client.patch(
        f"/api/v1/patients/{patient.id}", json={"mrn": "rx0000001"}, headers=auth["coordinator"]
    )
    assert response.status_code == 200 and response.json["changed"] == ["mrn"]
    assert fresh(patient).mrn == "rx0000001"


def test_patch_to_another_patients_nhs_number_is_409(client, auth, patient, other):
    response = client.patch(
        f"/api/v1/patients/{patient.id}",
        json={"nhs_number": "999 000 0018"},
        headers=auth["coordinator"],
    )
    assert response.status_code == 409
    assert response.json["error"] == "duplicate_nhs_number"
    assert response.json["patient_id"] == other.id
    assert "MRN RX0000002" in response.json["errors"]["nhs_number"][0]
    assert fresh(patient).nhs_number == VALID


def test_patch_unknown_patient_is_404(client, auth, session):
    for patient_id in (987654, 2**40):
        response = client.patch(
            f"/api/v1/patients/{patient_id}", json={"sex": "male"}, headers=auth["coordinator"]
        )
        assert response.status_code == 404 and response.json["error"] == "not_found"


@pytest.mark.parametrize("who", ["viewer", "admin"])
def test_patch_is_refused_to_who_may_not_register(client, auth, patient, who):
    response = client.patch(
        f"/api/v1/patients/{patient.id}", json={"sex": "male"}, headers=auth[who]
    )
    assert response.status_code == 403 and response.json["error"] == "forbidden"
    assert fresh(patient).sex == "female"


def test_the_service_refuses_roles_and_never_commits(users, patient, other, session):
    with pytest.raises(RoleNotAllowed):
        update_patient(users["viewer"], patient, {"sex": "male"})
    with pytest.raises(DuplicateMRN) as refused:
        update_patient(users["coordinator"], patient, {"mrn": " rx0000002"})
    assert refused.value.patient.id == other.id
    with pytest.raises(InvalidData) as refused:
        update_patient(users["coordinator"], patient, {"sex": "robot", "birth_date": "1850-01-01"})
    assert set(refused.value.errors) == {"sex", "birth_date"}
    changes = update_patient(users["coordinator"], patient, {"given_name": "Janet"})
    assert changes == {"given_name": ("Jane", "Janet")}
    session.rollback()  # the caller owns the transaction: nothing was committed
    assert fresh(patient).given_name == "Jane"


def test_openapi_documents_the_patch_and_the_new_fields(client):
    body = client.get("/api/openapi.json").json
    patch = body["paths"]["/api/v1/patients/{patient_id}"]["patch"]
    assert patch["operationId"] == "updatePatient"
    assert {"200", "404", "409", "422"} <= set(patch["responses"])
    schemas = body["components"]["schemas"]
    patched = schemas["PatientPatch"]
    assert patched["required"] == [] and patched["additionalProperties"] is False
    assert set(patched["properties"]) == {f.name for f in PATIENT_FIELDS}
    nhs = patched["properties"]["nhs_number"]["anyOf"][0]
    assert nhs["pattern"] == NHS_NUMBER_PATTERN
    assert "nhs_number" in schemas["PatientIn"]["properties"]
    assert "nhs_number" not in schemas["PatientIn"]["required"]
    assert {"nhs_number", "gp_practice"} <= set(schemas["Patient"]["properties"])


# -- the edit page -------------------------------------------------------------------------


def test_edit_page_shows_the_details_and_saves_a_change(client, login, patient, users):
    login("coordinator")
    page = client.get(f"/patients/{patient.id}")
    assert f'href="/patients/{patient.id}/edit"' in shown(page)
    form = client.get(f"/patients/{patient.id}/edit")
    assert form.status_code == 200
    assert input_value(form, "nhs_number") == "943 476 5919"
    assert input_value(form, "mrn") == "RX0000001"
    assert input_value(form, "gp_practice") == "Castle Street Surgery"
    assert input_value(form, "birth_date") == "1960-05-01"
    response = client.post(
        f"/patients/{patient.id}/edit",
        data=edit_post(patient, nhs_number="401 023 2137", gp_practice="", given_name="Janet"),
    )
    assert response.status_code == 302
    assert response.headers["Location"] == f"/patients/{patient.id}"
    stored = fresh(patient)
    assert (stored.nhs_number, stored.gp_practice, stored.given_name) == (
        THIRD_VALID,
        None,
        "Janet",
    )
    page = shown(client.get(response.headers["Location"]))
    assert "Changed: NHS number, Given name, GP practice." in page
    assert "401 023 2137" in page
    (entry,) = audit("update_patient", patient.id)
    assert entry.user_id == users["coordinator"].id
    assert json.loads(entry.detail)["changes"] == {
        "nhs_number": {"old": VALID, "new": THIRD_VALID},
        "given_name": {"old": "Jane", "new": "Janet"},
        "gp_practice": {"old": "Castle Street Surgery", "new": None},
    }


def test_edit_page_with_nothing_changed_says_so_and_writes_nothing(client, login, patient):
    login("surgeon")
    response = client.post(
        f"/patients/{patient.id}/edit", data=edit_post(patient, nhs_number="943 476 5919")
    )
    assert response.status_code == 302
    assert "Nothing changed." in shown(client.get(response.headers["Location"]))
    assert audit("update_patient", patient.id) == []


def test_edit_page_refuses_bad_fields_beside_them(client, login, patient):
    login("coordinator")
    tomorrow = (date.today() + timedelta(days=1)).isoformat()
    response = client.post(
        f"/patients/{patient.id}/edit",
        data=edit_post(patient, nhs_number="943 476 5918", birth_date=tomorrow, family_name=""),
    )
    assert response.status_code == 422
    assert field_error(response, "family_name") == "Family name is required."
    assert input_value(response, "nhs_number") == "943 476 5918"  # what was typed is kept
    response = client.post(
        f"/patients/{patient.id}/edit",
        data=edit_post(patient, nhs_number="943 476 5918", birth_date=tomorrow),
    )
    assert response.status_code == 422
    assert "check digit" in field_error(response, "nhs_number")
    assert field_error(response, "birth_date") == "Date of birth cannot be in the future"
    assert fresh(patient).nhs_number == VALID
    assert audit("update_patient", patient.id) == []


def test_edit_page_refuses_another_patients_mrn_or_nhs_number(client, login, patient, other):
    login("coordinator")
    response = client.post(f"/patients/{patient.id}/edit", data=edit_post(patient, mrn="rx0000002"))
    assert response.status_code == 422
    assert field_error(response, "mrn") == (
        "A patient with MRN RX0000002 is already registered (Roe, Richard)."
    )
    assert f'<a href="/patients/{other.id}">ROE, Richard (RX0000002)</a>' in shown(response)
    response = client.post(
        f"/patients/{patient.id}/edit", data=edit_post(patient, nhs_number=OTHER_VALID)
    )
    assert response.status_code == 422
    assert "MRN RX0000002" in field_error(response, "nhs_number")
    stored = fresh(patient)
    assert (stored.mrn, stored.nhs_number) == ("RX0000001", VALID)


@pytest.mark.parametrize("who", ["viewer", "admin"])
def test_edit_page_is_refused_to_who_may_not_register(client, login, patient, who):
    login(who)
    assert f"/patients/{patient.id}/edit" not in shown(client.get(f"/patients/{patient.id}"))
    assert client.get(f"/patients/{patient.id}/edit").status_code == 403
    response = client.post(f"/patients/{patient.id}/edit", data=edit_post(patient, sex="male"))
    assert response.status_code == 403
    assert fresh(patient).sex == "female"


def test_edit_page_of_an_unknown_patient_is_404(client, login, users, session):
    session.commit()
    login("coordinator")
    assert client.get("/patients/987654/edit").status_code == 404


def test_the_audit_page_shows_old_and_new_values(client, login, auth, patient):
    client.patch(
        f"/api/v1/patients/{patient.id}",
        json={"gp_practice": "Riverside Practice", "nhs_number": None},
        headers=auth["coordinator"],
    )
    login("admin")
    page = shown(client.get("/audit/", query_string={"action": "update_patient"}))
    assert "gp practice: Castle Street Surgery → Riverside Practice" in page
    assert "nhs number: 9434765919 → (blank)" in page


# -- the CSV import reads the new columns --------------------------------------------------


def test_import_reads_the_nhs_number_and_gp_practice(users, session):
    from tracker.pathway.importer import import_rows

    row = {
        "mrn": "IMP900",
        "pathway_ref": "A",
        "trigger": "open_pathway",
        "occurred_at": "2025-09-01T09:00:00+00:00",
        "family_name": "Ward",
        "given_name": "Iris",
        "birth_date": "1955-03-02",
        "sex": "female",
        "nhs_number": "943 476 5919",
        "gp_practice": "Castle Street Surgery",
        "referral_source": "gp",
        "urgency": "urgent",
        "diagnosis_category": "metastatic_spinal",
        "tumour_site": "L2",
        "primary_cancer_site": "kidney",
        "presenting_symptoms": "back_pain",
        "lead_surgeon": "surgeon",
    }
    result = import_rows([row], list(row), users["coordinator"])
    assert result.errors == []
    patient = db.session.scalar(select(Patient).where(Patient.mrn == "IMP900"))
    assert (patient.nhs_number, patient.gp_practice) == (VALID, "Castle Street Surgery")
    bad = {**row, "mrn": "IMP901", "pathway_ref": "B", "nhs_number": "943 476 5918"}
    result = import_rows([bad], list(bad), users["coordinator"])
    assert len(result.errors) == 1 and "check digit" in result.errors[0][1]
    twice = [
        {**row, "mrn": "IMP902", "pathway_ref": "C", "nhs_number": OTHER_VALID},
        {**row, "mrn": "IMP903", "pathway_ref": "D", "nhs_number": "999 000 0018"},
    ]
    result = import_rows(twice, list(row), users["coordinator"])  # one batch, not yet flushed
    assert [number for number, _ in result.errors] == [3]
    assert "already registered (Ward, Iris, MRN IMP902)" in result.errors[0][1]
