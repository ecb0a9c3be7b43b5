"""Tracking notes and tasks: the latest tracking comment on the pathway row
(``tracking_note``, ``tracking_note_at``) and one ``pathway_task`` row per task, both
written by the engine's derivation from the tracking steps (add_tracking_note, add_task,
update_task, complete_task, cancel_task). No event before this revision is one of those
steps, so there is nothing to backfill: every existing pathway derives to no note and no
task, as these empty columns and table say.

Revision ID: b7e1f4a9c2d6
Revises: c4d8e2a6b1f3
Create Date: 2026-11-29 19:45:00

"""
from alembic import op
import sqlalchemy as sa

import tracker.core.db


# revision identifiers, used by Alembic.
revision = 'b7e1f4a9c2d6'
down_revision = 'c4d8e2a6b1f3'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('pathway', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tracking_note', sa.String(length=400), nullable=True))
        batch_op.add_column(sa.Column('tracking_note_at', tracker.core.db.UTCDateTime(timezone=True), nullable=True))

    op.create_table('pathway_task',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pathway_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('what', sa.String(length=200), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', tracker.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('closed_seq', sa.Integer(), nullable=True),
    sa.Column('closed_at', tracker.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('closed_by_id', sa.Integer(), nullable=True),
    sa.Column('close_note', sa.String(length=4000), nullable=True),
    sa.CheckConstraint("(status = 'open') = (closed_at IS NULL)", name=op.f('ck_pathway_task_closed_matches_status')),
    sa.CheckConstraint("status IN ('open', 'done', 'cancelled')", name=op.f('ck_pathway_task_status_known')),
    sa.ForeignKeyConstraint(['pathway_id'], ['pathway.id'], name=op.f('fk_pathway_task_pathway_id_pathway')),
    sa.ForeignKeyConstraint(['owner_id'], ['user.id'], name=op.f('fk_pathway_task_owner_id_user')),
    sa.ForeignKeyConstraint(['created_by_id'], ['user.id'], name=op.f('fk_pathway_task_created_by_id_user')),
    sa.ForeignKeyConstraint(['closed_by_id'], ['user.id'], name=op.f('fk_pathway_task_closed_by_id_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pathway_task')),
    sa.UniqueConstraint('pathway_id', 'seq', name='uq_pathway_task_key')
    )
    with op.batch_alter_table('pathway_task', schema=None) as batch_op:
        batch_op.create_index('ix_pathway_task_owner_open', ['owner_id', 'status', 'due_on'], unique=False)
        batch_op.create_index(batch_op.f('ix_pathway_task_pathway_id'), ['pathway_id'], unique=False)
        batch_op.create_index('ix_pathway_task_status_due', ['status', 'due_on'], unique=False)


def downgrade():
    with op.batch_alter_table('pathway_task', schema=None) as batch_op:
        batch_op.drop_index('ix_pathway_task_status_due')
        batch_op.drop_index(batch_op.f('ix_pathway_task_pathway_id'))
        batch_op.drop_index('ix_pathway_task_owner_open')

    op.drop_table('pathway_task')
    with op.batch_alter_table('pathway', schema=None) as batch_op:
        batch_op.drop_column('tracking_note_at')
        batch_op.drop_column('tracking_note')
