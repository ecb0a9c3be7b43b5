"""`flask tracker import`: historical pathways through the services, all or nothing."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from tracker.engine.models import Event, Pathway
from tracker.extensions import db
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


@pytest.fixture
def users(session):
    """The users, committed as in a real database: a refused import rolls back its own
    work only, then writes the audit entry of the attempt, which names its user."""
    from tests.helpers import make_users

    made = make_users()
    session.commit()
    return made


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


# -- the import records what the services record --------------------------------------

PATHWAY_COLUMNS = (
    "state",
    "version",
    "referral_received_at",
    "referral_source",
    "urgency",
    "diagnosis_category",
    "tumour_site",
    "primary_cancer_site",
    "presenting_symptoms",
    "lead_surgeon_id",
    "coordinator_id",
    "recurrence_count",
    "closed_at",
    "state_entered_at",
    "last_seq",
    "next_target",
    "next_target_due_at",
    "next_target_warn_at",
    "next_target_sort",
)
EVENT_COLUMNS = ("seq", "trigger", "from_state", "to_state", "occurred_at", "data")
OPENING = {
    "referral_source": "gp",
    "diagnosis_category": "metastatic_spinal",
    "tumour_site": "T8",
    "primary_cancer_site": "lung",
    "presenting_symptoms": ["back_pain", "weakness"],
    "lead_surgeon": "surgeon",
}


def journeys(now, wanted: set[str], most: int = 12) -> list[tuple[str, datetime, list[dict]]]:
    """Demo journeys (up to any correction, which the import refuses) covering ``wanted``."""
    import random

    from tracker.demo import simulate
    from tracker.engine import steps as d

    found, seen = [], set()
    for seed in range(500):
        rng = random.Random(seed)
        urgency = rng.choice(["routine", "urgent", "emergency"])
        referral = now - timedelta(days=rng.uniform(200, 900))
        steps = []
        for step in simulate(rng, referral, now, urgency, "T8").steps:
            if step["trigger"] in d.CORRECTION_TRIGGERS:
                break
            if not d.role_may("coordinator", step["trigger"]):
                continue  # a surgeon's sign-off: the import is a coordinator's
            steps.append(step)
        new = {s["trigger"] for s in steps} - seen
        if new:
            found.append((urgency, referral, steps))
            seen |= new
        if wanted <= seen or len(found) == most:
            break
    assert wanted <= seen, f"no demo journey reaches {wanted - seen}"
    return found


def csv_cells(data: dict) -> dict[str, str]:
    cells = {}
    for name, value in data.items():
        if isinstance(value, dict):
            cells |= {f"{name}.{part}": str(points) for part, points in value.items()}
        elif isinstance(value, list):
            cells[name] = "|".join(value)
        elif isinstance(value, bool):
            cells[name] = "yes" if value else "no"
        else:
            cells[name] = str(value)
    return cells


def row_of(pathway) -> dict:
    return {name: getattr(pathway, name) for name in PATHWAY_COLUMNS}


def events_of(pathway) -> list[dict]:
    events = db.session.scalars(
        select(Event).where(Event.pathway_id == pathway.id).order_by(Event.seq)
    )
    return [{name: getattr(e, name) for name in EVENT_COLUMNS} for e in events]


def test_the_import_records_what_the_services_record(users, session):
    """Every step of long demo journeys, imported and recorded through services.record:
    the same events and the same pathway rows (state, version, targets, recurrences)."""
    import uuid

    from tracker.engine import services
    from tracker.pathway.importer import import_rows
    from tracker.patients.services import register_patient

    actor = users["coordinator"]
    now = datetime.now(UTC)
    wanted = {"suspect_recurrence", "discharge", "record_surgery", "record_treatment"}
    rows = []
    for n, (urgency, referral, steps) in enumerate(journeys(now, wanted)):
        mrn, ref = f"EQ{n:03d}", f"J{n}"
        rows.append(
            {
                "mrn": mrn,
                "pathway_ref": ref,
                "trigger": "open_pathway",
                "occurred_at": referral.isoformat(),
                "family_name": "Equal",
                "given_name": "Test",
                "birth_date": "1950-06-01",
                "sex": "female",
                "urgency": urgency,
                **csv_cells(OPENING),
            }
        )
        rows += [
            {
                "mrn": mrn,
                "pathway_ref": ref,
                "trigger": s["trigger"],
                "occurred_at": s["occurred_at"].isoformat(),
                **csv_cells(s["data"]),
            }
            for s in steps
        ]
    header = sorted({name for row in rows for name in row})
    result = import_rows([dict.fromkeys(header, "") | row for row in rows], header, actor)
    assert result.errors == [] and result.pathways == len(journeys(now, wanted))

    for n, (urgency, referral, steps) in enumerate(journeys(now, wanted)):
        patient = register_patient(
            actor,
            mrn=f"SV{n:03d}",
            family_name="Equal",
            given_name="Test",
            birth_date="1950-06-01",
            sex="female",
        )
        direct = services.open_pathway(
            actor, patient, referral_received_at=referral, urgency=urgency, **OPENING
        )
        for s in steps:
            services.record(
                direct,
                s["trigger"],
                s["data"],
                s["occurred_at"],
                actor,
                direct.version,
                uuid.uuid4().hex,
            )
        imported = session.scalar(select(Pathway).join(Patient).where(Patient.mrn == f"EQ{n:03d}"))
        assert events_of(imported) == events_of(direct)
        assert row_of(imported) == row_of(direct)


# -- what the import keeps from one row to the next -----------------------------------


def test_a_registered_patient_is_found_whatever_the_case_of_the_mrn(runner, users, tmp_path):
    from tests.helpers import new_patient

    patient = new_patient(users["coordinator"], mrn="KNOWN01")
    rows = good_rows(mrn="known01")
    for name in ("family_name", "given_name", "birth_date", "sex"):
        rows[0][name] = ""  # not needed: the patient is registered
    result = runner.invoke(
        args=["tracker", "import", write(tmp_path / "k.csv", rows), "--user", "coordinator"]
    )
    assert result.exit_code == 0, result.output
    assert [p.state for p in patient.pathways] == ["surgery_scheduled"]


def test_a_registered_patient_is_found_however_the_mrn_is_written(runner, users, tmp_path):
    """Letter case beyond ASCII and Unicode forms, as every lookup matches them."""
    from tests.helpers import new_patient

    patient = new_patient(users["coordinator"], mrn="ÄX01")
    rows = good_rows(mrn="A\u0308x01") + good_rows(mrn="äx01", ref="B")
    for row in (rows[0], rows[len(rows) // 2]):
        for name in ("family_name", "given_name", "birth_date", "sex"):
            row[name] = ""  # not needed: the patient is registered
    result = runner.invoke(
        args=["tracker", "import", write(tmp_path / "u.csv", rows), "--user", "coordinator"]
    )
    assert result.exit_code == 0, result.output
    assert [p.state for p in patient.pathways] == ["surgery_scheduled"] * 2
    assert count(Patient) == 1


def test_a_patient_of_two_pathways_in_the_file_is_registered_once(runner, users, tmp_path):
    first, second = good_rows("IMP010", "A"), good_rows("imp010", "B")
    interleaved = [row for pair in zip(first, second, strict=True) for row in pair]
    path = write(tmp_path / "two.csv", interleaved)
    result = runner.invoke(args=["tracker", "import", path, "--user", "coordinator"])
    assert result.exit_code == 0, result.output
    patients = db.session.scalars(select(Patient).where(Patient.mrn.ilike("imp010"))).all()
    assert len(patients) == 1
    assert [(p.state, p.version) for p in patients[0].pathways] == [("surgery_scheduled", 5)] * 2


def test_a_row_belongs_to_its_pathway_s_patient(runner, users, tmp_path):
    rows = good_rows() + good_rows("IMP002", "B")
    rows[6] = {**rows[6], "mrn": "IMP001"}  # row 8: a step of B given A's patient
    path = write(tmp_path / "mixed.csv", rows)
    result = runner.invoke(args=["tracker", "import", path, "--user", "coordinator"])
    assert result.exit_code == 1
    assert "row 8: pathway 'B' belongs to MRN IMP002" in result.output
    assert "row 9: an earlier row of pathway 'B' was refused" in result.output
    assert "row 4" not in result.output


def test_a_correction_is_refused_as_services_record_refuses_it(users, session):
    from tracker.pathway.importer import import_rows

    rows = good_rows()
    rows.append(
        {"mrn": "IMP001", "pathway_ref": "A", "trigger": "amend_event", "occurred_at": at(81)}
    )
    result = import_rows(
        [dict.fromkeys(HEADER, "") | row for row in rows], HEADER, users["coordinator"]
    )
    assert [number for number, _ in result.errors] == [7]
    assert "'amend_event' is not a step of the pathway" in result.errors[0][1]


def test_a_bad_time_is_named_before_an_earlier_refusal(runner, users, tmp_path):
    rows = good_rows()
    rows[1] = {**rows[1], "occurred_at": at(-5)}  # row 3: before the referral
    rows[3] = {**rows[3], "occurred_at": "yesterday"}  # row 5
    result = runner.invoke(
        args=["tracker", "import", write(tmp_path / "t.csv", rows), "--user", "coordinator"]
    )
    assert result.exit_code == 1
    assert "row 3: Please correct: occurred_at: When it happened cannot be before" in (
        result.output
    )
    assert "row 4: an earlier row of pathway 'A' was refused" in result.output
    assert "row 5: occurred_at is not a date and time" in result.output


def test_the_progress_bar_counts_every_row_once(users, session):
    from tracker.pathway.importer import import_rows

    rows = [row for n in range(50) for row in good_rows(f"P{n:03d}", f"R{n}")]  # 250 rows
    steps: list[int] = []
    result = import_rows(
        [dict.fromkeys(HEADER, "") | row for row in rows],
        HEADER,
        users["coordinator"],
        progress=steps.append,
    )
    assert result.errors == [] and result.pathways == 50
    assert sum(steps) == 250 and len(steps) < 250


# -- a file that is not what the import reads: reasons, nothing written, an entry ------


def refused(runner, path, session) -> str:
    """Import ``path``; assert it was refused with reasons (no traceback) and nothing
    written; give what it printed."""
    before = (count(Patient), count(Pathway), count(Event))
    result = runner.invoke(args=["tracker", "import", str(path), "--user", "coordinator"])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # not a traceback
    assert "Nothing was imported" in result.output
    session.expire_all()
    assert (count(Patient), count(Pathway), count(Event)) == before
    return result.output


def last_import_entry(session):
    from tracker.audit.models import AuditEntry

    return session.scalars(
        select(AuditEntry).where(AuditEntry.action == "import").order_by(AuditEntry.id.desc())
    ).first()


def test_a_file_not_in_utf8_is_refused_with_the_byte_and_its_row(runner, users, tmp_path, session):
    rows = good_rows()
    rows[1] = {**rows[1], "occurred_at": at(2)}
    rows[0] = {**rows[0], "family_name": "Ward \u2013 Smith"}  # an en dash: 0x96 in cp1252
    path = tmp_path / "cp1252.csv"
    with open(path, "w", newline="", encoding="cp1252") as handle:
        writer = csv.DictWriter(handle, fieldnames=HEADER)
        writer.writeheader()
        writer.writerows(rows)
    output = refused(runner, path, session)
    assert "row 2: the file is not UTF-8 (byte 0x96 at row 2): save it as CSV UTF-8" in output

    path = tmp_path / "utf16.csv"
    with open(path, "w", newline="", encoding="utf-16") as handle:
        writer = csv.DictWriter(handle, fieldnames=HEADER)
        writer.writeheader()
        writer.writerows(good_rows())
    output = refused(runner, path, session)
    assert "row 1: the file is not UTF-8 (byte 0xff at row 1): save it as CSV UTF-8" in output


def test_random_bytes_are_refused_with_a_reason(runner, users, tmp_path, session):
    import random

    for seed in range(3):
        path = tmp_path / f"noise{seed}.csv"
        path.write_bytes(random.Random(seed).randbytes(20_000))
        output = refused(runner, path, session)
        assert "row 1: " in output and "save it as CSV UTF-8" in output


def test_utf8_with_or_without_a_byte_order_mark_imports(runner, users, tmp_path, session):
    for n, encoding in enumerate(("utf-8", "utf-8-sig")):
        rows = good_rows(f"BOM{n}", f"R{n}")
        rows[0] = {**rows[0], "family_name": "\u0141ukasz\u2013\u00d6d\u00f6n"}
        path = tmp_path / f"{encoding}.csv"
        with open(path, "w", newline="", encoding=encoding) as handle:
            writer = csv.DictWriter(handle, fieldnames=HEADER)
            writer.writeheader()
            writer.writerows(rows)
        result = runner.invoke(args=["tracker", "import", str(path), "--user", "coordinator"])
        assert result.exit_code == 0, result.output
        patient = session.scalar(select(Patient).where(Patient.mrn == f"BOM{n}"))
        assert patient.family_name == "\u0141ukasz\u2013\u00d6d\u00f6n"


def test_a_cell_longer_than_the_limit_is_refused_naming_the_limit(runner, users, tmp_path, session):
    CELL_LIMIT = 10_000  # as docs/api.md says

    rows = good_rows()
    rows[2] = {**rows[2], "findings": "x" * (CELL_LIMIT + 1)}  # row 4
    output = refused(runner, write(tmp_path / "long.csv", rows), session)
    assert (
        f"row 4: the cell in column 'findings' has {CELL_LIMIT + 1:,} characters; a cell may "
        f"have at most {CELL_LIMIT:,}: shorten it"
    ) in output

    rows[2] = {**rows[2], "findings": "x" * 200_000}  # beyond what the CSV reader reads
    output = refused(runner, write(tmp_path / "longer.csv", rows), session)
    assert "row 4: a cell is longer than" in output
    assert f"(a cell may have at most {CELL_LIMIT:,})" in output


def test_a_row_with_more_or_fewer_cells_than_columns_is_refused(runner, users, tmp_path, session):
    path = write(tmp_path / "cells.csv", good_rows())
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    lines[2] += ",surplus,data,here"  # row 3: three cells more
    lines[4] = lines[4].rsplit(",", 2)[0]  # row 5: two cells fewer
    bad = tmp_path / "cells-bad.csv"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    output = refused(runner, bad, session)
    columns = len(HEADER)
    assert (
        f"row 3: 3 cells more than the header's {columns} columns: remove them or add "
        "columns to the header"
    ) in output
    assert f"row 5: 2 cells fewer than the header's {columns} columns: add the missing cells" in (
        output
    )


def test_an_exact_duplicate_row_is_refused_with_both_rows(runner, users, tmp_path, session):
    rows = good_rows()
    rows.insert(3, dict(rows[2]))  # row 5 repeats row 4 (a second imaging report is allowed)
    output = refused(runner, write(tmp_path / "twice.csv", rows), session)
    assert "row 5: the same as row 4, cell for cell: remove one of them" in output


def test_a_refused_import_is_audited_with_who_the_file_the_rows_and_the_reasons(
    runner, users, tmp_path, session
):
    import json

    rows = good_rows()
    rows[2] = {**rows[2], "modality": "sonar"}  # row 4
    refused(runner, write(tmp_path / "audited.csv", rows), session)
    entry = last_import_entry(session)
    assert entry is not None, "no entry for the refused attempt"
    detail = json.loads(entry.detail)
    assert (entry.username, entry.outcome) == ("coordinator", "failure")
    assert detail["file"] == "audited.csv" and detail["rows"] == 5 and detail["refused"] == 3
    assert detail["reasons"][0].startswith("row 4: Please correct: modality")
    assert detail["reasons"][1] == "row 5: an earlier row of pathway 'A' was refused"

    # A file that cannot be read is audited too.
    path = tmp_path / "latin.csv"
    path.write_bytes(
        "mrn,pathway_ref,trigger,occurred_at\nX,A,open_pathway,\xe9\n".encode("latin-1")
    )
    refused(runner, path, session)
    entry = last_import_entry(session)
    assert (entry.username, entry.outcome) == ("coordinator", "failure")
    assert json.loads(entry.detail)["reasons"] == [
        "row 2: the file is not UTF-8 (byte 0xe9 at row 2): save it as CSV UTF-8 "
        "(the rest of the file was not read)"
    ]

    # A good import keeps its entry as before.
    result = runner.invoke(
        args=["tracker", "import", write(tmp_path / "ok.csv", good_rows()), "--user", "coordinator"]
    )
    assert result.exit_code == 0, result.output
    entry = last_import_entry(session)
    assert entry.outcome == "ok"
    assert json.loads(entry.detail) == {
        "events": 5,
        "file": "ok.csv",
        "pathways": 1,
        "patients": 1,
    }


def test_the_reasons_listed_are_capped(runner, users, tmp_path, session):
    REASONS_KEPT = 50  # as docs/api.md says

    rows = [
        {"mrn": f"N{n}", "pathway_ref": f"N{n}", "trigger": "request_imaging", "occurred_at": at(1)}
        for n in range(REASONS_KEPT + 120)
    ]
    output = refused(runner, write(tmp_path / "many.csv", rows), session)
    assert f"Nothing was imported: {REASONS_KEPT + 120} problems were found" in output
    assert f"row {REASONS_KEPT + 1}: pathway" in output
    assert f"row {REASONS_KEPT + 2}: pathway" not in output
    assert "  and 120 more" in output
    assert output.count("has no open_pathway row") == REASONS_KEPT


def test_memory_does_not_grow_with_the_file(users, session, tmp_path, monkeypatch):
    """The peak memory of a refused import of ten times the rows is well under twice that
    of the smaller file: the file is streamed and what a pathway needs is let go after its
    last row. The last row is refused, so every row is recorded before the refusal.

    What is measured is what the import holds: the garbage collector runs with each
    step of the progress bar, so objects let go but not yet collected do not count."""
    import gc
    import tracemalloc
    from contextlib import contextmanager

    from tracker.pathway import importer

    monkeypatch.setattr(importer, "FLUSH_EVERY", 50)  # many batches in a small file

    @contextmanager
    def collecting(length):
        yield type("Bar", (), {"update": staticmethod(lambda steps: gc.collect())})

    def peak(pathways: int) -> int:
        rows = [row for n in range(pathways) for row in good_rows(f"M{n:05d}", f"M{n}")]
        rows.append({**rows[2], "modality": "sonar"})  # refused, after every other row
        path = write(tmp_path / f"m{pathways}.csv", rows)
        tracemalloc.start()
        try:
            result = importer.import_file(path, users["coordinator"], collecting)
            _, top = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
            session.rollback()
        assert len(result.errors) == 1 and result.rows == pathways * 5 + 1
        return top

    gc.collect()
    gc.freeze()  # what was there before is not walked by each collection: a fast test
    try:
        peak(5)  # the caches every import fills
        small, large = peak(20), peak(200)
    finally:
        gc.unfreeze()
    assert large < 2 * small, (small, large)
