"""`flask tracker import`: historical pathways through the services, all or nothing."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from tracker.extensions import db
from tracker.pathway.models import Event, Pathway
from tracker.patients.models import Patient

T0 = datetime(2025, 9, 1, 9, 0, tzinfo=UTC)
HEADER = [
    "mrn",
    "pathway_ref",
    "trigger",
    "occurred_at",
    "family_name",
    "given_name",
    "birth_date",
    "sex",
    "referral_source",
    "urgency",
    "diagnosis_category",
    "tumour_site",
    "primary_cancer_site",
    "presenting_symptoms",
    "lead_surgeon",
    "modality",
    "region",
    "findings",
    "meeting_date",
    "disciplines",
    "rationale",
    "sins.location",
    "sins.pain",
    "sins.bone_lesion",
    "sins.alignment",
    "sins.collapse",
    "sins.posterolateral",
    "reason",
]


def at(hours: float) -> str:
    return (T0 + timedelta(hours=hours)).isoformat()


def write(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=HEADER)
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
    return str(path)


def good_rows(mrn="IMP001", ref="A"):
    return [
        {
            "mrn": mrn,
            "pathway_ref": ref,
            "trigger": "open_pathway",
            "occurred_at": at(0),
            "family_name": "Ward",
            "given_name": "Iris",
            "birth_date": "1955-03-02",
            "sex": "female",
            "referral_source": "gp",
            "urgency": "urgent",
            "diagnosis_category": "metastatic_spinal",
            "tumour_site": "L2",
            "primary_cancer_site": "kidney",
            "presenting_symptoms": "back_pain|weakness",
            "lead_surgeon": "surgeon",
        },
        {"mrn": mrn, "pathway_ref": ref, "trigger": "request_imaging", "occurred_at": at(2)},
        {
            "mrn": mrn,
            "pathway_ref": ref,
            "trigger": "record_imaging",
            "occurred_at": at(30),
            "modality": "mri",
            "region": "Lumbar spine",
            "findings": "L2 lytic lesion",
        },
        {"mrn": mrn, "pathway_ref": ref, "trigger": "refer_to_mdt", "occurred_at": at(31)},
        {
            "mrn": mrn,
            "pathway_ref": ref,
            "trigger": "plan_surgery",
            "occurred_at": at(80),
            "meeting_date": "2025-09-04",
            "disciplines": "spinal_surgery|radiology",
            "rationale": "Stabilise L2.",
            "sins.location": "2",
            "sins.pain": "3",
            "sins.bone_lesion": "2",
            "sins.alignment": "0",
            "sins.collapse": "2",
            "sins.posterolateral": "1",
        },
    ]


def count(model) -> int:
    return db.session.scalar(select(func.count(model.id)))


def test_a_good_file_imports_every_event(runner, users, tmp_path, session):
    path = write(tmp_path / "good.csv", good_rows() + good_rows("IMP002", "B"))
    result = runner.invoke(args=["tracker", "import", path, "--user", "coordinator"])
    assert result.exit_code == 0, result.output
    assert "Imported 10 events in 2 pathways" in result.output
    pathway = session.scalar(select(Pathway).join(Patient).where(Patient.mrn == "IMP001"))
    assert pathway.state == "surgery_scheduled" and pathway.version == 5
    events = session.scalars(
        select(Event).where(Event.pathway_id == pathway.id).order_by(Event.seq)
    ).all()
    assert [e.trigger for e in events] == [
        "open_pathway",
        "request_imaging",
        "record_imaging",
        "refer_to_mdt",
        "plan_surgery",
    ]
    assert events[-1].data["sins_total"] == 10 and events[-1].occurred_at == T0 + timedelta(
        hours=80
    )
    assert pathway.presenting_symptoms == ["back_pain", "weakness"]
    assert runner.invoke(args=["tracker", "verify"]).exit_code == 0


def test_any_bad_row_imports_nothing_and_each_is_named(runner, users, tmp_path, session):
    rows = good_rows() + good_rows("IMP002", "B")
    rows[2] = {**rows[2], "modality": "sonar"}  # row 4: not a modality
    rows[6] = {**rows[6], "trigger": "plan_surgery"}  # row 8: not allowed in imaging
    rows.append(
        {"mrn": "IMP003", "pathway_ref": "C", "trigger": "request_imaging", "occurred_at": at(1)}
    )  # row 12: no open_pathway
    rows.append(
        {
            "mrn": "IMP004",
            "pathway_ref": "D",
            "trigger": "open_pathway",
            "occurred_at": (datetime.now(UTC) + timedelta(days=2)).isoformat(),
            "family_name": "X",
            "given_name": "Y",
            "birth_date": "1950-01-01",
            "sex": "male",
            "referral_source": "gp",
            "urgency": "routine",
            "diagnosis_category": "primary_bone",
            "tumour_site": "Femur",
            "primary_cancer_site": "not_applicable",
        }
    )  # row 13: in the future
    before = (count(Patient), count(Pathway), count(Event))
    path = write(tmp_path / "bad.csv", rows)
    result = runner.invoke(args=["tracker", "import", path, "--user", "coordinator"])
    assert result.exit_code == 1
    output = result.output
    assert "Nothing was imported" in output
    assert "row 4: Please correct: modality: Modality must be one of" in output
    assert "row 5: an earlier row of pathway 'A' was refused" in output
    assert "row 8: 'MDT decision: surgery' cannot be recorded while the pathway is in" in output
    assert "row 12: pathway 'C' has no open_pathway row before this one" in output
    assert "row 13: Please correct: referral_received_at" in output
    session.expire_all()
    assert (count(Patient), count(Pathway), count(Event)) == before


def test_unknown_columns_and_users_are_refused(runner, users, tmp_path):
    path = tmp_path / "odd.csv"
    path.write_text("mrn,pathway_ref,trigger,occurred_at,colour\n", encoding="utf-8")
    result = runner.invoke(args=["tracker", "import", str(path), "--user", "coordinator"])
    assert result.exit_code == 1 and "unknown columns: colour" in result.output
    result = runner.invoke(args=["tracker", "import", str(path), "--user", "nobody"])
    assert result.exit_code == 1 and "No active user is called 'nobody'" in result.output
