"""`flask tracker ...`: accounts, demo data and the consistency check."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import func, select, text

from tracker.api import services as tokens
from tracker.audit.chain import verify_chain
from tracker.audit.services import acting_as, record, summarised
from tracker.backup import BackupError, backup_database
from tracker.core.db import utcnow
from tracker.demo import DEMO_PASSWORD, DEMO_USERS, seed
from tracker.engine.derive import refresh_all
from tracker.engine.verify import verify_all
from tracker.extensions import db
from tracker.pathway.importer import import_file
from tracker.users import services as accounts
from tracker.users import two_factor
from tracker.users.models import User
from tracker.users.roles import ROLE_LABELS, ROLES
from tracker.users.services import UserError
from tracker.users.two_factor import parse_roles

tracker_cli = AppGroup("tracker", help="Care-pathway tracker administration.")


@tracker_cli.command("create-user")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--full-name", default="", help="Name shown in the app.")
def create_user(username: str, role: str, full_name: str) -> None:
    """Create a user; the password is prompted for, or read from standard input when piped."""
    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\n")
    try:
        user = accounts.create_user(
            username=username, role=role, password=password, full_name=full_name
        )
        db.session.commit()
    except UserError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from None
    click.echo(f"Created {user.username} ({user.role_label}).")


@tracker_cli.command("create-token")
@click.argument("username")
@click.option("--name", default="API token", help="What the token is for.")
def create_token(username: str, name: str) -> None:
    """Create an API token for USERNAME and print it once (only its hash is kept)."""
    user = db.session.scalar(select(User).where(User.username == username.strip().lower()))
    if user is None or not user.active:
        raise click.ClickException(f"No active user is called '{username}'.")
    _, plain = tokens.create_token(user, name)
    db.session.commit()
    click.echo(plain)
    click.echo(
        f"Token for {user.username}; it is shown only now. Revoke it from their account page.",
        err=True,
    )


@tracker_cli.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--user", "username", required=True, help="Who records the imported events.")
def import_csv(path: str, username: str) -> None:
    """Load historical pathways from a CSV file, one row per event; all or nothing."""
    actor = db.session.scalar(select(User).where(User.username == username.strip().lower()))
    if actor is None or not actor.active:
        raise click.ClickException(f"No active user is called '{username}'.")

    def bar(length):
        return click.progressbar(length=length, label="Importing events", file=sys.stderr)

    # One audit entry for the whole import (who, which file, how many rows); each
    # event is in the chained event log with who recorded it.
    with acting_as(actor), summarised("import", file=Path(path).name):
        result = import_file(path, actor, progress_factory=bar)
    if result.errors:
        db.session.rollback()
        click.echo(f"Nothing was imported: {len(result.errors)} rows were refused.", err=True)
        for number, message in result.errors:
            click.echo(f"  row {number}: {message}", err=True)
        sys.exit(1)
    db.session.commit()
    click.echo(f"Imported {result.rows} events in {result.pathways} pathways.")


@tracker_cli.command("seed-demo")
@click.option("--pathways", default=60, show_default=True, type=click.IntRange(1, 1_000_000))
@click.option("--seed", "seed_value", default=7, show_default=True)
def seed_demo(pathways: int, seed_value: int) -> None:
    """Create the demo users and demo pathways spread over every state."""
    validate_every = 1 if pathways <= 2000 else 50
    with click.progressbar(length=pathways, label="Seeding pathways", file=sys.stderr) as bar:
        seed(pathways, seed_value=seed_value, validate_every=validate_every, progress=bar.update)
    db.session.commit()
    _analyze()
    click.echo(f"Seeded {pathways} demo pathways. Demo logins (password {DEMO_PASSWORD}):")
    for username, role, _ in DEMO_USERS:
        click.echo(f"  {username:<14} {ROLE_LABELS[role]}")
    required = parse_roles(current_app.config["TOTP_REQUIRED_ROLES"])
    if required:
        names = ", ".join(ROLE_LABELS[r].lower() for r in ROLES if r in required)
        click.echo(
            f"Two-factor login is required for: {names}. They set it up at their first "
            "login with an authenticator app (the page shows a QR code and the key as text)."
        )


def _analyze() -> None:
    """Refresh the planner's statistics after a bulk load, as a DBA would.

    Without them PostgreSQL plans a freshly loaded table as if it were empty and
    ignores its indexes until autovacuum gets to it. ANALYZE runs inside a
    transaction on both backends.
    """

    db.session.execute(text("ANALYZE"))
    db.session.commit()


@tracker_cli.command("ensure-demo")
@click.pass_context
def ensure_demo(ctx: click.Context) -> None:
    """Seed demo data only if the database has no users yet (used by `make run`)."""
    if db.session.scalar(select(func.count(User.id))):
        click.echo("Database already has users; demo data not added.")
        return
    ctx.invoke(seed_demo, pathways=60, seed_value=7)


@tracker_cli.command("reset-two-factor")
@click.argument("username")
def reset_two_factor(username: str) -> None:
    """Remove USERNAME's second factor and recovery codes (a lost phone, and no other
    administrator to reset it in the app); they set it up again at their next login."""
    user = db.session.scalar(select(User).where(User.username == username.strip().lower()))
    if user is None:
        raise click.ClickException(f"No user is called '{username}'.")
    two_factor.reset(user)
    record("two_factor_reset", detail={"username": user.username})
    db.session.commit()
    click.echo(f"Reset {user.username}'s two-factor login; their sessions have ended.")


@tracker_cli.command("verify")
def verify() -> None:
    """Check the hash chains of the event and audit logs (naming the first broken link),
    and every pathway's state, seq and version against its events; exit 1 if any is off."""

    failed = False
    for chain, what in (("event", "events"), ("audit", "audit entries")):
        broken, checked = verify_chain(chain)
        if broken:
            click.echo(str(broken), err=True)
            failed = True
        else:
            click.echo(f"The {chain} chain is intact: {checked} {what}.")
    problems, checked = verify_all()
    if problems:
        click.echo(f"{len(problems)} of {checked} pathways are inconsistent:", err=True)
        for pathway_id, message in problems:
            where = "state counts" if pathway_id == "counts" else f"pathway {pathway_id}"
            click.echo(f"  {where}: {message}", err=True)
        failed = True
    else:
        click.echo(f"All {checked} pathways are consistent with their events.")
    if failed:
        sys.exit(1)


@tracker_cli.command("refresh-targets")
def refresh_targets() -> None:
    """Derive every pathway's targets and clocks again, after the limits in configuration
    change."""
    count = refresh_all(db.session, utcnow())
    db.session.commit()
    click.echo(f"Refreshed the targets and clocks of {count} pathways.")


@tracker_cli.command("backup")
@click.argument("path", type=click.Path(dir_okay=False, writable=True))
@click.option("--force", is_flag=True, help="Replace PATH if it exists.")
def backup(path: str, force: bool) -> None:
    """Copy the SQLite database to PATH while the app runs (on PostgreSQL: use pg_dump)."""

    try:
        result = backup_database(db.engine.url, Path(path), force=force)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(result.summary())


def init_app(app: Flask) -> None:
    app.cli.add_command(tracker_cli)
