"""Teams and emergency access: users see their teams' patients; others through an audited,
time-limited emergency access.

Each pathway gets the team its (corrected) diagnosis category goes to (metastatic spinal: metastatic;
primary bone: bone sarcoma; primary spinal and intradural: spine); every existing user
becomes a member of every default team, so nobody loses sight of a patient on upgrade:
administrators then narrow the memberships on the Users page.

Revision ID: 4b797011ab54
Revises: 8a4f2c6e1d90
Create Date: 2026-11-29 15:54:16.673845

"""
from alembic import op
import sqlalchemy as sa

import tracker.core.db


# revision identifiers, used by Alembic.
revision = '4b797011ab54'
down_revision = '8a4f2c6e1d90'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('user_team',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('team', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_user_team_user_id_user')),
    sa.PrimaryKeyConstraint('user_id', 'team', name=op.f('pk_user_team'))
    )
    op.create_table('emergency_access',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('granted_at', tracker.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', tracker.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_emergency_access_patient_id_patient')),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_emergency_access_user_id_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_emergency_access'))
    )
    with op.batch_alter_table('emergency_access', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_emergency_access_granted_at'), ['granted_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_emergency_access_patient_id'), ['patient_id'], unique=False)
        batch_op.create_index('ix_emergency_access_user_until', ['user_id', 'expires_at'], unique=False)

    with op.batch_alter_table('pathway', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('team', sa.String(length=32), server_default='spine', nullable=False))
        batch_op.create_index(batch_op.f('ix_pathway_team'), ['team'], unique=False)

    _teams_from_the_events()
    user = sa.table("user", sa.column("id", sa.Integer))
    user_team = sa.table("user_team", sa.column("user_id", sa.Integer), sa.column("team", sa.String))
    for team in _DEFAULT_TEAMS:
        op.execute(user_team.insert().from_select(["user_id", "team"], sa.select(user.c.id, sa.literal(team))))


# As tracker.engine.teams had them when this revision was written.
_DEFAULT_TEAMS = ("spine", "bone_sarcoma", "metastatic")
_DT = tracker.core.db.UTCDateTime(timezone=True)
_PATHWAY = sa.table("pathway", sa.column("id"), sa.column("team"))
_EVENT = sa.table(
    "event",
    sa.column("id"), sa.column("pathway_id"), sa.column("seq"), sa.column("trigger"),
    sa.column("from_state"), sa.column("to_state"), sa.column("occurred_at", _DT),
    sa.column("recorded_at", _DT), sa.column("recorded_by_id"),
    sa.column("data", tracker.core.db.JSONType), sa.column("amends_event_id"),
    sa.column("voids_event_id"),
)


def _teams_from_the_events(batch: int = 1000):
    """Each pathway's team as the engine derives it (the referral's diagnosis category as
    corrected, or a team named in the events)."""
    from tracker.engine.history import History

    connection, last_id = op.get_bind(), 0
    while True:
        ids = connection.scalars(
            sa.select(_PATHWAY.c.id).where(_PATHWAY.c.id > last_id).order_by(_PATHWAY.c.id).limit(batch)
        ).all()
        if not ids:
            return
        events: dict[int, list] = {}
        for e in connection.execute(
            sa.select(_EVENT)
            .where(_EVENT.c.pathway_id.between(ids[0], ids[-1]))
            .order_by(_EVENT.c.pathway_id, _EVENT.c.seq)
        ):
            events.setdefault(e.pathway_id, []).append(e)
        connection.execute(
            _PATHWAY.update().where(_PATHWAY.c.id == sa.bindparam("pid")).values(team=sa.bindparam("t")),
            [{"pid": i, "t": History.from_events(events.get(i, [])).team()} for i in ids],
        )
        last_id = ids[-1]


def downgrade():
    with op.batch_alter_table('pathway', schema=None, recreate='never') as batch_op:
        batch_op.drop_index(batch_op.f('ix_pathway_team'))
        batch_op.drop_column('team')

    with op.batch_alter_table('emergency_access', schema=None) as batch_op:
        batch_op.drop_index('ix_emergency_access_user_until')
        batch_op.drop_index(batch_op.f('ix_emergency_access_patient_id'))
        batch_op.drop_index(batch_op.f('ix_emergency_access_granted_at'))

    op.drop_table('emergency_access')
    op.drop_table('user_team')
