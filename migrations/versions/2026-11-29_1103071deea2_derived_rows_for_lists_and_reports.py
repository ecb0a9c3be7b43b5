"""Derived rows for lists and reports, written by the engine's one derivation with every
event: clock results (pathway_clock), the steps the reports count (pathway_fact), the
first episode's milestones on the pathway row, open pathways per state (pathway_state_count,
a row per state and shard), and partial indexes of the open pathways in the worklist's
orders (PostgreSQL scanned and sorted 100,000 rows for the first page).

Existing pathways are backfilled here by that same derivation (``derive``) and a count,
on the migration's own connection, so lists and reports read rows from the first request
on. The backfill reads and writes only the columns of this revision, through Core
statements, so later releases that add columns can still upgrade through it; one that
changes what the derivation writes brings its own migration that derives again.

Revision ID: 1103071deea2
Revises: 7c2e9d41a0b3
Create Date: 2026-11-29 10:36:14.806414

"""
from datetime import UTC, datetime

from alembic import op
import sqlalchemy as sa

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


# The tables as this revision leaves them: the backfill reads and writes these columns
# only, so a later release that adds columns to them can still upgrade through here.
_DT = tracker.core.db.UTCDateTime(timezone=True)
_PATHWAY = sa.table(
    "pathway",
    sa.column("id"), sa.column("urgency"), sa.column("state"),
    sa.column("referral_received_at", _DT), sa.column("closed_at", _DT),
    sa.column("recurrence_count"), sa.column("state_entered_at", _DT), sa.column("last_seq"),
    sa.column("next_target"), sa.column("next_target_due_at", _DT),
    sa.column("next_target_warn_at", _DT), sa.column("next_target_sort", _DT),
    sa.column("first_imaging_at", _DT), sa.column("first_decision_at", _DT),
    sa.column("first_treatment_at", _DT), sa.column("days_to_decision"),
    sa.column("days_decision_to_treatment"), sa.column("days_to_treatment"),
)
_EVENT = sa.table(
    "event",
    sa.column("id"), sa.column("pathway_id"), sa.column("seq"), sa.column("trigger"),
    sa.column("from_state"), sa.column("to_state"), sa.column("occurred_at", _DT),
    sa.column("recorded_at", _DT), sa.column("recorded_by_id"),
    sa.column("data", tracker.core.db.JSONType), sa.column("amends_event_id"),
    sa.column("voids_event_id"),
)
_CLOCK = sa.table(
    "pathway_clock",
    sa.column("pathway_id"), sa.column("episode"), sa.column("clock"),
    sa.column("started_at", _DT), sa.column("stopped_at", _DT), sa.column("due_at", _DT),
    sa.column("warn_at", _DT), sa.column("adjustment_days"), sa.column("status"),
    sa.column("wait"),
)
_FACT = sa.table(
    "pathway_fact",
    sa.column("pathway_id"), sa.column("seq"), sa.column("kind"), sa.column("code"),
    sa.column("occurred_at", _DT),
)
_COUNT = sa.table(
    "pathway_state_count", sa.column("state"), sa.column("shard"), sa.column("open_pathways")
)
_ACTIVE = ("referred", "imaging", "biopsy", "mdt_review", "surgery_scheduled", "post_op",
           "rehabilitation", "oncology_treatment", "palliative_care", "surveillance")
_SHARDS = 8  # tracker.engine.counts.SHARDS at this revision


def _only(values: dict, table) -> dict:
    return {k: v for k, v in values.items() if k in table.c}


def _backfill():
    """Derive every pathway with the engine's derivation, reading and writing the columns of
    this revision only (Core statements, no ORM model)."""
    from tracker.engine.derive import derive
    from tracker.engine.history import History

    connection = op.get_bind()
    now = datetime.now(UTC)
    last_id = 0
    while True:
        pathways = connection.execute(
            sa.select(
                _PATHWAY.c.id, _PATHWAY.c.urgency, _PATHWAY.c.referral_received_at
            ).where(_PATHWAY.c.id > last_id).order_by(_PATHWAY.c.id).limit(1000)
        ).all()
        if not pathways:
            break
        events: dict[int, list] = {}
        for e in connection.execute(
            sa.select(_EVENT)
            .where(_EVENT.c.pathway_id.between(pathways[0].id, pathways[-1].id))
            .order_by(_EVENT.c.pathway_id, _EVENT.c.seq)
        ):
            events.setdefault(e.pathway_id, []).append(e)
        updates, clocks, facts = [], [], []
        for p in pathways:
            derived = derive(
                p.urgency, p.referral_received_at, History.from_events(events.get(p.id, [])), now
            )
            updates.append({"pid": p.id, **_only(derived.row_values(), _PATHWAY)})
            clocks += [{"pathway_id": p.id, **_only(c, _CLOCK)} for c in derived.clocks]
            facts += [{"pathway_id": p.id, **_only(f, _FACT)} for f in derived.facts]
        names = [k for k in updates[0] if k != "pid"]
        connection.execute(
            _PATHWAY.update()
            .where(_PATHWAY.c.id == sa.bindparam("pid"))
            .values({k: sa.bindparam(k) for k in names}),
            updates,
        )
        if clocks:
            connection.execute(_CLOCK.insert(), clocks)
        if facts:
            connection.execute(_FACT.insert(), facts)
        last_id = pathways[-1].id
    # Every (state, shard) row exists from here on: the services only ever UPDATE them.
    shard = (_PATHWAY.c.id % sa.literal_column(str(_SHARDS))).label("shard")
    counted = {
        (state, k): n
        for state, k, n in connection.execute(
            sa.select(_PATHWAY.c.state, shard, sa.func.count())
            .where(_PATHWAY.c.closed_at.is_(None))
            .group_by(_PATHWAY.c.state, shard)
        )
    }
    connection.execute(
        _COUNT.insert(),
        [
            {"state": state, "shard": k, "open_pathways": counted.get((state, k), 0)}
            for state in _ACTIVE
            for k in range(_SHARDS)
        ],
    )


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
