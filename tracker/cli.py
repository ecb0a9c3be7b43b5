"""`flask tracker ...`: accounts, demo data, the consistency check, alerts and the worker."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click
from flask import Flask, current_app, url_for
from flask.cli import AppGroup
from flask_migrate import upgrade
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from tracker import jobs
from tracker.alerts.run import run_alerts
from tracker.api import services as tokens
from tracker.api.models import READ_WRITE, SCOPES
from tracker.audit.chain import log_chain_heads, pending_entries, seal_all, verify_chain
from tracker.audit.seals import broken_seals, reseal_row
from tracker.audit.services import acting_as, record, summarised
from tracker.backup import BackupError, age_recipients, backup_database
from tracker.core.clock import local_zone
from tracker.core.db import utcnow
from tracker.core.text import shown_safely
from tracker.demo import DEMO_PASSWORD, DEMO_USERS, seed
from tracker.engine import daily
from tracker.engine import services as engine
from tracker.engine import steps as d
from tracker.engine.derive import refresh_all
from tracker.engine.errors import InvalidData, RoleNotAllowed
from tracker.engine.models import Pathway
from tracker.engine.teams import codes as team_codes
from tracker.engine.verify import verify_all
from tracker.extensions import db
from tracker.mdt import services as mdt
from tracker.pathway.importer import import_file
from tracker.patients.services import wrong_mrn_keys
from tracker.teams.services import AccessError, set_teams
from tracker.users import resets, two_factor
from tracker.users import services as accounts
from tracker.users.models import User, user_named
from tracker.users.roles import ROLE_LABELS, ROLES
from tracker.users.services import UserError
from tracker.users.two_factor import parse_roles

tracker_cli = AppGroup("tracker", help="Care-pathway tracker administration.")


@tracker_cli.command("create-user")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--full-name", default="", help="Name shown in the app.")
@click.option(
    "--team",
    "team_codes",
    multiple=True,
    help="A team whose patients the user sees (repeat for several; see TEAMS).",
)
def create_user(username: str, role: str, full_name: str, team_codes: tuple[str, ...]) -> None:
    """Create a user; the password is prompted for, or read from standard input when piped."""
    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\n")
    try:
        user = accounts.create_user(
            username=username, role=role, password=password, full_name=full_name
        )
        set_teams(user, list(team_codes))
        db.session.commit()
    except (UserError, AccessError) as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from None
    seen = ", ".join(team_codes) if team_codes else "none: the user sees no patient (--team)"
    click.echo(f"Created {user.username} ({user.role_label}); teams: {seen}.")


@tracker_cli.command("create-meetings")
@click.option("--team", required=True, help="The team that meets (see TEAMS).")
@click.option("--weekday", required=True, type=click.Choice(mdt.WEEKDAYS))
@click.option("--time", "start_time", required=True, help="Local start time, HH:MM.")
@click.option("--weeks", default=8, show_default=True, help="How many weeks ahead.")
@click.option("--location", default="", help="The room.")
@click.option("--video-link", default="", help="https://... of the video meeting.")
@click.option("--chair", required=True, help="Username of the chair.")
@click.option("--user", "username", required=True, help="The care coordinator creating them.")
def create_meetings(team, weekday, start_time, weeks, location, video_link, chair, username):
    """Create weekly MDT meetings ahead from a template; a week that exists is skipped,
    so it can run daily (e.g. from cron) to keep the series ahead."""
    actor = user_named(username.strip().lower())
    if actor is None or not actor.active:
        raise click.ClickException(f"No active user is called '{username}'.")
    values = {
        "team": team,
        "start_time": start_time,
        "location": location,
        "video_link": video_link,
        "chair": chair,
    }
    today = utcnow().astimezone(local_zone()).date()
    with acting_as(actor):
        try:
            created, existing = mdt.create_series(values, weekday, weeks, actor, today)
            db.session.commit()
        except (InvalidData, RoleNotAllowed) as exc:
            db.session.rollback()
            raise click.ClickException(str(exc)) from None
    click.echo(f"Created {len(created)} meeting(s); {existing} already existed.")


@tracker_cli.command("create-token")
@click.argument("username")
@click.option("--name", default="API token", help="What the token is for.")
@click.option(
    "--scope",
    type=click.Choice(sorted(SCOPES)),
    default=READ_WRITE,
    show_default=True,
    help="read: GET only.",
)
@click.option("--days", type=int, help="Days it works (default and most: API_TOKEN_DAYS).")
def create_token(username: str, name: str, scope: str, days: int | None) -> None:
    """Create an API token for USERNAME and print it once (only its hash is kept)."""
    user = user_named(username.strip().lower())
    if user is None or not user.active:
        raise click.ClickException(f"No active user is called '{username}'.")
    try:
        token, plain = tokens.create_token(
            user, name, scope=scope, days=days, max_days=current_app.config["API_TOKEN_DAYS"]
        )
    except tokens.TokenError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from None
    db.session.commit()
    click.echo(plain)
    click.echo(
        f"Token for {user.username} ({scope}, until {token.expires_at:%Y-%m-%d %H:%M} UTC); "
        "it is shown only now. Revoke it from their account page.",
        err=True,
    )


@tracker_cli.command("reset-password")
@click.argument("username")
@click.option(
    "--base-url",
    default="",
    help="The tracker's address as users reach it, e.g. https://tracker.example.nhs.uk "
    "(default: the BASE_URL setting).",
)
def reset_password(username: str, base_url: str) -> None:
    """Print a one-time link for USERNAME to set a new password (hand it over; nothing is
    mailed). A newer link voids this one."""
    user = user_named(username.strip().lower())
    if user is None:
        raise click.ClickException(f"No user is called '{username}'.")
    hours = current_app.config["PASSWORD_RESET_HOURS"]
    try:
        _, plain = resets.issue(user, None, hours)
        db.session.commit()
    except UserError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from None
    base = (base_url or current_app.config.get("BASE_URL") or "").rstrip("/")
    with current_app.test_request_context(base_url=base or "http://localhost"):
        path = url_for("auth.reset_password", token=plain)
    click.echo(f"{base}{path}")
    click.echo(
        f"Reset link for {user.username}, shown only now: it works once, for {hours} hours."
        + ("" if base else " Put the tracker's address (or --base-url) before it."),
        err=True,
    )


@tracker_cli.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--user", "username", required=True, help="Who records the imported events.")
def import_csv(path: str, username: str) -> None:
    """Load historical pathways from a CSV file, one row per event; all or nothing."""
    actor = user_named(username.strip().lower())
    if actor is None or not actor.active:
        raise click.ClickException(f"No active user is called '{username}'.")

    def bar(length):
        return click.progressbar(length=length, label="Importing events", file=sys.stderr)

    # One audit entry for the whole import (who, which file, how many rows); each
    # event is in the chained event log with who recorded it. A refused file writes
    # nothing but an entry for the attempt, with the first reasons.
    name = Path(path).name
    with acting_as(actor):
        try:
            with summarised("import", file=name):
                result = import_file(path, actor, progress_factory=bar)
        except Exception as exc:
            _import_failed(name, 0, [f"the import stopped: {type(exc).__name__}"], 1)
            raise
        if result.errors:
            _import_failed(name, result.rows, _reasons(result.errors), result.refused)
    if result.errors:
        click.echo(
            f"Nothing was imported: {result.refused} "
            f"{'problem was' if result.refused == 1 else 'problems were'} found; put "
            f"{'it' if result.refused == 1 else 'each'} right and import the file again:",
            err=True,
        )
        for reason in _reasons(result.errors):
            click.echo(f"  {reason}", err=True)
        if result.refused > len(result.errors):
            click.echo(f"  and {result.refused - len(result.errors)} more", err=True)
        sys.exit(1)
    db.session.commit()
    seal_all()  # the import's audit entries, in the chain before the command ends
    click.echo(f"Imported {result.rows} events in {result.pathways} pathways.")


REASONS_AUDITED = 5  # reasons a refused import's audit entry keeps (the first ones)


def _reasons(errors: list[tuple[int, str]]) -> list[str]:
    return [shown_safely(f"row {number}: {message}") for number, message in errors]


def _import_failed(name: str, rows: int, reasons: list[str], refused: int) -> None:
    """Undo the import and write, in a transaction of its own, the entry of the attempt."""
    db.session.rollback()
    record(
        "import",
        outcome="failure",
        detail={
            "file": name,
            "rows": rows,
            "refused": refused,
            "reasons": [reason[:300] for reason in reasons[:REASONS_AUDITED]],
        },
    )
    db.session.commit()


@tracker_cli.command("seed-demo")
@click.option("--pathways", default=60, show_default=True, type=click.IntRange(1, 1_000_000))
@click.option("--seed", "seed_value", default=7, show_default=True)
def seed_demo(pathways: int, seed_value: int) -> None:
    """Create the demo users and demo pathways spread over every state."""
    validate_every = 1 if pathways <= 2000 else 50
    with click.progressbar(length=pathways, label="Seeding pathways", file=sys.stderr) as bar:
        seed(pathways, seed_value=seed_value, validate_every=validate_every, progress=bar.update)
    db.session.commit()
    seal_all()  # the demo's audit entries, in the chain before the command ends
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
    ignores its indexes until autovacuum gets to it. On PostgreSQL the tables are
    vacuumed too (VACUUM runs outside a transaction): their visibility map lets an
    index-only scan (the reports' median picks) skip the table, which a freshly
    loaded table does not until autovacuum has visited it. ANALYZE alone on SQLite.
    """
    if db.engine.dialect.name == "postgresql":
        db.session.close()
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text("VACUUM (ANALYZE)"))
        return
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
    _demo_meetings()


# The demo's weekly MDT meetings, one series per team, for an MDT coordinator to prepare.
DEMO_MEETINGS = (
    ("spine", "tuesday", "08:00", "Spinal MDT room, level 3"),
    ("metastatic", "wednesday", "08:00", "Oncology seminar room"),
    ("bone_sarcoma", "thursday", "13:00", "Sarcoma unit meeting room"),
)


# The clinical questions the demo's cases are listed with, in turn.
DEMO_QUESTIONS = (
    "Imaging and biopsy reviewed: surgery, radiotherapy or both?",
    "Is the spine unstable (SINS), and is decompression indicated?",
    "Histology confirmed: agree the first treatment and its timing",
)


def _demo_meetings() -> None:
    """Six weeks of weekly MDT meetings for each demo team (of the configured teams),
    created by the demo coordinator and chaired by the demo surgeon; and the demo's
    pathways awaiting their MDT listed on the first meeting of their team whose list is
    still open, each through the listing step, as a coordinator would."""
    actor = user_named("coordinator")
    now = utcnow()
    today = now.astimezone(local_zone()).date()
    meetings = []
    with acting_as(actor):
        for team, weekday, start_time, location in DEMO_MEETINGS:
            if team not in team_codes():
                continue
            values = {
                "team": team,
                "start_time": start_time,
                "location": location,
                "video_link": "",
                "chair": "surgeon",
            }
            meetings += mdt.create_series(values, weekday, 6, actor, today)[0]
        listed = _list_demo_cases(meetings, actor, now)
        db.session.commit()
    click.echo(
        f"Created {len(meetings)} demo MDT meetings (weekly, six weeks ahead, one series "
        f"per team), {listed} cases listed on them."
    )


def _list_demo_cases(meetings, actor, now) -> int:
    first_open: dict[str, object] = {}
    for meeting in sorted(meetings, key=mdt.starts_at):
        if mdt.closes_at(meeting) > now:
            first_open.setdefault(meeting.team, meeting)
    awaiting = db.session.scalars(
        select(Pathway)
        .where(
            Pathway.state.in_(d.entry(mdt.LISTING).ways[0].sources),
            Pathway.closed_at.is_(None),
            Pathway.team.in_(first_open),
        )
        .order_by(Pathway.id)
    ).all()
    for i, pathway in enumerate(awaiting):
        data = {
            "meeting_id": first_open[pathway.team].id,
            "question": DEMO_QUESTIONS[i % len(DEMO_QUESTIONS)],
            "presenter": "surgeon",
            "triage": "standard_of_care" if i % 4 == 3 else "full_discussion",
        }
        request_id = engine.new_request_id()
        engine.record(pathway, mdt.LISTING, data, now, actor, pathway.version, request_id, now=now)
    return len(awaiting)


@tracker_cli.command("reset-demo")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def reset_demo(ctx: click.Context, yes: bool) -> None:
    """Drop every table of the development database, migrate again and seed the demo
    (used by `make demo-reset`). Refused by any configuration but development."""
    if not current_app.config.get("DEMO_RESET_ALLOWED"):
        raise click.ClickException(
            "reset-demo drops every table, so it runs only with the development "
            "configuration (TRACKER_ENV=development, as `make demo-reset` sets it)."
        )
    where = db.engine.url.render_as_string(hide_password=True)
    if not yes:
        click.confirm(f"Drop all data in {where} and seed the demo again?", abort=True)
    _drop_everything()
    upgrade()
    ctx.invoke(seed_demo, pathways=60, seed_value=7)
    _demo_meetings()


def _drop_everything() -> None:
    """Every table, view, trigger and function, as a new database has none."""
    db.session.remove()
    engine = db.engine
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    else:
        # pysqlite's own connection: the pragma applies only outside a transaction.
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("PRAGMA foreign_keys = OFF")
            cursor.execute("SELECT type, name FROM sqlite_master WHERE type IN ('table', 'view')")
            for kind, name in cursor.fetchall():
                if not name.startswith("sqlite_"):
                    cursor.execute(f'DROP {kind.upper()} IF EXISTS "{name}"')
            raw.commit()
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            raw.close()
    engine.dispose()


@tracker_cli.command("reset-two-factor")
@click.argument("username")
def reset_two_factor(username: str) -> None:
    """Remove USERNAME's second factor and recovery codes (a lost phone, and no other
    administrator to reset it in the app); they set it up again at their next login."""
    user = user_named(username.strip().lower())
    if user is None:
        raise click.ClickException(f"No user is called '{username}'.")
    two_factor.reset(user)
    record("two_factor_reset", detail={"username": user.username})
    db.session.commit()
    click.echo(f"Reset {user.username}'s two-factor login; their sessions have ended.")


@tracker_cli.command("seal-audit")
def seal_audit() -> None:
    """Link the audit entries awaiting their place into the audit chain now (the servers
    do it after their requests, the worker every minute)."""
    linked = seal_all()
    click.echo(f"Linked {linked} audit entries into the chain.")


@tracker_cli.command("verify")
def verify() -> None:
    """Check the hash chains of the event and audit logs (naming the first broken link),
    the seals of every patient and user row, and every pathway's state, seq and version
    against its events; exit 1 if any is off. Each chain's head goes to the app's log."""

    failed = False
    for chain, what in (("event", "events"), ("audit", "audit entries")):
        broken, checked = verify_chain(chain)
        if broken:
            click.echo(str(broken), err=True)
            failed = True
        else:
            click.echo(f"The {chain} chain is intact: {checked} {what}.")
    pending = pending_entries()
    if pending.altered:
        click.echo(
            f"{len(pending.altered)} audit entries awaiting their place in the chain do not "
            "match their own hash (changed in the database after they were written): ids "
            + ", ".join(map(str, pending.altered[:20])),
            err=True,
        )
        failed = True
    if pending.count:
        click.echo(
            f"{pending.count} audit entries await their place in the chain (the oldest "
            f"written {pending.oldest:%Y-%m-%d %H:%M:%S} UTC): the servers link them after "
            "their requests and the worker every minute; `flask tracker seal-audit` links "
            "them now."
        )
    for line in log_chain_heads(current_app, db.session):
        click.echo(line)
    unsealed = broken_seals(db.session)
    if unsealed:
        click.echo(
            f"{len(unsealed)} rows do not match their seal (changed outside the app, or "
            "sealed with another key):",
            err=True,
        )
        for table, row_id in unsealed:
            click.echo(f"  {table} {row_id}", err=True)
        failed = True
    else:
        click.echo("Every patient and user row matches its seal.")
    misfiled = wrong_mrn_keys(db.session)
    if misfiled:
        click.echo(
            f"{len(misfiled)} patients' MRN lookup key is not their MRN's (changed outside "
            "the app; lookups by MRN find the wrong patient):",
            err=True,
        )
        for patient_id in misfiled:
            click.echo(f"  patient {patient_id}", err=True)
        failed = True
    else:
        click.echo("Every patient's MRN lookup key matches their MRN.")
    problems, checked = verify_all()
    if problems:
        click.echo(f"{len(problems)} of {checked} pathways are inconsistent:", err=True)
        for pathway_id, message in problems:
            where = (
                {"counts": "state counts"}.get(pathway_id, pathway_id)
                if isinstance(pathway_id, str)
                else f"pathway {pathway_id}"
            )
            click.echo(f"  {where}: {message}", err=True)
        failed = True
    else:
        click.echo(f"All {checked} pathways are consistent with their events.")
    listed = mdt.case_problems()
    if listed:
        click.echo(f"{len(listed)} MDT cases disagree with their listing steps:", err=True)
        for line in listed:
            click.echo(f"  {line}", err=True)
        failed = True
    else:
        click.echo("Every MDT case agrees with its listing step.")
    if failed:
        sys.exit(1)


@tracker_cli.command("reseal")
@click.argument("table", type=click.Choice(["patient", "user"]))
@click.argument("row_id", type=int)
def reseal(table: str, row_id: int) -> None:
    """Seal one row named by verify again, as it is stored now: only after checking that
    its values are right (the audit log's seal_mismatch entries name such rows; the app
    never seals them again by itself). Audited."""
    try:
        reseal_row(db.session, table, row_id)
        record(
            "reseal",
            patient_id=row_id if table == "patient" else None,
            detail={"table": table, "id": row_id},
        )
        db.session.commit()
    except LookupError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from None
    click.echo(f"Sealed {table} {row_id} again, as it is stored now.")


@tracker_cli.command("log-chain-heads")
def log_heads() -> None:
    """Write each hash chain's name, length and head hash to the app's log (run daily from
    cron or a systemd timer, the log shipped off the server): a later head shorter than a
    logged one shows rows removed from the end of a chain."""
    for line in log_chain_heads(current_app, db.session):
        click.echo(line)
    db.session.rollback()


@tracker_cli.command("refresh-targets")
def refresh_targets() -> None:
    """Derive every pathway's targets and clocks again, after the limits in configuration
    change."""
    count = refresh_all(db.session, utcnow())
    # The reports' day rows, recounted (their days follow TIMEZONE, which may have changed).
    rows = daily.rebuild(db.session.connection())
    db.session.commit()
    click.echo(f"Refreshed the targets and clocks of {count} pathways ({rows} report rows).")


@tracker_cli.command("backup")
@click.argument("path", type=click.Path(dir_okay=False, writable=True))
@click.option("--force", is_flag=True, help="Replace PATH if it exists.")
@click.option(
    "--plaintext", is_flag=True, help="Write an unencrypted copy (patient data in the clear)."
)
def backup(path: str, force: bool, plaintext: bool) -> None:
    """Copy the database to PATH while the app runs (SQLite's backup API, or pg_dump),
    encrypted with age to BACKUP_AGE_RECIPIENTS; audited, whatever the outcome."""
    target = str(Path(path).absolute())
    detail = {"target": target, "encrypted": not plaintext, "backend": db.engine.dialect.name}
    try:
        setting = current_app.config["BACKUP_AGE_RECIPIENTS"]
        recipients = [] if plaintext else age_recipients(setting)
        detail["recipients"] = len(recipients)
        result = backup_database(
            db.engine.url, Path(path), force=force, recipients=recipients, plaintext=plaintext
        )
    except BackupError as exc:
        unaudited = _audit_backup("failed", {**detail, "error": str(exc).splitlines()[0]})
        raise click.ClickException(str(exc) + unaudited) from None
    unaudited = _audit_backup("ok", {**detail, "bytes": result.size})
    click.echo(result.summary())
    if unaudited:
        raise click.ClickException(f"The backup was made, but{unaudited}")


def _audit_backup(outcome: str, detail: dict) -> str:
    """The backup's audit entry, in a transaction of its own (after the copy is taken);
    if the database cannot take it, a sentence saying so (else '')."""
    db.session.rollback()
    try:
        record("backup", outcome=outcome, detail=detail)
        db.session.commit()
    except SQLAlchemyError as exc:
        db.session.rollback()
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        return f"\n(This backup could not be written to the audit log: {reason}.)"
    return ""


@tracker_cli.command("send-alerts")
@click.option(
    "--now",
    "ignore_schedule",
    is_flag=True,
    help="Email every alert not yet emailed, without waiting for the daily digest time "
    "(quiet hours still hold email back).",
)
def send_alerts(ignore_schedule: bool) -> None:
    """Evaluate the alert rules once and email what is due, as the worker does every few
    minutes. Safe to run at any time: nothing is raised or emailed twice."""
    result = run_alerts(utcnow(), ignore_schedule=ignore_schedule)
    click.echo(result.summary())
    if result.failed:
        raise SystemExit(1)


@tracker_cli.command("worker")
@click.option("--workers", default=2, show_default=True, help="Jobs run at once (threads).")
@click.option(
    "--no-periodic",
    is_flag=True,
    help="Run queued jobs only, not the periodic ones: for every worker but one when "
    "several share a Redis queue.",
)
def worker(workers: int, no_periodic: bool) -> None:
    """Run the background worker (Huey) until stopped: the alerts every
    ALERT_EVERY_MINUTES. Its queue: HUEY_REDIS_URL, else HUEY_SQLITE_PATH."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    app = current_app._get_current_object()
    where = app.config["HUEY_REDIS_URL"] or app.config["HUEY_SQLITE_PATH"]
    click.echo(f"worker: queue {app.config['HUEY_NAME']!r} in {where}", err=True)
    if app.config["MAIL_SERVER"]:
        click.echo(f"worker: mail through {app.config['MAIL_SERVER']}", err=True)
    else:
        click.echo(
            f"worker: MAIL_SERVER is not set, mail is written to {app.config['MAIL_FILE_PATH']} "
            "as .eml files and not sent",
            err=True,
        )
    jobs.consumer(app, workers=workers, periodic=not no_periodic).run()


def init_app(app: Flask) -> None:
    app.cli.add_command(tracker_cli)
