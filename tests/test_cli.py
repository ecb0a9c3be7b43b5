"""`flask tracker ...`: create-user, seed-demo, verify, refresh-targets."""

from __future__ import annotations

from sqlalchemy import func, select, text

from tracker.engine import steps as d
from tracker.engine.models import Event, Pathway
from tracker.extensions import db
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
