"""Two-factor login: a TOTP secret (encrypted), when it was confirmed and the last time
step used, on each user; single-use recovery codes, stored hashed.

Existing users have no second factor: those whose role requires one (TOTP_REQUIRED_ROLES,
administrators by default) are taken to enrolment at their next login.

Revision ID: 7a3e9c1f20b4
Revises: 892dc234db1c
Create Date: 2026-11-29 16:00:00

"""
from alembic import op
import sqlalchemy as sa

import tracker.core.db


# revision identifiers, used by Alembic.
revision = '7a3e9c1f20b4'
down_revision = '892dc234db1c'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('user', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('totp_secret', sa.String(length=256), nullable=True))
        batch_op.add_column(
            sa.Column('totp_enabled_at', tracker.core.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column('totp_last_step', sa.BigInteger(), nullable=True))
    op.create_table(
        'recovery_code',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('code_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', tracker.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('used_at', tracker.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_recovery_code_user_id_user')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_recovery_code')),
    )
    with op.batch_alter_table('recovery_code', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recovery_code_user_id'), ['user_id'], unique=False)


def downgrade():
    with op.batch_alter_table('recovery_code', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_recovery_code_user_id'))
    op.drop_table('recovery_code')
    # Not a batch: on SQLite that rebuilds "user", which every other table refers to.
    for column in ("totp_last_step", "totp_enabled_at", "totp_secret"):
        op.execute(f'ALTER TABLE "user" DROP COLUMN {column}')
