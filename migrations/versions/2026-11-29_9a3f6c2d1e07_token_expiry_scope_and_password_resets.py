"""API tokens expire and have a scope; one-time password reset links.

Existing tokens keep working as they did (read-write) until 90 days after this
migration; their last use is unknown.

Revision ID: 9a3f6c2d1e07
Revises: 4b797011ab54
Create Date: 2026-11-29 16:10:00

"""
from datetime import UTC, datetime, timedelta

from alembic import op
import sqlalchemy as sa

import tracker.core.db


# revision identifiers, used by Alembic.
revision = '9a3f6c2d1e07'
down_revision = '4b797011ab54'
branch_labels = None
depends_on = None

_DT = tracker.core.db.UTCDateTime(timezone=True)


def upgrade():
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expires_at', _DT, nullable=True))
        batch_op.add_column(sa.Column('scope', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('last_used_at', _DT, nullable=True))
    token = sa.table(
        'api_token', sa.column('expires_at', _DT), sa.column('scope', sa.String(16))
    )
    op.get_bind().execute(
        token.update().values(
            expires_at=datetime.now(UTC) + timedelta(days=90), scope='read-write'
        )
    )
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.alter_column('expires_at', existing_type=_DT, nullable=False)
        batch_op.alter_column('scope', existing_type=sa.String(length=16), nullable=False)
        batch_op.create_check_constraint(
            'scope_known', "scope IN ('read', 'read-write')"
        )

    op.create_table('password_reset',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('issued_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', _DT, nullable=False),
    sa.Column('expires_at', _DT, nullable=False),
    sa.Column('used_at', _DT, nullable=True),
    sa.Column('voided_at', _DT, nullable=True),
    sa.ForeignKeyConstraint(['issued_by_id'], ['user.id'], name=op.f('fk_password_reset_issued_by_id_user')),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_password_reset_user_id_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_password_reset')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_password_reset_token_hash'))
    )
    with op.batch_alter_table('password_reset', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_password_reset_user_id'), ['user_id'], unique=False)


def downgrade():
    with op.batch_alter_table('password_reset', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_password_reset_user_id'))
    op.drop_table('password_reset')
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.drop_constraint('scope_known', type_='check')
        batch_op.drop_column('last_used_at')
        batch_op.drop_column('scope')
        batch_op.drop_column('expires_at')
