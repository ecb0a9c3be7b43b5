"""Alerts: the ``notification`` table (one alert for one user about one pathway, unique
per user and event key, with when it was read and emailed), and each user's own email
address and how often alerts are emailed to them (``alert_email``, daily by default).

Revision ID: ddbe93660349
Revises: c4d8e2a6b1f3
Create Date: 2026-11-29 19:19:28

"""
from alembic import op
import sqlalchemy as sa

import tracker.core.db


# revision identifiers, used by Alembic.
revision = 'ddbe93660349'
down_revision = 'c4d8e2a6b1f3'
branch_labels = None
depends_on = None

_PREFERENCES = "alert_email IN ('immediately', 'daily', 'none')"


def upgrade():
    op.create_table('notification',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('pathway_id', sa.Integer(), nullable=False),
    sa.Column('dedupe_key', sa.String(length=200), nullable=False),
    sa.Column('detail', sa.String(length=300), nullable=False),
    sa.Column('due_at', tracker.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', tracker.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('read_at', tracker.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('email_due_at', tracker.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('emailed_at', tracker.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("kind IN ('due_soon', 'breached', 'mdt_outcome', 'task_overdue')", name=op.f('ck_notification_kind_known')),
    sa.ForeignKeyConstraint(['pathway_id'], ['pathway.id'], name=op.f('fk_notification_pathway_id_pathway')),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_notification_user_id_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification')),
    sa.UniqueConstraint('user_id', 'dedupe_key', name='uq_notification_user_key')
    )
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notification_pathway_id'), ['pathway_id'], unique=False)
        batch_op.create_index('ix_notification_unsent', ['emailed_at', 'email_due_at'], unique=False)
        batch_op.create_index('ix_notification_user_unread', ['user_id', 'read_at'], unique=False)

    # In place, as the earlier changes of the user table (its rows are sealed, and other
    # tables refer to it): SQLite takes a CHECK with ADD COLUMN, PostgreSQL adds it after.
    with op.batch_alter_table('user', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('email', sa.String(length=254), nullable=True))
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "ALTER TABLE \"user\" ADD COLUMN alert_email VARCHAR(16) DEFAULT 'daily' NOT NULL "
            f"CONSTRAINT ck_user_alert_email_known CHECK ({_PREFERENCES})"
        )
    else:
        op.add_column('user', sa.Column('alert_email', sa.String(length=16), server_default='daily', nullable=False))
        op.create_check_constraint(op.f('ck_user_alert_email_known'), 'user', _PREFERENCES)


def downgrade():
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint(op.f('ck_user_alert_email_known'), 'user', type_='check')
    with op.batch_alter_table('user', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('alert_email')
        batch_op.drop_column('email')

    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_index('ix_notification_user_unread')
        batch_op.drop_index('ix_notification_unsent')
        batch_op.drop_index(batch_op.f('ix_notification_pathway_id'))

    op.drop_table('notification')
