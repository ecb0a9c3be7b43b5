"""Partial indexes of the open pathways, in the worklist's orders (by due time; by state,
then due time): with most pathways open, PostgreSQL scanned and sorted 100,000 rows for
the first page rather than use an index led by closed_at.

Revision ID: e2d336f00100
Revises: f5a0af27bc6b
Create Date: 2026-11-29 11:02:00.947073

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'e2d336f00100'
down_revision = 'f5a0af27bc6b'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('pathway', schema=None) as batch_op:
        batch_op.create_index('ix_pathway_open_due_only', ['next_target_sort', 'id'], unique=False, postgresql_where=sa.text('closed_at IS NULL'), sqlite_where=sa.text('closed_at IS NULL'))
        batch_op.create_index('ix_pathway_open_state_due_only', ['state', 'next_target_sort', 'id'], unique=False, postgresql_where=sa.text('closed_at IS NULL'), sqlite_where=sa.text('closed_at IS NULL'))



def downgrade():
    with op.batch_alter_table('pathway', schema=None) as batch_op:
        batch_op.drop_index('ix_pathway_open_state_due_only', postgresql_where=sa.text('closed_at IS NULL'), sqlite_where=sa.text('closed_at IS NULL'))
        batch_op.drop_index('ix_pathway_open_due_only', postgresql_where=sa.text('closed_at IS NULL'), sqlite_where=sa.text('closed_at IS NULL'))

