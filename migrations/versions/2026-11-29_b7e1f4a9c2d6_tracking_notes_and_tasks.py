"""Tracking notes and tasks: the latest tracking comment on the pathway row
(``tracking_note``, ``tracking_note_at``) and one ``pathway_task`` row per task, both
written by the engine's derivation from the tracking steps (add_tracking_note, add_task,
update_task, complete_task, cancel_task). Before this revision no event is one of those
steps; a database upgraded again after a downgrade may hold some, so the pathways that
have any are derived here by the engine's derivation (Core statements, this revision's
columns only), as the services would have written them.

Revision ID: b7e1f4a9c2d6
Revises: e5b7a9c3d2f1
Create Date: 2026-11-29 19:45:00

"""
from datetime import UTC, datetime

from alembic import op
import sqlalchemy as sa

import tracker.core.db


# revision identifiers, used by Alembic.
revision = 'b7e1f4a9c2d6'
down_revision = "e5b7a9c3d2f1"
branch_labels = None
depends_on = None


def upgrade():
    # In place (no copy of the pathway table: the event log and the derived rows hold it by
    # their foreign keys).
    with op.batch_alter_table('pathway', schema=None, recreate='never') as batch_op:
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

    _backfill()


_DT = tracker.core.db.UTCDateTime(timezone=True)
_PATHWAY = sa.table(
    "pathway",
    sa.column("id"), sa.column("urgency"), sa.column("referral_received_at", _DT),
    sa.column("tracking_note"), sa.column("tracking_note_at", _DT),
)
_EVENT = sa.table(
    "event",
    sa.column("id"), sa.column("pathway_id"), sa.column("seq"), sa.column("trigger"),
    sa.column("from_state"), sa.column("to_state"), sa.column("occurred_at", _DT),
    sa.column("recorded_at", _DT), sa.column("recorded_by_id"),
    sa.column("data", tracker.core.db.JSONType), sa.column("amends_event_id"),
    sa.column("voids_event_id"),
)
_USER = sa.table("user", sa.column("id"), sa.column("username"))
_TASK = sa.table(
    "pathway_task",
    sa.column("pathway_id"), sa.column("seq"), sa.column("what"), sa.column("owner_id"),
    sa.column("due_on", sa.Date), sa.column("status"), sa.column("created_at", _DT),
    sa.column("created_by_id"), sa.column("closed_seq"), sa.column("closed_at", _DT),
    sa.column("closed_by_id"), sa.column("close_note"),
)
_TRACKING = ("add_tracking_note", "add_task", "update_task", "complete_task", "cancel_task")


def _backfill():
    from tracker.engine.derive import derive
    from tracker.engine.history import History

    connection = op.get_bind()
    ids = list(
        connection.scalars(
            sa.select(_EVENT.c.pathway_id).where(_EVENT.c.trigger.in_(_TRACKING)).distinct()
        )
    )
    if not ids:
        return
    users = {name: uid for uid, name in connection.execute(sa.select(_USER.c.id, _USER.c.username))}
    now = datetime.now(UTC)
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        events: dict[int, list] = {}
        for e in connection.execute(
            sa.select(_EVENT).where(_EVENT.c.pathway_id.in_(chunk))
            .order_by(_EVENT.c.pathway_id, _EVENT.c.seq)
        ):
            events.setdefault(e.pathway_id, []).append(e)
        tasks = []
        for p in connection.execute(sa.select(_PATHWAY).where(_PATHWAY.c.id.in_(chunk))):
            derived = derive(
                p.urgency, p.referral_received_at, History.from_events(events[p.id]), now
            )
            connection.execute(
                _PATHWAY.update().where(_PATHWAY.c.id == p.id).values(
                    tracking_note=derived.tracking_note,
                    tracking_note_at=derived.tracking_note_at,
                )
            )
            tasks += [
                {
                    "pathway_id": p.id,
                    "owner_id": users[t["owner"]],
                    **{k: v for k, v in t.items() if k != "owner"},
                }
                for t in derived.tasks
            ]
        if tasks:
            connection.execute(_TASK.insert(), tasks)


def downgrade():
    with op.batch_alter_table('pathway_task', schema=None) as batch_op:
        batch_op.drop_index('ix_pathway_task_status_due')
        batch_op.drop_index(batch_op.f('ix_pathway_task_pathway_id'))
        batch_op.drop_index('ix_pathway_task_owner_open')

    op.drop_table('pathway_task')
    with op.batch_alter_table('pathway', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('tracking_note_at')
        batch_op.drop_column('tracking_note')
