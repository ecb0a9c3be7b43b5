"""Seals on the rows outside the chains: patients and users.

A model that declares ``SEALED`` (a tuple of its column names, written next to the
model) has a ``seal`` column: HMAC-SHA256, under the audit key, of the table, the row's
id and those columns' values. The application writes it at every flush that inserts or
changes such a row (the mapper hooks below, whichever service made the change), so a
change made directly in the database, without the key, leaves a row whose seal does
not match: ``flask tracker verify`` names it.

A seal is renewed only over a row whose stored seal still matches: before an UPDATE the
hook reads the row as stored (locked until the transaction ends, ``FOR UPDATE``) and
checks its seal. A row changed outside the app keeps its broken seal through the app's
next ordinary write of it (a login writes ``last_login_at``), so verify keeps naming it,
and that write is let through with an alarm: a ``seal_mismatch`` audit entry (outcome
refused, naming table and id) and an error in the app's log. Once someone has checked the
row and put it right, ``flask tracker reseal TABLE ID`` seals it again.

Two app servers: the seal is computed from the stored row (read under its lock, in the
UPDATE's transaction) with this write's changed columns over it, never from the copy the
request loaded, so a write built from a stale copy seals exactly what the database holds
after it and raises no false alarm; a concurrent writer waits on the lock.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Iterable

from sqlalchemy import bindparam, event, inspect, select, update
from sqlalchemy.orm import Session
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
    return seal_of_values(model, obj.id, values)


def seal_of_values(model, row_id: int, values, key: bytes | None = None) -> str:
    """The seal of row ``row_id`` of ``model`` holding ``values`` (its SEALED columns; one
    not given is NULL), under ``key`` (the app's audit key by default)."""
    sealed = {name: values.get(name) for name in model.SEALED}
    return row_seal(key or current_key(), model.__tablename__, row_id, model.SEALED, sealed)


def _is_sealed(target) -> bool:
    return bool(getattr(type(target), "SEALED", None))


_ALARMS = "seal_alarms"  # session.info: (table, id) found broken, to audit after the flush
_ALARMED = "seal_alarmed"  # session.info: (table, id) audited in this transaction
log = logging.getLogger(__name__)


def stored_seal_matches(connection, model, row_id: int, key: bytes | None = None):
    """(whether the stored seal of row ``row_id`` matches its stored values, the row),
    the row read and locked (``FOR UPDATE``) until the transaction ends."""
    table = model.__table__
    columns = [table.c.id, table.c.seal, *(table.c[name] for name in model.SEALED)]
    row = connection.execute(select(*columns).where(table.c.id == row_id).with_for_update()).one()
    expected = seal_of_values(model, row.id, row._mapping, key)
    return hmac.compare_digest(expected, row.seal or ""), row


@event.listens_for(Base, "before_update", propagate=True)
def _seal_update(mapper, connection, target) -> None:
    if not _is_sealed(target):
        return
    model, state = type(target), inspect(target)
    if not any(state.attrs[c.key].history.has_changes() for c in mapper.column_attrs):
        return  # no UPDATE follows
    # Checked at every write of the row, a login's counters too: the alarm is raised the
    # first time the app writes a row someone changed behind its back.
    matches, row = stored_seal_matches(connection, model, target.id)
    if not matches:
        # Keep the broken seal (verify keeps naming the row), let this write through, and
        # raise the alarm.
        if state.attrs["seal"].history.has_changes():
            target.seal = row.seal
        log.error(
            "%s %s does not match its seal (changed outside the app): not sealed again",
            model.__tablename__,
            target.id,
        )
        state.session.info.setdefault(_ALARMS, []).append((model.__tablename__, target.id))
        return
    changed = {name for name in model.SEALED if state.attrs[name].history.has_changes()}
    if not changed:
        return  # only unsealed columns: the stored seal stays right
    # The stored row with this write's changes over it: what the row holds after the
    # UPDATE, whatever copy of it this request loaded.
    values = {
        name: getattr(target, name) if name in changed else row._mapping[name]
        for name in model.SEALED
    }
    target.seal = seal_of_values(model, target.id, values)


@event.listens_for(Base, "after_insert", propagate=True)
def _seal_insert(mapper, connection, target) -> None:
    # The id is known only now: the seal follows in an UPDATE of the same flush.
    if not _is_sealed(target):
        return
    table = mapper.local_table
    value = seal_of(target)
    connection.execute(update(table).where(table.c.id == target.id).values(seal=value))
    set_committed_value(target, "seal", value)


@event.listens_for(Session, "after_flush_postexec")
def _audit_alarms(session, flush_context) -> None:
    alarms = session.info.pop(_ALARMS, None)
    if not alarms:
        return
    from tracker.audit.services import record

    done = session.info.setdefault(_ALARMED, set())
    for table, row_id in alarms:
        if (table, row_id) in done:
            continue
        done.add((table, row_id))
        record(
            "seal_mismatch",
            outcome="refused",
            patient_id=row_id if table == "patient" else None,
            detail={
                "table": table,
                "id": row_id,
                "reason": "the row does not match its seal (changed outside the app); "
                "the write was let through and the row left unsealed for verify",
            },
        )  # written by the transaction's next flush (its commit)


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget_alarms(session) -> None:
    session.info.pop(_ALARMS, None)
    session.info.pop(_ALARMED, None)


def _seal_stored(session, model, ids: list[int]) -> None:
    """Seal rows of ``model`` again from the values they hold."""
    if not ids:
        return
    table = model.__table__
    key = current_key()
    columns = [table.c.id, *(table.c[name] for name in model.SEALED)]
    rows = session.execute(select(*columns).where(table.c.id.in_(ids))).all()
    session.execute(
        update(table).where(table.c.id == bindparam("row_id")).values(seal=bindparam("new_seal")),
        [
            {"row_id": row.id, "new_seal": seal_of_values(model, row.id, row._mapping, key)}
            for row in rows
        ],
        execution_options={"synchronize_session": False},
    )


def reseal_row(session, table_name: str, row_id: int) -> None:
    """Seal row ``row_id`` of ``table_name`` again from its stored values (``flask tracker
    reseal``, after someone has checked them); LookupError when there is no such row."""
    model = next((m for m in sealed_models() if m.__tablename__ == table_name), None)
    if model is None:
        raise LookupError(f"No sealed table {table_name!r}.")
    exists = session.scalar(select(model.__table__.c.id).where(model.__table__.c.id == row_id))
    if exists is None:
        raise LookupError(f"No {table_name} {row_id}.")
    _seal_stored(session, model, [row_id])


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
                expected = seal_of_values(model, row.id, row._mapping, key)
                if not hmac.compare_digest(expected, row.seal or ""):
                    broken.append((table.name, row.id))
            last = rows[-1].id
    return broken
