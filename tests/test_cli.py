"""`flask tracker ...`: create-user, seed-demo, verify, refresh-targets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, text

from tracker.engine import steps as d
from tracker.engine.models import Event, Pathway
from tracker.extensions import db
from tracker.mdt import services as mdt
from tracker.mdt.models import MdtCase, MdtMeeting
from tracker.users.models import User
from tracker.users.passwords import check_password


def test_create_user_reads_the_password_from_stdin(runner, session):
    result = runner.invoke(
        args=["tracker", "create-user", "Jsmith", "--role", "surgeon"],
        input="a-long-enough-password\n",
    )
    assert result.exit_code == 0, result.output
    user = session.scalar(select(User).where(User.username == "jsmith"))
    assert user.role == "surgeon" and check_password(user, "a-long-enough-password")
    again = runner.invoke(
        args=["tracker", "create-user", "jsmith", "--role", "viewer"],
        input="a-long-enough-password\n",
    )
    assert again.exit_code == 1 and "already taken" in again.output
    short = runner.invoke(
        args=["tracker", "create-user", "kim", "--role", "viewer"], input="short\n"
    )
    assert short.exit_code == 1 and "12 to 128 characters" in short.output
    bad_role = runner.invoke(
        args=["tracker", "create-user", "kim", "--role", "nurse"], input="a-long-enough-password\n"
    )
    assert bad_role.exit_code == 2


def test_seed_demo_spreads_over_every_state_and_verifies(runner, session):
    result = runner.invoke(args=["tracker", "seed-demo", "--pathways", "400"])
    assert result.exit_code == 0, result.output
    assert "coordinator" in result.output and "demo-password-123" in result.output
    states = dict(
        session.execute(select(Pathway.state, func.count()).group_by(Pathway.state)).all()
    )
    assert set(states) == set(d.STATES), states
    triggers = set(session.scalars(select(Event.trigger).distinct()))
    assert {
        "suspect_recurrence",
        "record_complication",
        "amend_event",
        "void_last_step",
    } <= triggers
    assert session.scalar(select(func.count()).where(Pathway.next_target_due_at < func.now()))
    verify = runner.invoke(args=["tracker", "verify"])
    assert verify.exit_code == 0, verify.output
    assert "All 400 pathways are consistent" in verify.output
    # The bulk load leaves the planner's statistics (and on PostgreSQL the visibility map
    # the index-only scans need) as a DBA would.
    if session.get_bind().dialect.name == "postgresql":
        vacuumed, analyzed = session.execute(
            text(
                "SELECT last_vacuum IS NOT NULL, last_analyze IS NOT NULL "
                "FROM pg_stat_user_tables WHERE relname = 'pathway'"
            )
        ).one()
        assert vacuumed and analyzed
    else:
        assert session.scalar(text("SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'pathway'"))


def test_verify_names_each_bad_pathway(runner, session, users):
    from tests.helpers import driver

    good = driver(users)
    good.fire("request_imaging")
    bad = driver(users)
    bad.fire("request_imaging")
    session.flush()
    # Bypass the services, as a careless script would.
    session.execute(
        text("UPDATE pathway SET state = 'surveillance' WHERE id = :id"), {"id": bad.pathway.id}
    )
    session.execute(text("UPDATE pathway SET version = 7 WHERE id = :id"), {"id": good.pathway.id})
    session.expire_all()
    result = runner.invoke(args=["tracker", "verify"])
    assert result.exit_code == 1
    assert (
        f"pathway {bad.pathway.id}: state is surveillance but the events lead to imaging"
        in result.output
    )
    assert f"pathway {good.pathway.id}: version is 7 but 2 events are recorded" in result.output


def test_refresh_targets_after_limits_change(app, runner, session, users):
    from tests.helpers import driver

    run = driver(users, urgency="urgent")
    session.commit()
    assert run.pathway.next_target == "spinal_mets_mri"
    app.config["TARGET_LIMITS"] = "spinal_mets_mri=100000"
    try:
        result = runner.invoke(args=["tracker", "refresh-targets"])
        assert result.exit_code == 0, result.output
        session.expire_all()
        pathway = db.session.get(Pathway, run.pathway.id)
        assert pathway.next_target == "fds_28"  # now the earliest open target
    finally:
        app.config["TARGET_LIMITS"] = ""


def test_reset_password_prints_a_working_link(app, runner, session, users):
    from tracker.users.models import WebSession

    session.commit()
    result = runner.invoke(args=["tracker", "reset-password", "Surgeon"])
    assert result.exit_code == 0, result.output
    link = result.stdout.strip()
    assert link.startswith("/password-reset/") and "\n" not in link
    assert "works once, for 24 hours" in result.stderr
    client = app.test_client()
    assert client.get(link).status_code == 200
    new = "a much longer passphrase here"
    assert client.post(link, data={"new": new, "confirm": new}).status_code == 302
    session.expire_all()
    assert check_password(session.get(User, users["surgeon"].id), new)
    assert not session.scalars(
        select(WebSession).where(WebSession.user_id == users["surgeon"].id)
    ).all()
    assert client.get(link).status_code == 410
    # With the address users reach the tracker at; a newer link voids the older.
    first = runner.invoke(args=["tracker", "reset-password", "viewer"]).stdout.strip()
    second = runner.invoke(
        args=["tracker", "reset-password", "viewer", "--base-url", "https://tracker.example/"]
    ).stdout.strip()
    assert second.startswith("https://tracker.example/password-reset/")
    assert client.get(first).status_code == 410
    assert client.get(second.removeprefix("https://tracker.example")).status_code == 200
    unknown = runner.invoke(args=["tracker", "reset-password", "nobody"])
    assert unknown.exit_code == 1 and "No user is called 'nobody'" in unknown.output


def test_create_token_with_a_scope_and_a_life(app, runner, session, users):
    from tracker.api.models import ApiToken

    session.commit()
    result = runner.invoke(
        args=["tracker", "create-token", "viewer", "--scope", "read", "--days", "3"]
    )
    assert result.exit_code == 0, result.output
    token = session.scalar(select(ApiToken).where(ApiToken.user_id == users["viewer"].id))
    assert token.scope == "read" and token.expires_at - token.created_at == timedelta(days=3)
    too_long = runner.invoke(args=["tracker", "create-token", "viewer", "--days", "365"])
    assert too_long.exit_code == 1 and "1 to 90 days" in too_long.output


def test_reset_demo_empties_the_database_and_seeds_the_demo_again(scratch_url):
    """`make demo-reset`: whatever was there is gone, the schema is migrated again and
    the demo seeded; a configuration without DEMO_RESET_ALLOWED (production) refuses."""
    from flask_migrate import upgrade

    from tests.conftest import make_app
    from tests.helpers import make_user, make_users, new_pathway

    app = make_app(scratch_url, DEMO_RESET_ALLOWED=True)
    try:
        with app.app_context():
            upgrade()
            users = make_users()
            make_user("leftover", "viewer")
            new_pathway(users["coordinator"])
            db.session.commit()
            db.session.remove()
        result = app.test_cli_runner().invoke(args=["tracker", "reset-demo", "--yes"])
        now = datetime.now(UTC)
        assert result.exit_code == 0, result.output
        assert "Seeded 60 demo pathways" in result.output
        with app.app_context():
            names = set(db.session.scalars(select(User.username)))
            assert "coordinator" in names and "leftover" not in names
            assert db.session.scalar(select(func.count(Pathway.id))) == 60
            # Weekly MDT meetings of each team, six weeks ahead, for a coordinator to prepare.
            meetings = db.session.scalars(select(MdtMeeting)).all()
            assert "Created 18 demo MDT meetings" in result.output
            assert sorted({m.team for m in meetings}) == ["bone_sarcoma", "metastatic", "spine"]
            assert len(meetings) == 18 and all(m.chair.username == "surgeon" for m in meetings)
            today = datetime.now(UTC).date()
            assert all(today <= m.meeting_date <= today + timedelta(days=43) for m in meetings)
            # The pathways awaiting their MDT are listed, each on its team's first meeting
            # whose list is open, through the listing step (on the timeline).
            cases = db.session.scalars(select(MdtCase)).all()
            open_in_review = (Pathway.state == "mdt_review", Pathway.closed_at.is_(None))
            awaiting = db.session.scalar(select(func.count()).where(*open_in_review))
            assert cases and len(cases) == awaiting
            assert f"{len(cases)} cases listed on them" in result.output
            for case in cases:
                assert case.meeting.team == case.pathway.team
                assert case.event.trigger == "schedule_mdt" and case.question and case.presenter
                first = min(
                    (m for m in meetings if m.team == case.pathway.team and mdt.closes_at(m) > now),
                    key=mdt.starts_at,
                )
                assert case.meeting_id == first.id
            verify = app.test_cli_runner().invoke(args=["tracker", "verify"])
            assert verify.exit_code == 0, verify.output
            db.session.remove()
    finally:
        with app.app_context():
            db.engine.dispose()

    refused = make_app(scratch_url)
    try:
        result = refused.test_cli_runner().invoke(args=["tracker", "reset-demo", "--yes"])
        assert result.exit_code == 1 and "only with the development" in result.output
        with refused.app_context():
            assert db.session.scalar(select(func.count(Pathway.id))) == 60
            db.session.remove()
    finally:
        with refused.app_context():
            db.engine.dispose()


def test_make_run_takes_port_and_host_and_demo_reset_resets(tmp_path):
    """`make run PORT=8000 HOST=0.0.0.0` serves there; plain `make run` as before."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]

    def planned(*args):
        done = subprocess.run(
            ["make", "-n", "-C", str(root), *args], capture_output=True, text=True, check=True
        )
        return done.stdout

    assert "flask run --host 0.0.0.0 --port 8000" in planned("run", "PORT=8000", "HOST=0.0.0.0")
    assert "flask run --host 127.0.0.1 --port 5000" in planned("run")
    assert "flask tracker reset-demo --yes" in planned("demo-reset")
