"""Recording as it happens: the referral's waiting-time route (referral_priority), the
patient's NHS number and GP practice, and two derived pathway columns: ``in_error`` (withdrawn
as opened in error, left out of every count and report) and ``unreviewed_steps`` (steps
recorded since the last surgeon's sign-off, for the surgeon's queue).

``referral_priority`` of existing pathways is mapped from their urgency: emergency ->
emergency_presentation; urgent and routine -> urgent_suspected_cancer. Every pathway is
then derived again by the engine's derivation, as it now reads a history (corrected times
and referrals, each episode's own urgency, follow-up clocks closed by a recurrence),
through Core statements on this revision's columns only.

Revision ID: 1bf8cad02790
Revises: 1103071deea2
Create Date: 2026-11-29 12:45:37.106711

"""
from alembic import op
import sqlalchemy as sa

import tracker.core.db


# revision identifiers, used by Alembic.
revision = '1bf8cad02790'
down_revision = '1103071deea2'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('pathway', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('referral_priority', sa.String(length=32), nullable=False, server_default='urgent_suspected_cancer'))
        batch_op.add_column(sa.Column('in_error', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('unreviewed_steps', sa.Integer(), nullable=False, server_default='0'))
        batch_op.create_index('ix_pathway_lead_unreviewed', ['lead_surgeon_id', 'unreviewed_steps'], unique=False)

    # A unique index rather than a constraint: SQLite adds it without rebuilding the table.
    with op.batch_alter_table('patient', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('nhs_number', sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column('gp_practice', sa.String(length=200), nullable=True))
        batch_op.create_index('uq_patient_nhs_number', ['nhs_number'], unique=True)

    op.execute(
        "UPDATE pathway SET referral_priority = 'emergency_presentation' "
        "WHERE urgency = 'emergency'"
    )
    _derive_again()


# The tables as this revision leaves them (see the previous revision's backfill).
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
    sa.column("wait"),
)
_FACT = sa.table(
    "pathway_fact",
    sa.column("pathway_id"), sa.column("seq"), sa.column("kind"), sa.column("code"),
    sa.column("occurred_at", _DT),
)


def _derive_again():
    """Derive every pathway again, replacing its clock and fact rows."""
    from tracker.engine.backfill import derive_again

    derive_again(op.get_bind(), _PATHWAY, _EVENT, _CLOCK, _FACT)


def downgrade():
    with op.batch_alter_table('patient', schema=None, recreate='never') as batch_op:
        batch_op.drop_index('uq_patient_nhs_number')
        batch_op.drop_column('gp_practice')
        batch_op.drop_column('nhs_number')

    with op.batch_alter_table('pathway', schema=None, recreate='never') as batch_op:
        batch_op.drop_index('ix_pathway_lead_unreviewed')
        batch_op.drop_column('unreviewed_steps')
        batch_op.drop_column('in_error')
        batch_op.drop_column('referral_priority')
