"""Waiting times as the national rules count them: the clocks of PATHWAY.md (mscc_mri,
mscc_plan, mscc_radiotherapy, mscc_surgery, spinal_mets_mri, fds_28, dtt_31,
subsequent_31, rtt_62, follow_up) replace the earlier ones, counted in calendar days or
to the minute. Each clock row also keeps its episode's referral priority and the step
that stopped it (the monthly return reads both).

Every pathway is derived again with the engine's derivation, so the stored clock rows
carry the new codes from the first request on. A TARGET_LIMITS setting in the old
'urgency.target=hours' form must be rewritten as 'clock=limit' (README, Configuration).

Revision ID: 5d0c7e21a9f4
Revises: 1bf8cad02790
Create Date: 2026-11-29 14:10:00

"""
from alembic import op
import sqlalchemy as sa

import tracker.core.db


# revision identifiers, used by Alembic.
revision = '5d0c7e21a9f4'
down_revision = '1bf8cad02790'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('pathway_clock', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('priority', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('stop_seq', sa.Integer(), nullable=True))
    from tracker.engine.backfill import derive_again

    derive_again(op.get_bind(), _PATHWAY, _EVENT, _CLOCK, _FACT)


# The tables as this revision leaves them.
_DT = tracker.core.db.UTCDateTime(timezone=True)
_PATHWAY = sa.table(
    "pathway",
    sa.column("id"), sa.column("urgency"), sa.column("state"),
    sa.column("referral_received_at", _DT), sa.column("closed_at", _DT),
    sa.column("recurrence_count"), sa.column("state_entered_at", _DT), sa.column("last_seq"),
    sa.column("next_target"), sa.column("next_target_due_at", _DT),
    sa.column("next_target_warn_at", _DT), sa.column("next_target_sort", _DT),
    sa.column("first_imaging_at", _DT), sa.column("first_decision_at", _DT),
    sa.column("first_treatment_at", _DT), sa.column("days_to_decision"),
    sa.column("days_decision_to_treatment"), sa.column("days_to_treatment"),
    sa.column("referral_priority"), sa.column("in_error"), sa.column("unreviewed_steps"),
)
_EVENT = sa.table(
    "event",
    sa.column("id"), sa.column("pathway_id"), sa.column("seq"), sa.column("trigger"),
    sa.column("from_state"), sa.column("to_state"), sa.column("occurred_at", _DT),
    sa.column("recorded_at", _DT), sa.column("recorded_by_id"),
    sa.column("data", tracker.core.db.JSONType), sa.column("amends_event_id"),
    sa.column("voids_event_id"),
)
_CLOCK = sa.table(
    "pathway_clock",
    sa.column("pathway_id"), sa.column("episode"), sa.column("clock"),
    sa.column("started_at", _DT), sa.column("stopped_at", _DT), sa.column("due_at", _DT),
    sa.column("warn_at", _DT), sa.column("adjustment_days"), sa.column("status"),
    sa.column("wait"), sa.column("priority"), sa.column("stop_seq"),
)
_FACT = sa.table(
    "pathway_fact",
    sa.column("pathway_id"), sa.column("seq"), sa.column("kind"), sa.column("code"),
    sa.column("occurred_at", _DT),
)


def downgrade():
    with op.batch_alter_table('pathway_clock', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('stop_seq')
        batch_op.drop_column('priority')
