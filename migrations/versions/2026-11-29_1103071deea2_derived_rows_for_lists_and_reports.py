"""Derived rows for lists and reports, written by the engine's one derivation with every
event: clock results (pathway_clock), the steps the reports count (pathway_fact), the
first episode's milestones on the pathway row, open pathways per state (pathway_state_count,
a row per state and shard), and partial indexes of the open pathways in the worklist's
orders (PostgreSQL scanned and sorted 100,000 rows for the first page).

Existing pathways are backfilled here by that same derivation
(``tracker.engine.derive.refresh_all``) and a count, on the migration's own connection,
so lists and reports read rows from the first request on. The backfill runs the engine
of the release that carries this migration: a later release that changes what the
derivation writes brings its own migration that derives again.

Revision ID: 1103071deea2
Revises: 7c2e9d41a0b3
Create Date: 2026-11-29 10:36:14.806414

"""
from datetime import UTC, datetime

from alembic import op
import sqlalchemy as sa
from sqlalchemy.orm import Session

import tracker.core.db


# revision identifiers, used by Alembic.
revision = '1103071deea2'
down_revision = '7c2e9d41a0b3'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('pathway_clock',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pathway_id', sa.Integer(), nullable=False),
    sa.Column('episode', sa.Integer(), nullable=False),
    sa.Column('clock', sa.String(length=32), nullable=False),
    sa.Column('started_at', tracker.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('stopped_at', tracker.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('due_at', tracker.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('warn_at', tracker.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('adjustment_days', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('wait', sa.Float(), nullable=True),
    sa.CheckConstraint("status = 'missed' OR (status = 'running') = (stopped_at IS NULL)", name=op.f('ck_pathway_clock_stop_matches_status')),
    sa.CheckConstraint("status IN ('running', 'met', 'missed')", name=op.f('ck_pathway_clock_status_known')),
    sa.CheckConstraint('due_at >= started_at', name=op.f('ck_pathway_clock_due_after_start')),
    sa.CheckConstraint('episode >= 0', name=op.f('ck_pathway_clock_episode_not_negative')),
    sa.ForeignKeyConstraint(['pathway_id'], ['pathway.id'], name=op.f('fk_pathway_clock_pathway_id_pathway')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pathway_clock')),
    sa.UniqueConstraint('pathway_id', 'episode', 'clock', 'started_at', name='uq_pathway_clock_key')
    )
    with op.batch_alter_table('pathway_clock', schema=None) as batch_op:
        batch_op.create_index('ix_pathway_clock_clock_episode', ['clock', 'episode', 'pathway_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_pathway_clock_pathway_id'), ['pathway_id'], unique=False)
        batch_op.create_index('ix_pathway_clock_status_due', ['status', 'due_at'], unique=False)

    with op.batch_alter_table('pathway', schema=None) as batch_op:
        batch_op.add_column(sa.Column('first_imaging_at', tracker.core.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('first_decision_at', tracker.core.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('first_treatment_at', tracker.core.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('days_to_decision', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('days_decision_to_treatment', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('days_to_treatment', sa.Float(), nullable=True))

    op.create_table('pathway_fact',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pathway_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('occurred_at', tracker.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['pathway_id'], ['pathway.id'], name=op.f('fk_pathway_fact_pathway_id_pathway')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pathway_fact')),
    sa.UniqueConstraint('pathway_id', 'seq', 'kind', 'code', name='uq_pathway_fact_key')
    )
    with op.batch_alter_table('pathway_fact', schema=None) as batch_op:
        batch_op.create_index('ix_pathway_fact_kind_at', ['kind', 'occurred_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_pathway_fact_pathway_id'), ['pathway_id'], unique=False)

    op.create_table('pathway_state_count',
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('shard', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('open_pathways', sa.Integer(), nullable=False),
    sa.CheckConstraint("state IN ('referred', 'imaging', 'biopsy', 'mdt_review', 'surgery_scheduled', 'post_op', 'rehabilitation', 'oncology_treatment', 'palliative_care', 'surveillance', 'discharged', 'deceased', 'withdrawn')", name=op.f('ck_pathway_state_count_state_known')),
    sa.PrimaryKeyConstraint('state', 'shard', name=op.f('pk_pathway_state_count'))
    )
    with op.batch_alter_table('pathway', schema=None) as batch_op:
        batch_op.create_index('ix_pathway_referral', ['referral_received_at', 'id'], unique=False)
        batch_op.create_index('ix_pathway_open_due_only', ['next_target_sort', 'id'], unique=False, postgresql_where=sa.text('closed_at IS NULL'), sqlite_where=sa.text('closed_at IS NULL'))
        batch_op.create_index('ix_pathway_open_state_due_only', ['state', 'next_target_sort', 'id'], unique=False, postgresql_where=sa.text('closed_at IS NULL'), sqlite_where=sa.text('closed_at IS NULL'))


    _backfill()


def _backfill():
    # The derivation needs every mapper configured; the models are imported by env.py.
    from tracker.engine.counts import rebuild
    from tracker.engine.derive import refresh_all

    session = Session(bind=op.get_bind())
    try:
        refresh_all(session, datetime.now(UTC))
        session.flush()
        # Every (state, shard) row exists from here on: the services only ever UPDATE them.
        rebuild(session.connection())
    finally:
        session.close()


def downgrade():
    with op.batch_alter_table('pathway', schema=None) as batch_op:
        batch_op.drop_index('ix_pathway_open_state_due_only')
        batch_op.drop_index('ix_pathway_open_due_only')
        batch_op.drop_index('ix_pathway_referral')
    op.drop_table('pathway_state_count')
    with op.batch_alter_table('pathway_fact', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pathway_fact_pathway_id'))
        batch_op.drop_index('ix_pathway_fact_kind_at')
    op.drop_table('pathway_fact')
    # The clock rows first: on SQLite the pathway table is rebuilt below, and the rows
    # would hold it by their foreign key.
    with op.batch_alter_table('pathway_clock', schema=None) as batch_op:
        batch_op.drop_index('ix_pathway_clock_status_due')
        batch_op.drop_index(batch_op.f('ix_pathway_clock_pathway_id'))
        batch_op.drop_index('ix_pathway_clock_clock_episode')

    op.drop_table('pathway_clock')

    # Without rebuilding the table (SQLite 3.35+ drops a plain column in place): a rebuild
    # would drop the pathway table under the events that reference it.
    with op.batch_alter_table('pathway', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('days_to_treatment')
        batch_op.drop_column('days_decision_to_treatment')
        batch_op.drop_column('days_to_decision')
        batch_op.drop_column('first_treatment_at')
        batch_op.drop_column('first_decision_at')
        batch_op.drop_column('first_imaging_at')
