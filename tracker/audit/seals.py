"""Seals on the rows outside the chains: patients and users.

A model that declares ``SEALED`` (a tuple of its column names, written next to the
model) has a ``seal`` column: HMAC-SHA256, under the audit key, of the table, the row's
id and those columns' values. The application writes it at every flush that inserts or
changes such a row (the mapper hooks below, whichever service made the change), so a
change made directly in the database, without the key, leaves a row whose seal does
not match: ``flask tracker verify`` names it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable

from sqlalchemy import bindparam, event, select, update
from sqlalchemy.orm.attributes import set_committed_value

from tracker.audit.chain import canonical, current_key
from tracker.core.db import Base


def row_seal(key: bytes, table: str, row_id: int, columns: Iterable[str], values) -> str:
    """The seal of row ``row_id`` of ``table``: ``values`` maps each of ``columns``."""
    content = json.dumps(
        [table, row_id, [[name, canonical(values[name])] for name in columns]],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hmac.new(key, content.encode(), hashlib.sha256).hexdigest()


def sealed_models() -> list[type]:
    """Every mapped model that declares SEALED, in table-name order."""
    found = [m.class_ for m in Base.registry.mappers if getattr(m.class_, "SEALED", None)]
    return sorted(found, key=lambda model: model.__tablename__)


def seal_of(obj) -> str:
    model = type(obj)
    values = {name: getattr(obj, name) for name in model.SEALED}
    return row_seal(current_key(), model.__tablename__, obj.id, model.SEALED, values)


def _is_sealed(target) -> bool:
    return bool(getattr(type(target), "SEALED", None))


@event.listens_for(Base, "before_update", propagate=True)
def _seal_update(mapper, connection, target) -> None:
    if _is_sealed(target):
        target.seal = seal_of(target)  # part of this row's UPDATE


@event.listens_for(Base, "after_insert", propagate=True)
def _seal_insert(mapper, connection, target) -> None:
    # The id is known only now: the seal follows in an UPDATE of the same flush.
    if not _is_sealed(target):
        return
    table = mapper.local_table
    value = seal_of(target)
    connection.execute(update(table).where(table.c.id == target.id).values(seal=value))
    set_committed_value(target, "seal", value)


def seal_inserted(session, model, ids: list[int]) -> None:
    """Seal rows of ``model`` inserted in bulk (Core executemany runs no ORM hook)."""
    if not ids:
        return
    table = model.__table__
    key = current_key()
    columns = [table.c.id, *(table.c[name] for name in model.SEALED)]
    rows = session.execute(select(*columns).where(table.c.id.in_(ids))).all()
    session.execute(
        update(table).where(table.c.id == bindparam("row_id")).values(seal=bindparam("new_seal")),
        [
            {
                "row_id": row.id,
                "new_seal": row_seal(key, table.name, row.id, model.SEALED, row._mapping),
            }
            for row in rows
        ],
        execution_options={"synchronize_session": False},
    )


def broken_seals(session, batch: int = 5000) -> list[tuple[str, int]]:
    """(table, id) of every row whose seal does not match its sealed columns."""
    key = current_key()
    broken = []
    for model in sealed_models():
        table = model.__table__
        columns = [table.c.id, table.c.seal, *(table.c[name] for name in model.SEALED)]
        last = 0
        while True:
            rows = session.execute(
                select(*columns).where(table.c.id > last).order_by(table.c.id).limit(batch)
            ).all()
            if not rows:
                break
            for row in rows:
                expected = row_seal(key, table.name, row.id, model.SEALED, row._mapping)
                if not hmac.compare_digest(expected, row.seal or ""):
                    broken.append((table.name, row.id))
            last = rows[-1].id
    return broken
