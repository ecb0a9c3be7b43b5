"""Open pathways per state kept on write (pathway_state_count: a row per state and shard),
so the worklist's counts read a hundred small rows instead of counting every pathway.
The rows are made and filled here from a count of the pathways.

Revision ID: f5a0af27bc6b
Revises: 1103071deea2
Create Date: 2026-11-29 10:54:31.573790

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'f5a0af27bc6b'
down_revision = '1103071deea2'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('pathway_state_count',
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('shard', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('open_pathways', sa.Integer(), nullable=False),
    sa.CheckConstraint("state IN ('referred', 'imaging', 'biopsy', 'mdt_review', 'surgery_scheduled', 'post_op', 'rehabilitation', 'oncology_treatment', 'palliative_care', 'surveillance', 'discharged', 'deceased', 'withdrawn')", name=op.f('ck_pathway_state_count_state_known')),
    sa.PrimaryKeyConstraint('state', 'shard', name=op.f('pk_pathway_state_count'))
    )
    # Every (state, shard) row exists from here on: the services only ever UPDATE them.
    from tracker.engine.counts import rebuild

    rebuild(op.get_bind())


def downgrade():
    op.drop_table('pathway_state_count')
