"""The reports' figures kept per local day and team (``report_day_count``, see
tracker.engine.daily), recounted here from the pathway, clock and fact rows; and the
indexes that pick the n-th wait of a whole-day bin for the reports' medians.

Revision ID: 6ef40d5c75bc
Revises: b7e1f4a9c2d6
Create Date: 2026-11-29 19:40:00

"""

from alembic import op
import sqlalchemy as sa

import tracker.core.db


# revision identifiers, used by Alembic.
revision = "6ef40d5c75bc"
down_revision = "b7e1f4a9c2d6"
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
_COUNT = sa.table(
    "report_day_count",
    sa.column("day", sa.Date),
    sa.column("team"),
    sa.column("kind"),
    sa.column("code"),
    sa.column("bucket"),
    sa.column("since", sa.Date),
    sa.column("n"),
)
_WAITS = (
    ("ix_pathway_wait_decision", "days_to_decision"),
    ("ix_pathway_wait_treatment", "days_decision_to_treatment"),
    ("ix_pathway_wait_referral", "days_to_treatment"),
)


def upgrade():
    from tracker.engine import daily

    op.create_table(
        "report_day_count",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("team", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("code", sa.String(length=80), nullable=False),
        sa.Column("bucket", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("since", sa.Date(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "day", "team", "kind", "code", "bucket", "since", name=op.f("pk_report_day_count")
        ),
    )
    for name, column in _WAITS:
        op.create_index(name, "pathway", [column, "referral_received_at"], unique=False)
    daily.rebuild(op.get_bind(), _COUNT, pathway=_PATHWAY, clock=_CLOCK, fact=_FACT)


def downgrade():
    for name, _ in _WAITS:
        op.drop_index(name, table_name="pathway")
    op.drop_table("report_day_count")
