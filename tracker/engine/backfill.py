"""Derive every pathway again inside a migration, on its connection, through Core only.

A migration that changes what the derivation writes (new clocks, new derived columns)
calls ``derive_again`` with the tables as that revision leaves them (``sa.table`` with
the revision's columns): the engine's one derivation decides the values, and only the
columns the revision knows are read and written, so later releases that add columns can
still upgrade through it. No ORM model is used.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from tracker.engine.derive import derive
from tracker.engine.history import History


def _only(values: dict, table) -> dict:
    return {k: v for k, v in values.items() if k in table.c}


def derive_again(connection, pathway, event, clock, fact, batch: int = 1000) -> int:
    """Replace every pathway's derived columns, clock rows and fact rows; the count."""
    now = datetime.now(UTC)
    last_id, count = 0, 0
    while True:
        pathways = connection.execute(
            sa.select(pathway.c.id, pathway.c.urgency, pathway.c.referral_received_at)
            .where(pathway.c.id > last_id)
            .order_by(pathway.c.id)
            .limit(batch)
        ).all()
        if not pathways:
            return count
        first, last = pathways[0].id, pathways[-1].id
        events: dict[int, list] = {}
        for e in connection.execute(
            sa.select(event)
            .where(event.c.pathway_id.between(first, last))
            .order_by(event.c.pathway_id, event.c.seq)
        ):
            events.setdefault(e.pathway_id, []).append(e)
        updates, clocks, facts = [], [], []
        for p in pathways:
            history = History.from_events(events.get(p.id, []))
            derived = derive(p.urgency, p.referral_received_at, history, now)
            updates.append({"pid": p.id, **_only(derived.row_values(), pathway)})
            clocks += [{"pathway_id": p.id, **_only(c, clock)} for c in derived.clocks]
            facts += [{"pathway_id": p.id, **_only(f, fact)} for f in derived.facts]
        names = [k for k in updates[0] if k != "pid"]
        connection.execute(
            pathway.update()
            .where(pathway.c.id == sa.bindparam("pid"))
            .values({k: sa.bindparam(k) for k in names}),
            updates,
        )
        connection.execute(clock.delete().where(clock.c.pathway_id.between(first, last)))
        connection.execute(fact.delete().where(fact.c.pathway_id.between(first, last)))
        if clocks:
            connection.execute(clock.insert(), clocks)
        if facts:
            connection.execute(fact.insert(), facts)
        count += len(pathways)
        last_id = last
