"""Single sign-on: a user's identity-provider subject (unique, set at the first sign-in)
and whether the account may log in with a password at all (``sso_only``).

Existing accounts are not linked and keep their passwords (``sso_only`` false).

Revision ID: a7c3e5f1d2b9
Revises: 9a3f6c2d1e07
Create Date: 2026-11-29 16:10:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a7c3e5f1d2b9'
down_revision = '9a3f6c2d1e07'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('user', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('sso_subject', sa.String(length=255), nullable=True))
        batch_op.add_column(
            sa.Column('sso_only', sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.create_index(batch_op.f('ix_user_sso_subject'), ['sso_subject'], unique=True)


def downgrade():
    with op.batch_alter_table('user', schema=None, recreate='never') as batch_op:
        batch_op.drop_index(batch_op.f('ix_user_sso_subject'))
        batch_op.drop_column('sso_only')
        batch_op.drop_column('sso_subject')
