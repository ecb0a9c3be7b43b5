"""Reports against a small dataset computed by hand, time frozen, on both backends."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from tests.helpers import Driver, new_pathway, valid_data
from tests.test_query_budget import counted
from tracker.demo import seed
from tracker.engine import clocks, services
from tracker.engine import steps as d
from tracker.extensions import db

NOW = datetime(2026, 6, 30, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
D = timedelta(days=1)
RANGE = "start=2026-03-01&end=2026-06-30"


def steps(users, referral, urgency, plan, lead="surgeon"):
    """Record (offset, trigger, data) steps on a new pathway; data None means valid data."""
    pathway = new_pathway(users["coordinator"], referral, urgency=urgency, lead_surgeon=lead)
    run = Driver(pathway, users["surgeon"], referral)
    for offset, trigger, data in plan:
        at = referral + offset
        run.do(
            trigger,
            valid_data(trigger, pathway.state, at) if data is None else data,
            occurred_at=at,
        )
    return run


@pytest.fixture
def dataset(users, session):
    """P1-P6 as in the module's comments; the expected figures below are worked by hand."""
    with time_machine.travel(NOW, tick=False):
        surgery = {
            "lead_surgeon": "surgeon",
            "approach": "open",
            "levels": "T8",
            "procedures": ["decompression", "laminectomy"],
        }
        to_mdt = [
            (1 * H, "request_imaging", None),
            (2 * H, "record_imaging", None),
            (3 * H, "refer_to_mdt", None),
        ]
        # P1 routine: decision day 10, operation day 20, a IIIa complication amended to IIIb.
        p1 = steps(
            users,
            datetime(2026, 3, 2, 9, tzinfo=UTC),
            "routine",
            [
                *to_mdt,
                (10 * D, "plan_surgery", None),
                (20 * D, "record_surgery", surgery),
                (
                    21 * D,
                    "record_complication",
                    {"complication": "csf_leak", "clavien_dindo": "IIIa"},
                ),
            ],
        )
        services.amend(
            p1.pathway,
            p1.pathway.last_seq,
            {"clavien_dindo": "IIIb"},
            "Regraded",
            users["surgeon"],
            p1.pathway.version,
            uuid.uuid4().hex,
        )
        # P2 urgent, lead surgeon2: decision day 30, operation day 70.
        steps(
            users,
            datetime(2026, 3, 5, 9, tzinfo=UTC),
            "urgent",
            [
                *to_mdt,
                (30 * D, "plan_surgery", None),
                (
                    70 * D,
                    "record_surgery",
                    {
                        **surgery,
                        "lead_surgeon": "surgeon2",
                        "procedures": ["decompression"],
                        "approach": "minimally_invasive",
                    },
                ),
            ],
            lead="surgeon2",
        )
        # P3 routine, referred 10 days ago: everything pending.
        steps(users, NOW - 10 * D, "routine", [])
        # P4 emergency: imaging at 20 h, decision at 50 h, treatment at 60 h.
        steps(
            users,
            datetime(2026, 4, 1, 9, tzinfo=UTC),
            "emergency",
            [
                (1 * H, "request_imaging", None),
                (20 * H, "record_imaging", None),
                (21 * H, "refer_to_mdt", None),
                (50 * H, "plan_oncology", None),
                (60 * H, "record_treatment", None),
            ],
        )
        # P5 referred before the range; its operation and recurrence fall inside it.
        steps(
            users,
            datetime(2026, 1, 10, 9, tzinfo=UTC),
            "routine",
            [
                *to_mdt,
                (40 * D, "plan_surgery", None),
                (
                    59 * D,
                    "record_surgery",
                    {**surgery, "procedures": ["vertebroplasty"], "approach": "percutaneous"},
                ),
                (60 * D, "start_surveillance", None),
                (111 * D, "record_follow_up", None),
                (112 * D, "suspect_recurrence", None),
            ],
        )
        # P6 routine: its MDT decision was voided, so it waits in MDT review, breached.
        p6 = steps(
            users,
            datetime(2026, 4, 10, 9, tzinfo=UTC),
            "routine",
            [*to_mdt, (5 * D, "plan_surgery", None)],
        )
        services.void_last_step(
            p6.pathway,
            "Wrong patient",
            users["surgeon"],
            p6.pathway.version,
            uuid.uuid4().hex,
            now=datetime(2026, 4, 15, 10, tzinfo=UTC),
        )
        session.commit()


def table(page: str, name: str) -> list[list[str]]:
    import re

    body = re.search(rf'data-table="{name}">.*?<tbody>(.*?)</tbody>', page, re.S).group(1)
    return [re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", body)]


def test_every_figure_matches_the_hand_computed_dataset(client, login, dataset):
    login("viewer")
    with time_machine.travel(NOW, tick=False):
        page = client.get(f"/reports/?{RANGE}").text
    assert table(page, "referrals") == [
        ["Referrals in the range", "5"],
        ["Recurrences suspected in the range", "1"],
        ["Pathways with a recurrence in the range", "1"],
    ]
    # Referral to diagnosis: 2.1, 10, 30 days; diagnosis to treatment: 0.4, 10, 40;
    # referral to treatment: 2.5, 20, 70. Median the middle, 90th percentile the top.
    assert table(page, "intervals") == [
        ["Referral to diagnosis (MDT decision)", "3", "10.0", "30.0"],
        ["Diagnosis to treatment", "3", "10.0", "40.0"],
        ["Referral to treatment", "3", "20.0", "70.0"],
    ]
    # By hand: every clock that stopped in the range (any pathway, any episode), a running
    # one past its due date counted as not met when it fell due, pending ones apart.
    # P1 (2 Mar, operated day 20): 28, 31, 62 met in March. P2 (5 Mar, urgent): MRI met in
    # March; operated day 70: 28, 31, 62 missed in May. P3 (20 Jun): 28 and 62 pending.
    # P4 (1 Apr, emergency presentation): MRI at 20 h met, plan 30 h after it missed,
    # radiotherapy 10 h after the decision met, 31 met; no 28 or 62. P5 (10 Jan, operated
    # day 59 = 10 March): 28 missed, 31 and 62 met, in March; its recurrence (2 May,
    # urgent): MRI not done, due 9 May; 28 breached, due 30 May; 62 pending. P6 (10 Apr,
    # decision voided): 28 breached (due 8 May), 62 breached (due 11 Jun).
    assert table(page, "standards") == [
        ["Spinal metastases: MRI within 7 days", "1", "1", "0", "50.0", "—", "—"],
        ["Faster Diagnosis Standard (28 days)", "1", "4", "1", "20.0", "80", "no"],
        ["Decision to treatment (31 days)", "3", "1", "0", "75.0", "96", "no"],
        ["Subsequent treatment (31 days)", "0", "0", "0", "—", "96", "—"],
        ["Referral to treatment (62 days)", "2", "2", "2", "50.0", "85", "no"],
        ["MSCC: MRI within 24 hours", "1", "0", "0", "100.0", "—", "—"],
        ["MSCC: plan within 24 hours of the MRI", "0", "1", "0", "0.0", "—", "—"],
        ["MSCC: radiotherapy within 24 hours", "1", "0", "0", "100.0", "—", "—"],
        ["MSCC: surgery within 24 hours (local)", "0", "0", "0", "—", "—", "—"],
    ]
    # The same clocks by the month they stopped (March to June), against the thresholds.
    assert table(page, "trend") == [
        ["Faster Diagnosis Standard (28 days)", "80", "50.0", "—", "0.0", "—"],
        ["Decision to treatment (31 days)", "96", "100.0", "100.0", "0.0", "—"],
        ["Subsequent treatment (31 days)", "96", "—", "—", "—", "—"],
        ["Referral to treatment (62 days)", "85", "100.0", "—", "0.0", "0.0"],
    ]
    states = dict(table(page, "states"))
    assert {k: v for k, v in states.items() if v != "0"} == {
        "Referred": "1",
        "MDT review": "1",
        "Post-operative": "2",
        "Oncology treatment": "1",
    }
    procedures = {k: v for k, v in table(page, "procedures") if v != "0"}
    assert procedures == {"Decompression": "2", "Laminectomy": "1", "Vertebroplasty": "1"}
    assert table(page, "approaches") == [
        ["Open", "1"],
        ["Minimally invasive", "1"],
        ["Percutaneous", "1"],
    ]
    assert table(page, "complications") == [
        ["Operations in the range", "3"],
        ["Pathways operated on", "3"],
        ["Of them with a complication", "1"],
        ["Complication rate (%)", "33.3"],
    ]
    grades = {k: v for k, v in table(page, "clavien_dindo") if v != "0"}
    # the amendment, not the original IIIa; the grade with what it means
    assert grades == {"IIIb - intervention under general anaesthesia": "1"}
    assert page.count('<svg class="chart bars"') == 8


def test_chart_labels_wrap_and_are_never_cut_off(client, login, dataset):
    """Each bar's label is whole, on as many lines as it needs within the space left of
    the bars ("Emergency plan within 24 hours of imaging" lost its "E" at the edge)."""
    import html as html_module
    import re

    login("viewer")
    with time_machine.travel(NOW, tick=False):
        page = client.get(f"/reports/?{RANGE}").text
    charts = re.findall(r'<svg class="chart bars".*?</svg>', page, re.S)
    assert charts
    longest = 0
    for chart in charts:
        desc = html_module.unescape(re.search(r"<desc[^>]*>(.*?)</desc>", chart, re.S).group(1))
        labels = [
            [html_module.unescape(t) for t in re.findall(r"<tspan[^>]*>([^<]*)</tspan>", text)]
            for text in re.findall(r'<text[^>]*class="svg-label">(.*?)</text>', chart, re.S)
        ]
        for lines in labels:
            whole = " ".join(lines)
            assert f"{whole}: " in desc, whole  # the label as the data has it, not cut
            assert "…" not in whole and all(len(line) <= 34 for line in lines), lines
            longest = max(longest, len(whole))
        heights = re.search(r'viewBox="0 0 600 (\d+)"', chart).group(1)
        ys = [float(y) for y in re.findall(r'<rect x="262" y="([\d.]+)"', chart)]
        assert all(y < float(heights) for y in ys)
    assert longest > 34  # some label did need a second line


def test_filters_narrow_the_cohort(client, login, dataset):
    login("viewer")
    with time_machine.travel(NOW, tick=False):
        emergency = client.get(f"/reports/?{RANGE}&urgency=emergency").text
        surgeon2 = client.get(f"/reports/?{RANGE}&lead_surgeon=surgeon2").text
        primary = client.get(f"/reports/?{RANGE}&diagnosis_category=primary_bone").text
    assert table(emergency, "referrals")[0] == ["Referrals in the range", "1"]
    assert table(surgeon2, "referrals")[0][1] == "1"
    assert table(surgeon2, "approaches") == [
        ["Open", "0"],
        ["Minimally invasive", "1"],
        ["Percutaneous", "0"],
    ]
    assert table(primary, "referrals")[0][1] == "0"


def test_bad_filters_get_a_clear_message(client, login, users):
    login("viewer")
    response = client.get("/reports/?start=2026-13-01&end=2026-01-01")
    assert response.status_code == 422
    assert "is not a date; use YYYY-MM-DD" in response.text
    response = client.get("/reports/?start=2026-05-01&end=2026-01-01")
    assert "The start date is after the end date" in response.text
    assert client.get("/reports/nonsense.csv").status_code == 404


def test_report_csv_opens_in_excel(client, login, dataset):
    login("viewer")
    with time_machine.travel(NOW, tick=False):
        response = client.get(f"/reports/standards.csv?{RANGE}")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    text = response.data.decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert rows[0] == [
        "Standard",
        "Met",
        "Not met",
        "Pending",
        "Met (%)",
        "Threshold (%)",
        "Achieved",
    ]
    assert rows[2] == ["Faster Diagnosis Standard (28 days)", "1", "4", "1", "20", "80", "no"]
    assert (
        'filename="standards_2026-03-01_2026-06-30.csv"' in response.headers["Content-Disposition"]
    )


def test_worklist_csv_has_every_filtered_row_with_iso_dates(client, login, dataset):
    login("coordinator")
    with time_machine.travel(NOW, tick=False):
        response = client.get("/worklist.csv?target=breached&sort=name")
    rows = list(csv.reader(io.StringIO(response.data.decode("utf-8").lstrip("\ufeff"))))
    assert rows[0][:7] == [
        "MRN",
        "Family name",
        "Given name",
        "Urgency",
        "Urgency (label)",
        "State",
        "State (label)",
    ]
    column = {name: i for i, name in enumerate(rows[0])}
    breached = [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]
    assert {r["State"] for r in breached} >= {"mdt_review"}  # P6, waiting since its void
    # Codes in their own columns for systems, the words people read beside them.
    assert column["State (label)"] == column["State"] + 1
    assert all(r["State (label)"] == d.STATE_LABELS[r["State"]] for r in breached)
    assert all(r["Target status"] == "breached" for r in breached)
    assert all(r["Target status (label)"] == "Breached" for r in breached)
    assert all(r["Next target (label)"] == clocks.LABELS[r["Next target"]] for r in breached)
    assert all(r["Urgency (label)"] in ("Emergency", "Urgent", "Routine") for r in breached)
    assert all(r["Where the clock stands"] for r in breached)
    assert all(r["Lead surgeon (name)"] and r["Coordinator (name)"] for r in breached)
    assert all(datetime.fromisoformat(r["Due"]).tzinfo is not None for r in breached)


def test_this_week_lists_breaches_ahead_and_overdue_follow_ups(client, login, users, session):
    with time_machine.travel(NOW, tick=False):
        soon = steps(users, NOW - 25 * D, "routine", [])  # FDS due in 3 days
        late = steps(users, NOW - 40 * D, "routine", [])  # FDS breached 12 days ago
        later_still = steps(users, NOW - 30 * D, "routine", [])  # breached 2 days ago
        later = steps(users, NOW - 1 * D, "routine", [])  # due in 27 days
        followed = steps(
            users,
            datetime(2026, 1, 5, 9, tzinfo=UTC),
            "routine",
            [
                (1 * H, "request_imaging", None),
                (2 * H, "record_imaging", None),
                (3 * H, "refer_to_mdt", None),
                (4 * D, "plan_surveillance", None),
                (
                    60 * D,
                    "record_follow_up",
                    {"imaging_done": True, "status": "ned", "next_due": "2026-05-01"},
                ),
            ],
        )
        session.commit()
        login("coordinator")
        page = client.get("/this-week?who=all").text
    mrn = lambda run: run.pathway.patient.mrn  # noqa: E731
    breached, rest = page.split('id="section-breaching"')
    breaching, overdue = rest.split('id="section-overdue"')
    # Already breached comes first, the longest breached at its top.
    assert breached.index(mrn(late)) < breached.index(mrn(later_still))
    assert mrn(soon) not in breached and mrn(followed) not in breached
    assert mrn(soon) in breaching and mrn(later) not in breaching
    assert mrn(late) not in breaching and mrn(late) not in overdue
    assert mrn(followed) in overdue and mrn(soon) not in overdue


def test_reports_run_a_bounded_number_of_queries(client, login, dataset, session):
    login("viewer")

    def queries() -> int:
        db.session.expire_all()
        with time_machine.travel(NOW, tick=False), counted() as statements:
            assert client.get(f"/reports/?{RANGE}").status_code == 200
        return len(statements)

    small = queries()
    with time_machine.travel(NOW, tick=False):
        seed(300, seed_value=5)
        session.commit()
    assert queries() == small <= 13
