"""The reports' counts kept per part of a month and per month beside the day rows
(``report_day_count.span``, see tracker.engine.daily): a report reads the few spans that
tile its range instead of every day of it. The rows are derived: the table is made again
with the new key and recounted from the pathway, clock and fact rows, as the first
backfill did (``daily.rebuild``); the downgrade does the same with the day rows alone.
A running clock's rows now name the hour of its due day it is due (``bucket``), so that
only the clocks due in the current hour are read from their rows.

The indexes that pick the n-th wait of a bin for the medians gain the cohort's other
columns (``in_error``, ``team``), so that the pick reads the index alone.

Revision ID: 9d3c5e7f1a24
Revises: c41d7e2a9b58
Create Date: 2026-11-30 06:00:00

"""

from alembic import op
import sqlalchemy as sa

import tracker.core.db


# revision identifiers, used by Alembic.
revision = "9d3c5e7f1a24"
down_revision = "c41d7e2a9b58"
branch_labels = None
depends_on = None

_DT = tracker.core.db.UTCDateTime(timezone=True)
_PATHWAY = sa.table(
    "pathway",
    sa.column("id"),
    sa.column("team"),
    sa.column("in_error"),
    sa.column("state"),
    sa.column("referral_received_at", _DT),
    sa.column("days_to_decision"),
    sa.column("days_decision_to_treatment"),
    sa.column("days_to_treatment"),
)
_CLOCK = sa.table(
    "pathway_clock",
    sa.column("pathway_id"),
    sa.column("clock"),
    sa.column("status"),
    sa.column("started_at", _DT),
    sa.column("stopped_at", _DT),
    sa.column("due_at", _DT),
)
_FACT = sa.table(
    "pathway_fact",
    sa.column("pathway_id"),
    sa.column("seq"),
    sa.column("kind"),
    sa.column("code"),
    sa.column("occurred_at", _DT),
)
_KEY = ("day", "team", "kind", "code", "bucket", "since")
_WAITS = (
    ("ix_pathway_wait_decision", "days_to_decision"),
    ("ix_pathway_wait_treatment", "days_decision_to_treatment"),
    ("ix_pathway_wait_referral", "days_to_treatment"),
)


def _count_table(with_span: bool):
    columns = [sa.column("span", sa.SmallInteger)] if with_span else []
    return sa.table(
        "report_day_count",
        *columns,
        sa.column("day", sa.Date),
        sa.column("team"),
        sa.column("kind"),
        sa.column("code"),
        sa.column("bucket"),
        sa.column("since", sa.Date),
        sa.column("n"),
    )


def _make(with_span: bool) -> None:
    from tracker.engine import daily

    op.drop_table("report_day_count")
    span = [sa.Column("span", sa.SmallInteger(), autoincrement=False, nullable=False)]
    op.create_table(
        "report_day_count",
        *(span if with_span else []),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("team", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("code", sa.String(length=80), nullable=False),
        sa.Column("bucket", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("since", sa.Date(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            *(("span",) if with_span else ()), *_KEY, name=op.f("pk_report_day_count")
        ),
    )
    daily.rebuild(
        op.get_bind(), _count_table(with_span), pathway=_PATHWAY, clock=_CLOCK, fact=_FACT
    )


def _wait_indexes(*columns: str) -> None:
    for name, wait in _WAITS:
        op.drop_index(name, table_name="pathway")
        op.create_index(name, "pathway", [wait, "referral_received_at", *columns], unique=False)


def upgrade():
    _wait_indexes("in_error", "team")
    _make(with_span=True)


def downgrade():
    _wait_indexes()
    _make(with_span=False)
