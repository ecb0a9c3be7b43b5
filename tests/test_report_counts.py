"""The reports' day rows (tracker.engine.daily): kept on write in the event's transaction,
they give the figures the pathway rows give, verify names a row that disagrees, and two
writers to one row lose no update. On both backends."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import delete, select, update

from tests.helpers import driver, new_pathway
from tests.test_import import good_rows, write
from tracker.core.clock import local_zone
from tracker.demo import seed
from tracker.engine import daily, services
from tracker.engine.models import ReportCount
from tracker.engine.verify import verify_all
from tracker.extensions import db
from tracker.reports import figures
from tracker.teams.models import UserTeam

TEAMS = (None, ("spine",), ("metastatic", "bone_sarcoma"), ())


def assert_kept_as_recounted() -> None:
    connection = db.session.connection()
    db.session.flush()
    assert daily.differences(daily.stored(connection), daily.expected(connection)) == []


def kept_now() -> Counter:
    """The day rows as kept, by their day key (``daily.KEY``)."""
    kept = daily.stored(db.session.connection())
    return Counter({key[1:]: n for key, n in kept.items() if key[0] == daily.DAY})


def assert_same_figures(rnd: random.Random, times: int, around: datetime) -> int:
    """Random ranges, instants and teams: the day rows' report is the rows' report.
    Returns how many of the reports counted some referral (a test that counts nothing
    would prove nothing)."""
    zone = local_zone()
    counted = 0
    for _ in range(times):
        now = around - timedelta(hours=rnd.randint(-24 * 5, 24 * 150), minutes=rnd.randint(0, 59))
        start = (around - timedelta(days=rnd.randint(0, 420))).astimezone(zone).date()
        end = start + timedelta(days=rnd.choice([0, 1, 6, 30, 89, 200, 400]))
        f = figures.Filters(start, end, teams=rnd.choice(TEAMS))
        by_day, by_row = (
            figures.build_from_counts(f, now, zone),
            figures.build_from_rows(f, now, zone),
        )
        assert by_day == by_row, (f, now)
        counted += by_row.referrals > 0
    return counted


def test_the_day_rows_give_the_figures_of_the_rows_on_random_data(users, session):
    now = datetime.now(UTC)
    seed(400, seed_value=11, now=now)  # the demo seeder's bulk rows
    rnd = random.Random(12)
    # ... and pathways walked through the services, with voids and corrections.
    for i in range(12):
        run = driver(users, referral=now - timedelta(days=rnd.randint(5, 300)), actor="surgeon")
        run.walk_to(rnd.choice(["imaging", "mdt_review", "surgery_scheduled", "surveillance"]))
        if i % 3 == 0:
            services.void_last_step(
                run.pathway,
                "Wrong pathway",
                users["surgeon"],
                run.pathway.version,
                uuid.uuid4().hex,
            )
    session.flush()
    assert_kept_as_recounted()
    assert assert_same_figures(rnd, 60, now) > 20


def _surgery(run, at):
    return run.do(
        "record_surgery",
        {
            "lead_surgeon": "surgeon",
            "approach": "open",
            "levels": "T8",
            "procedures": ["decompression", "laminectomy"],
        },
        occurred_at=at,
    )


def test_records_voids_corrections_and_withdrawals_keep_the_rows(users, session):
    now = datetime.now(UTC)
    referral = now - timedelta(days=120)
    run = driver(users, referral=referral, actor="surgeon")
    assert_kept_as_recounted()
    run.walk_to("surgery_scheduled")
    assert_kept_as_recounted()
    surgery = _surgery(run, referral + timedelta(days=30))
    assert_kept_as_recounted()
    # A correction of when the operation happened, then of a complication's grade: both
    # move counts from one row to another.
    services.amend(
        run.pathway,
        surgery.event.seq,
        {"occurred_at": referral + timedelta(days=28, hours=3)},
        "Corrected",
        users["surgeon"],
        run.pathway.version,
        uuid.uuid4().hex,
    )
    assert_kept_as_recounted()
    # Voided, and recorded again.
    services.void_last_step(
        run.pathway, "Not this patient", users["surgeon"], run.pathway.version, uuid.uuid4().hex
    )
    assert_kept_as_recounted()
    assert not any(k[2] == "first" and k[3] == "operation" for k in kept_now())
    _surgery(run, referral + timedelta(days=29))
    assert_kept_as_recounted()
    complication = run.do(
        "record_complication",
        {"complication": "csf_leak", "clavien_dindo": "IIIa"},
        occurred_at=referral + timedelta(days=31),
    )
    assert_kept_as_recounted()
    kept = kept_now()
    assert sum(n for k, n in kept.items() if k[2] == "op_grade" and k[3] == "IIIa") == 1
    services.amend(
        run.pathway,
        complication.event.seq,
        {"clavien_dindo": "IIIb"},
        "Regraded",
        users["surgeon"],
        run.pathway.version,
        uuid.uuid4().hex,
    )
    assert_kept_as_recounted()
    kept = kept_now()
    assert not any(k[2] == "op_grade" and k[3] == "IIIa" for k in kept)
    # Withdrawn as opened in error: the pathway leaves every row.
    mistaken = driver(users, referral=referral, actor="surgeon")
    mistaken.walk_to("imaging")
    before = kept_now()
    mistaken.do("withdraw", {"reason": "opened_in_error"})
    assert_kept_as_recounted()
    after = kept_now()
    day = referral.astimezone(local_zone()).date()
    referrals = lambda c: sum(n for k, n in c.items() if k[0] == day and k[2] == "referral")  # noqa: E731
    assert referrals(after) == referrals(before) - 1


def test_the_csv_import_keeps_the_rows(runner, users, tmp_path, session):
    path = write(tmp_path / "good.csv", good_rows() + good_rows("IMP002", "B"))
    result = runner.invoke(args=["tracker", "import", path, "--user", "coordinator"])
    assert result.exit_code == 0, result.output
    kept = kept_now()
    assert sum(n for k, n in kept.items() if k[2] == "referral") == 2
    assert_kept_as_recounted()


def test_verify_names_a_row_that_disagrees(runner, users, session):
    driver(users, actor="surgeon").walk_to("mdt_review")
    session.flush()
    assert not [p for p in verify_all()[0] if p[0] == "report counts"]
    row = session.scalars(
        select(ReportCount).where(
            ReportCount.span == daily.DAY, ReportCount.kind == "referral", ReportCount.n > 0
        )
    ).first()
    n = row.n
    where = [getattr(ReportCount, k) == getattr(row, k) for k in daily.ROW_KEY]
    named = f"report_day_count {row.day} {row.team} referral {row.code}"
    rebuild = "(run `flask tracker refresh-targets` to rebuild)"
    session.execute(update(ReportCount).where(*where).values(n=ReportCount.n + 1))
    problems = [m for place, m in verify_all()[0] if place == "report counts"]
    assert problems == [f"{named}: kept {n + 1}, the pathways give {n} {rebuild}"]
    result = runner.invoke(args=["tracker", "verify"])
    assert result.exit_code == 1
    assert "report_day_count" in result.output
    # A row no pathway accounts for is named too.
    session.execute(delete(ReportCount).where(*where))
    problems = [m for place, m in verify_all()[0] if place == "report counts"]
    assert problems == [f"{named}: kept 0, the pathways give {n} {rebuild}"]
    # refresh-targets rebuilds them.
    assert runner.invoke(args=["tracker", "refresh-targets"]).exit_code == 0
    assert not [p for p in verify_all()[0] if p[0] == "report counts"]


def test_two_writers_to_one_day_row_lose_no_update(app):
    """Each writer adds to the row as it stands when it gets it: the second waits for the
    first's commit (PostgreSQL: the row lock, or the key's on insert; SQLite: the write
    lock), whether the row is new or already there."""
    team = f"t{uuid.uuid4().hex[:8]}"
    key = (date(2031, 1, 1), team, "referral", "triage", 0, daily.NO_DAY)
    with app.app_context():
        try:
            for expected in (2, 4):  # a new row, then an existing one
                with db.engine.connect() as first, db.engine.connect() as second:
                    first.begin()
                    daily.add(first, Counter({key: 1}))
                    done = threading.Event()

                    def other(connection=second, done=done):
                        with connection.begin():
                            daily.add(connection, Counter({key: 1}))
                        done.set()

                    thread = threading.Thread(target=other)
                    thread.start()
                    time.sleep(0.5)
                    assert not done.is_set()  # it waits for the first writer
                    first.commit()
                    thread.join(30)
                    assert done.is_set()
                with db.engine.connect() as reader:
                    kept = reader.execute(
                        select(ReportCount.span, ReportCount.n).where(ReportCount.team == team)
                    ).all()
                # The day's row, its part's and its month's.
                assert sorted(kept) == [(span, expected) for span in daily.SPANS]
        finally:
            with db.engine.begin() as connection:
                connection.execute(delete(ReportCount).where(ReportCount.team == team))


def test_the_report_counts_only_the_user_s_teams(client, login, users, session):
    now = datetime.now(UTC)
    for category in ("metastatic_spinal", "primary_bone"):  # metastatic, bone_sarcoma teams
        new_pathway(users["coordinator"], now - timedelta(days=3), diagnosis_category=category)
    session.flush()
    kept = kept_now()
    assert {k[1]: n for k, n in kept.items() if k[2] == "referral"} == {
        "metastatic": 1,
        "bone_sarcoma": 1,
    }
    start, end = (now - timedelta(days=10)).date(), (now + timedelta(days=1)).date()

    def referrals() -> str:
        response = client.get(f"/reports/referrals.csv?start={start}&end={end}")
        assert response.status_code == 200
        return response.text.splitlines()[1]

    login("coordinator")
    assert referrals() == "Referrals in the range,2"
    coordinator = users["coordinator"]
    session.execute(
        delete(UserTeam).where(UserTeam.user_id == coordinator.id, UserTeam.team != "metastatic")
    )
    session.commit()
    assert referrals() == "Referrals in the range,1"


def test_a_range_is_read_as_the_fewest_spans_that_tile_it():
    d = date.fromisoformat
    # The default 90 days to 30 November: a week of single days, three parts, two months.
    assert daily.tiles(d("2026-09-02"), d("2026-11-30")) == [
        *((daily.DAY, d(f"2026-09-0{i}")) for i in range(2, 9)),
        (daily.PART, d("2026-09-09")),
        (daily.PART, d("2026-09-17")),
        (daily.PART, d("2026-09-25")),
        (daily.MONTH, d("2026-10-01")),
        (daily.MONTH, d("2026-11-01")),
    ]
    # The last part runs to the month's end (28, 29, 30 or 31 days).
    assert daily.tiles(d("2028-02-25"), d("2028-02-29")) == [(daily.PART, d("2028-02-25"))]
    assert daily.tiles(d("2027-02-01"), d("2027-02-28")) == [(daily.MONTH, d("2027-02-01"))]
    assert daily.tiles(d("2026-12-05"), d("2026-12-04")) == []
    rnd = random.Random(3)
    for _ in range(300):
        start = d("2025-01-01") + timedelta(days=rnd.randint(0, 900))
        end = start + timedelta(days=rnd.randint(0, 400))
        tiles = daily.tiles(start, end)
        days = [
            first + timedelta(days=i)
            for span, first in tiles
            for i in range((daily.span_end(span, first) - first).days + 1)
        ]
        # Every day once, in order, and each tile within one month.
        assert days == [start + timedelta(days=i) for i in range((end - start).days + 1)]
        assert all(daily.span_end(s, f).month == f.month for s, f in tiles)
        assert len(tiles) <= 14 + 6 + (end - start).days // 28 + 2


def test_each_count_is_kept_on_its_day_its_part_and_its_month(users, session):
    referral = datetime(2026, 3, 19, 10, tzinfo=UTC)
    new_pathway(users["coordinator"], referral, diagnosis_category="metastatic_spinal")
    session.flush()
    kept = daily.stored(db.session.connection())
    referrals = {k[:2]: n for k, n in kept.items() if k[3] == "referral"}
    d = date.fromisoformat
    assert referrals == {
        (daily.DAY, d("2026-03-19")): 1,
        (daily.PART, d("2026-03-17")): 1,
        (daily.MONTH, d("2026-03-01")): 1,
    }


def test_verify_names_a_month_row_that_disagrees(users, session):
    new_pathway(users["coordinator"], datetime(2026, 3, 19, 10, tzinfo=UTC))
    session.flush()
    session.execute(
        update(ReportCount)
        .where(ReportCount.span == daily.MONTH, ReportCount.kind == "referral")
        .values(n=ReportCount.n + 2)
    )
    problems = [m for place, m in verify_all()[0] if place == "report counts"]
    assert len(problems) == 1
    assert problems[0].startswith("report_day_count month from 2026-03-01 ")
    assert ": kept 3, the pathways give 1 " in problems[0]


def test_a_clock_due_today_is_pending_before_its_hour_and_not_met_after(users, session):
    """The day rows keep a running clock's due hour: the hours before this one count as
    overdue, the later ones as pending, and this hour's clocks are read from their rows."""
    zone = local_zone()
    referral = datetime(2026, 3, 10, 14, 30, tzinfo=zone)  # MRI due the 11th at 14:30
    new_pathway(users["coordinator"], referral, urgency="emergency")
    session.flush()
    kept = kept_now()
    assert (
        [k[4] for k in kept if k[3] == "mscc_mri:running"]
        == [daily.due_hour(referral + timedelta(hours=24), zone)[1]]
        == [14]
    )
    f = figures.Filters(date(2026, 3, 1), date(2026, 3, 31))
    label = next(c.standard for c in figures.STANDARDS if c.code == "mscc_mri")
    for hour, minute, (not_met, pending) in (
        (9, 0, (0, 1)),  # an earlier hour: pending by the day rows
        (14, 10, (0, 1)),  # its hour, before it is due: from the clock's row
        (14, 45, (1, 0)),  # its hour, after
        (17, 0, (1, 0)),  # a later hour: overdue by the day rows
    ):
        now = datetime(2026, 3, 11, hour, minute, tzinfo=zone)
        by_day, by_row = (
            figures.build_from_counts(f, now, zone),
            figures.build_from_rows(f, now, zone),
        )
        assert by_day == by_row, now
        row = next(r for r in by_day.standards if r[0] == label)
        assert (row[2], row[3]) == (not_met, pending), now
