"""The patient tracking list and the monthly return (docs/returns.md): worked cases of the
day count, its bands and the month a clock stopped in, the standards' performance against
their thresholds, the delay reasons, the CSV columns against the documentation, and every
demo pathway against the clocks its own page computes. Time is frozen."""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
import time_machine
from sqlalchemy import select

from tests.helpers import Driver, new_pathway
from tests.test_query_budget import counted
from tracker.api.services import create_token
from tracker.core.clock import local_date, local_zone
from tracker.demo import seed
from tracker.engine import clocks, services
from tracker.engine.dictionary import IN_ERROR
from tracker.engine.models import Pathway
from tracker.extensions import db
from tracker.returns import queries
from tracker.tracking import services as tracking

NHS_NUMBER = "9434765919"  # a valid test number (Modulus 11)
DOC = Path(__file__).resolve().parent.parent / "docs" / "returns.md"
D = timedelta(days=1)
# Wednesday 15 July 2026, 10:00 in London (summer time: UTC+1).
NOW = datetime(2026, 7, 15, 9, 0, tzinfo=UTC)
TODAY = date(2026, 7, 15)


def london(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=local_zone()).astimezone(UTC)


def usc(users, referral: datetime, lead: str = "surgeon") -> Driver:
    """A pathway on the 62-day standard (urgent, so an urgent suspected cancer referral)."""
    pathway = new_pathway(users["coordinator"], referral, "urgent", lead_surgeon=lead)
    return Driver(pathway, users["coordinator"], referral)


def operated(users, referral: datetime, at: datetime, **data) -> Driver:
    """Referred, planned for surgery a few hours later, operated at ``at``."""
    run = usc(users, referral)
    run.walk_to("surgery_scheduled")
    surgery = {
        "lead_surgeon": "surgeon",
        "procedures": ["decompression"],
        "approach": "open",
        "levels": "T7-T9",
        **data,
    }
    run.do("record_surgery", surgery, occurred_at=at)
    return run


@pytest.fixture
def api(users, session):
    _, plain = create_token(users["viewer"], "returns")
    session.commit()
    return {"Authorization": f"Bearer {plain}"}


def csv_rows(response) -> tuple[list[str], list[dict]]:
    text = response.get_data(as_text=True)
    assert text.startswith("\ufeff"), "no byte-order mark"
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")))
    header = next(reader)
    return header, [dict(zip(header, row, strict=True)) for row in reader]


def documented_columns(heading: str) -> list[str]:
    """The first cell of each row of the table under ``heading`` in docs/returns.md."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = lines.index(heading)
    columns = []
    for line in lines[start + 1 :]:
        if line.startswith("#"):
            break
        if match := re.match(r"\| `([^`]+)` \|", line):
            columns.append(match.group(1))
    assert columns, f"no column table under {heading!r}"
    return columns


# -- the patient tracking list ----------------------------------------------------------------

# Referred this many days before today, at 00:30 local: in summer time that is 23:30 UTC
# the day before, so a count of UTC dates would be one day longer.
BAND_CASES = [(28, "0-28"), (29, "29-62"), (62, "29-62"), (63, "63-104"), (104, "63-104")]
BAND_CASES += [(105, "over_104")]


@pytest.fixture
def ptl_world(users, session):
    with time_machine.travel(NOW, tick=False):
        runs = {days: usc(users, london(TODAY - days * D, 0, 30)) for days, _ in BAND_CASES}
        # Day 70 by the calendar, 10 days paused (an admission declined): day 60.
        referral = london(TODAY - 70 * D, 16, 40)
        paused = usc(users, referral, lead="surgeon2")
        paused.pathway.patient.nhs_number = NHS_NUMBER
        paused.walk_to("surgery_scheduled")
        paused.do(
            "record_adjustment",
            {
                "kind": "patient_declined_admission",
                "reason": "On holiday",
                "offered_date": (TODAY - 50 * D).isoformat(),
                "available_from": (TODAY - 40 * D).isoformat(),
            },
            occurred_at=referral + 15 * D,
        )
        # Not on the PTL: treated; closed; a routine referral (no 62-day clock).
        treated = operated(users, london(TODAY - 40 * D, 9), london(TODAY - 2 * D, 9))
        closed = usc(users, london(TODAY - 30 * D, 9))
        closed.do("withdraw", {"reason": "declined"})
        routine = new_pathway(
            users["coordinator"], london(TODAY - 30 * D, 9), "routine", referral_priority="routine"
        )
        session.commit()
    return {
        "runs": {days: run.pathway.id for days, run in runs.items()},
        "paused": paused.pathway.id,
        "absent": {treated.pathway.id, closed.pathway.id, routine.id},
    }


def test_ptl_day_counts_and_bands(client, login, api, ptl_world):
    expected = {ptl_world["runs"][days]: (days, code) for days, code in BAND_CASES}
    expected[ptl_world["paused"]] = (60, "29-62")
    login("viewer")
    with time_machine.travel(NOW, tick=False):
        body = client.get("/api/v1/ptl", headers=api).json
        page = client.get("/ptl")
        header, rows = csv_rows(client.get("/ptl.csv"))
    ours = {i["pathway_id"]: (i["day_count"], i["band"]) for i in body["items"]}
    assert ours == expected  # and not the treated, closed or routine ones
    assert not ptl_world["absent"] & set(ours)
    assert body["today"] == "2026-07-15"
    counts = Counter(band for _, band in ours.values())
    assert body["counts"] == {code: counts[code] for code in queries.BY_BAND}
    assert body["total"] == len(ours) == sum(body["counts"].values())
    # Longest wait first.
    days = [i["day_count"] for i in body["items"]]
    assert days == sorted(days, reverse=True)
    paused = next(i for i in body["items"] if i["pathway_id"] == ptl_world["paused"])
    assert paused["adjustment_days"] == 10 and paused["lead_surgeon"] == "surgeon2"
    assert paused["nhs_number"] == NHS_NUMBER
    assert paused["clock_start"] == (TODAY - 70 * D).isoformat()
    assert paused["rtt_62_due_on"] == (TODAY - 70 * D + 72 * D).isoformat()  # 62 + 10

    # The page and the CSV give the same day counts and bands.
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    shown = {
        int(m.group(1)): (int(m.group(2)), m.group(3))
        for m in re.finditer(
            r'data-pathway="(\d+)" data-day-count="(-?\d+)" data-band="([^"]+)"', text
        )
    }
    assert shown == ours
    assert "10 days paused" in text and ">none<" in text
    assert "943 476 5919" in text  # spaced as people read it; the CSV and API keep digits
    for code in queries.BY_BAND:
        assert f'data-band="{code}"' in text
    assert {int(r["pathway_id"]): (int(r["day_count"]), r["band"]) for r in rows} == ours
    assert header == list(queries.PTL_COLUMNS)


def test_ptl_filters_by_band_and_lead_surgeon(client, login, api, ptl_world):
    runs = ptl_world["runs"]
    login("coordinator")
    with time_machine.travel(NOW, tick=False):
        band = client.get("/api/v1/ptl?band=63-104", headers=api).json
        mine = client.get("/api/v1/ptl?lead_surgeon=surgeon2", headers=api).json
        page = client.get("/ptl?band=over_104").get_data(as_text=True)
        _, rows = csv_rows(client.get("/ptl.csv?band=29-62&lead_surgeon=surgeon2"))
        bad_band = client.get("/api/v1/ptl?band=200", headers=api)
        bad_surgeon = client.get("/ptl?lead_surgeon=nobody")
        bad_csv = client.get("/ptl.csv?band=x")
    assert {i["pathway_id"] for i in band["items"]} == {runs[63], runs[104]}
    assert band["total"] == 2 and band["counts"]["63-104"] == 2
    assert [i["pathway_id"] for i in mine["items"]] == [ptl_world["paused"]]
    assert mine["counts"] == {"0-28": 0, "29-62": 1, "63-104": 0, "over_104": 0}
    assert re.findall(r'data-pathway="(\d+)"', page) == [str(runs[105])]
    assert [int(r["pathway_id"]) for r in rows] == [ptl_world["paused"]]
    assert bad_band.status_code == 422 and "band" in bad_band.json["errors"]
    assert bad_surgeon.status_code == 422 and "No user has the username" in bad_surgeon.text
    assert bad_csv.status_code == 422 and "The band must be one of" in bad_csv.text


def test_ptl_pages(client, login, ptl_world, monkeypatch):
    from tracker.returns import routes

    monkeypatch.setattr(routes, "PTL_PAGE_SIZE", 3)
    login("viewer")
    with time_machine.travel(NOW, tick=False):
        first = client.get("/ptl").get_data(as_text=True)
        third = client.get("/ptl?page=3").get_data(as_text=True)
    assert len(re.findall(r'data-pathway="', first)) == 3
    assert len(re.findall(r'data-pathway="', third)) == 1  # 7 rows: 3, 3, 1
    assert "Page 3 of 3" in third


def test_a_clock_restarted_on_a_date_to_come_counts_below_zero(client, login, users, session):
    """A missed first appointment rebooked for three days' time restarts the clock then:
    day -3, in the first band, as the pathway page counts it."""
    with time_machine.travel(NOW, tick=False):
        run = usc(users, london(TODAY - 10 * D, 9))
        rebooked = {
            "kind": "dna_first_appointment",
            "reason": "Did not attend",
            "rebooked_on": (TODAY + 3 * D).isoformat(),
        }
        run.do("record_adjustment", rebooked, occurred_at=london(TODAY - 2 * D, 9))
        session.commit()
        login("viewer")
        _, rows = csv_rows(client.get("/ptl.csv"))
        shown = clocks.compute(
            "urgent", run.pathway.referral_received_at, services.load_history(run.pathway), NOW
        )
    rtt = next(t for t in shown if t.code == "rtt_62")
    assert rtt.elapsed(NOW) == -3 and rtt.arithmetic(NOW).startswith("day -3 of 62")
    row = next(r for r in rows if int(r["pathway_id"]) == run.pathway.id)
    assert (row["day_count"], row["band"], row["clock_start"]) == ("-3", "0-28", "2026-07-18")


def test_the_day_count_and_its_bands():
    assert [queries.band(n).code for n in (-3, 0, 28, 29, 62, 63, 104, 105, 400)] == [
        "0-28",
        "0-28",
        "0-28",
        "29-62",
        "29-62",
        "63-104",
        "63-104",
        "over_104",
        "over_104",
    ]
    # 00:30 on 1 July in summer time is 23:30 UTC on 30 June: its local date counts.
    start = london(date(2026, 7, 1), 0, 30)
    assert start.date() == date(2026, 6, 30)
    assert queries.day_count(start, 0, date(2026, 7, 29)) == 28
    assert queries.day_count(start, 8, date(2026, 7, 29)) == 20


# -- the monthly return -----------------------------------------------------------------------


def _return(client, month: str, api=None):
    if api is not None:
        return client.get(f"/api/v1/returns/cwt?month={month}", headers=api)
    return client.get(f"/returns/cwt?month={month}")


def test_a_clock_is_in_the_month_of_its_local_stop_date(client, login, api, users, session):
    """Summer time: 23:30 on 31 July is July; 00:30 on 1 August is August, though it is
    23:30 on 31 July in UTC."""
    referral = london(date(2026, 6, 1), 9)
    with time_machine.travel(datetime(2026, 8, 10, 12, tzinfo=UTC), tick=False):
        late = operated(users, referral, london(date(2026, 7, 31), 23, 30))
        after = operated(users, referral, london(date(2026, 8, 1), 0, 30))
        session.commit()
        assert after.pathway.first_treatment_at.month == 7  # in UTC
        july = _return(client, "2026-07", api).json
        august = _return(client, "2026-08", api).json
    rtt = {
        m: {i["pathway_id"]: i for i in body["items"] if i["standard"] == "rtt_62"}
        for m, body in (("07", july), ("08", august))
    }
    assert set(rtt["07"]) == {late.pathway.id}
    assert set(rtt["08"]) == {after.pathway.id}
    assert rtt["07"][late.pathway.id]["clock_stop"] == "2026-07-31"
    assert rtt["07"][late.pathway.id]["wait_days"] == 60
    assert rtt["08"][after.pathway.id]["clock_stop"] == "2026-08-01"
    assert rtt["08"][after.pathway.id]["wait_days"] == 61
    assert rtt["08"][after.pathway.id]["met"] is True


def _told(users, referral: datetime, at: datetime, **data) -> Driver:
    run = usc(users, referral)
    told = {"outcome": "cancer_confirmed", "method": "face_to_face", **data}
    run.do("communicate_diagnosis", told, occurred_at=at)
    return run


def test_met_missed_and_the_performance_against_the_threshold(client, login, api, users, session):
    """Faster Diagnosis (80 %): 4 of 5 told in July in time is 80.0 %, achieved; 4 of 6 is
    not."""
    with time_machine.travel(NOW, tick=False):
        for k in range(4):  # told on day 20: met
            referral = london(date(2026, 6, 15) + k * D, 11)
            _told(users, referral, referral + 20 * D)  # in July
        referral = london(date(2026, 6, 1), 11)
        missed = _told(users, referral, referral + 35 * D, breach_reason="Clinic cancelled")
        session.commit()
        body = _return(client, "2026-07", api).json
        login("viewer")
        page = _return(client, "2026-07").get_data(as_text=True)
    fds = next(s for s in body["standards"] if s["standard"] == "fds_28")
    assert (fds["count"], fds["met"], fds["missed"]) == (5, 4, 1)
    assert (fds["threshold"], fds["performance"], fds["achieved"]) == (80, 80.0, True)
    rtt = next(s for s in body["standards"] if s["standard"] == "rtt_62")
    assert (rtt["count"], rtt["performance"], rtt["achieved"]) == (0, None, None)
    row = next(i for i in body["items"] if i["pathway_id"] == missed.pathway.id)
    assert (row["met"], row["wait_days"], row["delay_reason"]) == (False, 35, "Clinic cancelled")
    assert "80.0 %" in page and "Achieved" in page and "No clock stopped" in page

    with time_machine.travel(NOW, tick=False):
        _told(users, referral + D, referral + 40 * D)
        session.commit()
        body = _return(client, "2026-07", api).json
    fds = next(s for s in body["standards"] if s["standard"] == "fds_28")
    assert (fds["count"], fds["met"], fds["performance"], fds["achieved"]) == (6, 4, 66.7, False)


def test_a_missed_clock_gives_its_delay_reason(client, login, api, users, session):
    with time_machine.travel(NOW, tick=False):
        referral = london(date(2026, 4, 1), 9)
        reasoned = operated(
            users, referral, london(date(2026, 7, 6), 9), breach_reason="Theatre list cancelled"
        )
        silent = operated(users, referral, london(date(2026, 7, 7), 9))
        silent.pathway.patient.nhs_number = NHS_NUMBER
        on_time = operated(users, london(date(2026, 6, 1), 9), london(date(2026, 7, 8), 9))
        # A reason added afterwards, by correcting the operation: the correction counts.
        corrected = operated(users, referral, london(date(2026, 7, 9), 9))
        surgery_seq = corrected.pathway.last_seq
        services.amend(
            corrected.pathway,
            surgery_seq,
            {"breach_reason": "Bed shortage"},
            "Reason for the delay added",
            users["coordinator"],
            corrected.pathway.version,
            uuid.uuid4().hex,
        )
        session.commit()
        body = _return(client, "2026-07", api).json
        login("viewer")
        _, rows = csv_rows(client.get("/returns/cwt.csv?month=2026-07"))
        page = client.get("/returns/cwt?month=2026-07").get_data(as_text=True)
    assert "Theatre list cancelled" in page and "Bed shortage" in page and "943 476 5919" in page
    rtt = {i["pathway_id"]: i for i in body["items"] if i["standard"] == "rtt_62"}
    assert rtt[reasoned.pathway.id]["delay_reason"] == "Theatre list cancelled"
    assert rtt[silent.pathway.id]["delay_reason"] == queries.NOT_RECORDED == "not recorded"
    assert rtt[silent.pathway.id]["nhs_number"] == NHS_NUMBER
    assert rtt[corrected.pathway.id]["delay_reason"] == "Bed shortage"
    assert rtt[on_time.pathway.id]["delay_reason"] is None and rtt[on_time.pathway.id]["met"]
    assert rtt[reasoned.pathway.id]["wait_days"] == 96 and not rtt[reasoned.pathway.id]["met"]
    csv_rtt = {int(r["pathway_id"]): r for r in rows if r["standard"] == "rtt_62"}
    assert csv_rtt[reasoned.pathway.id]["delay_reason"] == "Theatre list cancelled"
    assert csv_rtt[reasoned.pathway.id]["met"] == "no"
    assert csv_rtt[on_time.pathway.id]["met"] == "yes"
    assert csv_rtt[on_time.pathway.id]["delay_reason"] == ""
    assert csv_rtt[silent.pathway.id]["nhs_number"] == NHS_NUMBER
    standard = next(s for s in body["standards"] if s["standard"] == "rtt_62")
    assert (standard["count"], standard["met"], standard["performance"]) == (4, 1, 25.0)
    assert standard["achieved"] is False


def test_pathways_opened_in_error_are_in_neither(client, login, api, users, session):
    with time_machine.travel(NOW, tick=False):
        referral = london(date(2026, 5, 1), 9)
        kept = operated(users, referral, london(date(2026, 7, 6), 9))
        mistaken = operated(users, referral, london(date(2026, 7, 6), 10))
        mistaken.do("withdraw", {"reason": IN_ERROR}, occurred_at=london(date(2026, 7, 7), 9))
        waiting = usc(users, london(date(2026, 7, 1), 9))
        waiting.do("withdraw", {"reason": IN_ERROR})
        session.commit()
        assert mistaken.pathway.in_error and waiting.pathway.in_error
        body = _return(client, "2026-07", api).json
        ptl = client.get("/api/v1/ptl", headers=api).json
    ids = {i["pathway_id"] for i in body["items"]}
    assert kept.pathway.id in ids and mistaken.pathway.id not in ids
    assert waiting.pathway.id not in {i["pathway_id"] for i in ptl["items"]}


@pytest.mark.parametrize("month", ["2026-13", "2026-00", "26-07", "2026-7", "July", "2026-07-01"])
def test_a_malformed_month_is_refused_with_an_example(client, login, api, month):
    login("viewer")
    with time_machine.travel(NOW, tick=False):
        page = _return(client, month)
        download = client.get(f"/returns/cwt.csv?month={month}")
        answer = _return(client, month, api)
    for response in (page, download):
        assert response.status_code == 422
        assert "use YYYY-MM, for example 2026-06" in response.get_data(as_text=True)
    assert answer.status_code == 422 and answer.json["error"] == "invalid_data"
    assert "for example 2026-06" in answer.json["errors"]["month"][0]


def test_the_month_defaults_to_the_previous_one_on_the_page_only(client, login, api):
    login("viewer")
    with time_machine.travel(NOW, tick=False):
        page = client.get("/returns/cwt")
        download = client.get("/returns/cwt.csv")
        answer = client.get("/api/v1/returns/cwt", headers=api)
    assert page.status_code == 200 and 'value="2026-06"' in page.get_data(as_text=True)
    assert "June 2026" in page.get_data(as_text=True)
    assert download.status_code == 422 and "month=2026-06" in download.get_data(as_text=True)
    assert answer.status_code == 422 and "month" in answer.json["errors"]


def test_the_ptl_carries_the_tracking_note(client, login, api, ptl_world, users, session):
    pathway = db.session.get(Pathway, ptl_world["paused"])
    with time_machine.travel(NOW, tick=False):
        tracking.add_tracking_note(pathway, "=Admission rebooked for Monday", users["coordinator"])
        session.commit()
        login("viewer")
        body = client.get("/api/v1/ptl", headers=api).json
        header, rows = csv_rows(client.get("/ptl.csv"))
    item = next(i for i in body["items"] if i["pathway_id"] == pathway.id)
    assert item["tracking_note"] == "=Admission rebooked for Monday"
    assert item["tracking_note_at"].startswith(NOW.astimezone(UTC).strftime("%Y-%m-%dT%H:%M"))
    others = [i for i in body["items"] if i["pathway_id"] != pathway.id]
    assert others and all(i["tracking_note"] is None for i in others)
    row = next(r for r in rows if r["pathway_id"] == str(pathway.id))
    assert header[-2:] == ["tracking_note", "tracking_note_at"]
    assert row["tracking_note"] == "'=Admission rebooked for Monday"  # text, never a formula


def test_the_csv_columns_are_the_documented_ones(client, login, users, session):
    with time_machine.travel(NOW, tick=False):
        operated(users, london(date(2026, 5, 1), 9), london(date(2026, 7, 6), 9))
        usc(users, london(date(2026, 7, 1), 9))
        session.commit()
        login("viewer")
        ptl = client.get("/ptl.csv")
        cwt = client.get("/returns/cwt.csv?month=2026-07")
    for response, heading, columns in (
        (ptl, "### Columns of the PTL", queries.PTL_COLUMNS),
        (cwt, "### Columns of the return", queries.RETURN_COLUMNS),
    ):
        assert response.status_code == 200 and response.mimetype == "text/csv"
        assert response.headers["Content-Disposition"].startswith("attachment")
        assert response.data.startswith("\ufeff".encode())  # UTF-8 with a byte-order mark
        header, rows = csv_rows(response)
        assert header == documented_columns(heading) == list(columns)
        assert rows
    # The standards and bands the documentation names are the ones the code has.
    text = DOC.read_text(encoding="utf-8")
    for code in (*queries.STANDARD_CODES, *queries.BY_BAND):
        assert f"`{code}`" in text
    for clock in queries.STANDARDS:
        assert f"| `{clock.code}` |" in text and f"| {clock.threshold} % |" in text


# -- every demo pathway -----------------------------------------------------------------------


def test_every_demo_pathway_agrees_with_its_page(client, login, api, session):
    """The PTL's day count and band of every open demo pathway are those of the 62-day
    clock its page computes; every return row is a clock computed for its pathway, and every
    computed clock of a standard that stopped in a month is a row of that month."""
    with time_machine.travel(NOW, tick=False):
        seed(250, seed_value=11)
        session.commit()
        now = datetime.now(UTC)
        login("viewer")
        _, rows = csv_rows(client.get("/ptl.csv"))
        counts = client.get("/api/v1/ptl", headers=api).json["counts"]
        pathways = db.session.scalars(select(Pathway).order_by(Pathway.id)).all()
        expected_ptl, expected_rows = {}, {}
        for pathway in pathways:
            history = services.load_history(pathway)
            if pathway.in_error:
                continue
            if pathway.closed_at is None:
                shown = clocks.compute(
                    pathway.urgency, pathway.referral_received_at, history, now, pathway.closed_at
                )
                rtt = [t for t in shown if t.code == "rtt_62" and t.is_open]
                assert len(rtt) <= 1
                if rtt:
                    days = int(rtt[0].elapsed(now))
                    expected_ptl[pathway.id] = (days, queries.band(days).code)
            for t in clocks.compute_all(
                pathway.urgency, pathway.referral_received_at, history, now, pathway.closed_at
            ):
                if t.code in queries.STANDARD_CODES and t.stopped_at and not t.is_open:
                    key = (t.code, pathway.id, t.episode, t.started_at)
                    expected_rows[key] = (t.status == "met", int(t.wait), t.adjustment_days, t)
        months = sorted(
            {local_date(t.stopped_at).replace(day=1) for *_, t in expected_rows.values()}
        )
        returned = {}
        for month in months:
            for row in queries.cwt_return(month).rows:
                returned[(row.standard, row.pathway_id, row.episode, row.started_at)] = row
        api_month = client.get(f"/api/v1/returns/cwt?month={months[-1]:%Y-%m}", headers=api).json

    assert len(expected_ptl) > 20, "the demo should have open 62-day pathways"
    ptl = {int(r["pathway_id"]): (int(r["day_count"]), r["band"]) for r in rows}
    assert ptl == expected_ptl
    tally = Counter(band for _, band in expected_ptl.values())
    assert counts == {code: tally[code] for code in queries.BY_BAND}

    # The demo waits as a service does: some past day 28, some returns missed.
    assert len(tally) > 1, tally
    assert any(not met for met, *_ in expected_rows.values())
    assert returned and set(returned) == set(expected_rows)
    for key, row in returned.items():
        met, wait, adjustment, computed = expected_rows[key]
        assert (row.met, row.wait_days, row.adjustment_days) == (met, wait, adjustment), key
        assert row.stopped_at == computed.stopped_at and row.priority == computed.priority
        assert row.wait_days == queries.day_count(
            row.started_at, row.adjustment_days, row.stop_date
        )
    in_api = {(i["standard"], i["pathway_id"], i["clock_start"]) for i in api_month["items"]}
    assert in_api == {
        (k[0], k[1], local_date(k[3]).isoformat())
        for k, v in expected_rows.items()
        if local_date(v[3].stopped_at).replace(day=1) == months[-1]
    }


def test_the_pages_run_a_fixed_number_of_queries(client, login, api, session):
    urls = (
        "/ptl",
        "/ptl?band=0-28&lead_surgeon=surgeon",
        "/ptl.csv",
        "/returns/cwt?month=2026-06",
        "/returns/cwt.csv?month=2026-07",
        "/api/v1/ptl",
        "/api/v1/returns/cwt?month=2026-06",
    )

    def queries_run() -> list[int]:
        out = []
        for url in urls:
            db.session.expire_all()
            with counted() as statements:
                response = client.get(url, headers=api if url.startswith("/api/") else {})
            assert response.status_code == 200, (url, response.text[:300])
            out.append(len(statements))
        return out

    with time_machine.travel(NOW, tick=False):
        seed(10, seed_value=5)
        session.commit()
        login("viewer")
        client.get("/ptl")  # the first page after a login completes the session once
        small = queries_run()
        seed(300, seed_value=6)
        session.commit()
        large = queries_run()
    assert small == large
    assert max(large) <= 9, large  # the PTL page: 8, and the top bar's notification counter
