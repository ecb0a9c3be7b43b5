"""Open pathways per state, kept on write: the worklist reads 13 x 8 small rows instead of
counting 100,000 pathways.

Each state has ``SHARDS`` rows; a pathway's moves count in the row of its id's shard, so
writers to different pathways seldom meet on one row. The services note each move
(``moved``); the deltas are written after the flush that inserts the move's event, when
the pathway has its id and the writer already holds the event chain's head, so counter
rows are always taken in the same order after the same lock and never deadlock.
``verify`` compares the rows with a count of the pathways.
"""

from __future__ import annotations

from collections import Counter

from sqlalchemy import event, func, select, update
from sqlalchemy.orm import Session

from tracker.engine.models import Pathway, StateCount
from tracker.engine.states import ACTIVE_STATES

SHARDS = 8
_NOTED = "state_moves"  # session.info: (pathway, state before, state after) of this flush


def moved(session, pathway: Pathway, before: str | None, after: str | None) -> None:
    """Note that ``pathway`` moved from ``before`` (None: it is new) to ``after``."""
    if before != after:
        session.info.setdefault(_NOTED, []).append((pathway, before, after))


def _deltas(moves) -> Counter:
    deltas: Counter = Counter()
    for pathway, before, after in moves:
        shard = pathway.id % SHARDS
        if before in ACTIVE_STATES:
            deltas[(before, shard)] -= 1
        if after in ACTIVE_STATES:
            deltas[(after, shard)] += 1
    return deltas


def add(connection, deltas: Counter) -> None:
    """Apply ``(state, shard) -> change``, in one order for every writer."""
    table = StateCount.__table__
    for (state, shard), change in sorted(deltas.items()):
        if change:
            connection.execute(
                update(table)
                .where(table.c.state == state, table.c.shard == shard)
                .values(open_pathways=table.c.open_pathways + change)
            )


def add_pathways(connection, rows) -> None:
    """Count pathways inserted in bulk (the demo seeder): ``rows`` of (id, state)."""
    deltas: Counter = Counter()
    for pathway_id, state in rows:
        if state in ACTIVE_STATES:
            deltas[(state, pathway_id % SHARDS)] += 1
    add(connection, deltas)


@event.listens_for(Session, "after_flush")
def _write_moves(session, flush_context) -> None:
    moves = session.info.pop(_NOTED, None)
    if moves:
        add(session.connection(), _deltas(moves))


@event.listens_for(Session, "after_rollback")
def _forget_moves(session) -> None:
    session.info.pop(_NOTED, None)


def open_by_state(session) -> dict[str, int]:
    """state -> open pathways, from the counter rows."""
    rows = session.execute(
        select(StateCount.state, func.sum(StateCount.open_pathways)).group_by(StateCount.state)
    )
    return {state: int(total) for state, total in rows if total}


def counted(session) -> dict[str, int]:
    """state -> open pathways, counted from the pathways themselves (for verify)."""
    rows = session.execute(
        select(Pathway.state, func.count())
        .where(Pathway.closed_at.is_(None))
        .group_by(Pathway.state)
    )
    return dict(rows.all())
