"""HMAC-SHA256 hash chains over the event log and the audit log.

Each row carries its position in its chain (``chain_seq``), the hash of the row before
it (``prev_hash``) and its own ``hash``: HMAC-SHA256, under a key kept outside the
database, of the previous hash and the row's content. Changing, inserting or removing a
row breaks the chain at that row, and without the key a forger cannot mend it.

Events are linked as they are written: an append takes the event chain's head row with
an UPDATE before reading it, so concurrent writers of events queue there (a row lock on
PostgreSQL, the write lock on SQLite) until they commit. The head is read once per flush
and written back after it.

Audit entries are written on every view of patient data, by every server: they must not
all queue on one row. An entry is written with its own ``entry_hash`` (HMAC of its
content alone, so a change to it shows at once) and no place in the chain; the sealer
(``seal_pending``) links the entries written since its last run into the chain, oldest
first, in one short transaction, as a transparency log merges its new entries: after a
request that wrote one, once per AUDIT_SEAL_SECONDS per server process, after the answer
has gone (``tracker.web.boundary``), and every minute in the worker. Only the sealer
takes the audit chain's head, and it never waits for another sealer (on PostgreSQL it
skips the head while another holds it; that one links the entries). An entry removed
before it was linked is the one thing the chain cannot show: the window is that delay.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from json.encoder import encode_basestring
from pathlib import Path

from flask import Flask, current_app
from sqlalchemy import bindparam, event, select, update
from sqlalchemy.orm import Session, object_session

from tracker.audit.models import GENESIS, AuditEntry, ChainHead
from tracker.core.db import utcnow
from tracker.engine.models import Event
from tracker.extensions import db

KEY_MIN_LENGTH = 32

# The content each chain seals, in order; the id is left out (it is not known before the
# INSERT), the chain position stands for it.
FIELDS = {
    "event": (
        "pathway_id",
        "seq",
        "trigger",
        "from_state",
        "to_state",
        "occurred_at",
        "recorded_at",
        "recorded_by_id",
        "data",
        "request_id",
        "amends_event_id",
        "voids_event_id",
    ),
    "audit": (
        "at",
        "user_id",
        "username",
        "action",
        "outcome",
        "patient_id",
        "pathway_id",
        "detail",
        "address",
        "method",
        "path",
    ),
}
# An audit entry's own hash (``entry_hash``) covers the same content as its link.
ENTRY_FIELDS = FIELDS["audit"]
MODELS = {"event": Event, "audit": AuditEntry}
_head = ChainHead.__table__
_entries = AuditEntry.__table__
# How many audit entries one sealing transaction links at most.
SEAL_BATCH = 2000
log = logging.getLogger("tracker.audit")


class AuditKeyError(RuntimeError):
    pass


def load_key(app: Flask) -> bytes:
    """The chain key: AUDIT_KEY, or the file AUDIT_KEY_FILE (made on first use when
    AUDIT_KEY_CREATE is set, as in development). Never stored in the database."""
    key = app.config.get("AUDIT_KEY") or ""
    path = app.config.get("AUDIT_KEY_FILE") or ""
    if not key and path:
        file = Path(path)
        if not file.exists() and app.config.get("AUDIT_KEY_CREATE"):
            file.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_hex(32) + "\n")
        if file.exists():
            key = file.read_text().strip()
    if not key and path and not Path(path).exists():
        raise AuditKeyError(
            f"AUDIT_KEY_FILE names {path}, which does not exist: make it (mode 0600) holding "
            "a random key of at least 32 characters, e.g. the output of: python3 -c "
            "'import secrets; print(secrets.token_hex(32))'"
        )
    if len(key) < KEY_MIN_LENGTH:
        raise AuditKeyError(
            "The audit key is missing or shorter than 32 characters: set AUDIT_KEY, or "
            "AUDIT_KEY_FILE to a file holding it, outside the database (see "
            "docs/configuration.md). Generate one with: python3 -c 'import secrets; "
            "print(secrets.token_hex(32))'"
        )
    return key.encode()


def current_key() -> bytes:
    """The audit key of the app in context."""
    return current_app.extensions["audit_key"]


def canonical(value):
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    return value


_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _dump(value) -> str:
    """``canonical(value)`` as json.dumps(sort_keys=True, separators=(",", ":"),
    ensure_ascii=False) writes it; the commonest kinds of value without its set-up."""
    kind = type(value)
    if value is None:
        return "null"
    if kind is str:
        return encode_basestring(value)
    if kind is int:  # not a bool
        return str(value)
    if kind is datetime:
        return encode_basestring(canonical(value))
    return _JSON.encode(canonical(value))


def content_items(values, names) -> str:
    """The canonical JSON of ``values``' fields ``names``, in order, joined as in a link's
    content: a bulk loader works out most of a row's content before its place and its
    references to other rows are known (``seal_contents``)."""
    return ",".join(_dump(values[name]) for name in names)


def _link(key: bytes, chain: str, chain_seq: int, prev_hash: str, items: str) -> str:
    # The JSON array [chain, chain_seq, [item, ...]] as json.dumps writes it (a chain is
    # named by a plain word).
    content = f'["{chain}",{chain_seq},[{items}]]'
    return hmac.new(key, f"{prev_hash}\n{content}".encode(), hashlib.sha256).hexdigest()


def digest(key: bytes, chain: str, chain_seq: int, prev_hash: str, values: dict) -> str:
    return _link(key, chain, chain_seq, prev_hash, content_items(values, FIELDS[chain]))


def entry_digest(key: bytes, values) -> str:
    """An audit entry's own hash: its content, under the key, before it has a place in
    the chain (``values`` maps each of ENTRY_FIELDS)."""
    content = json.dumps(
        ["audit-entry", [canonical(values[name]) for name in ENTRY_FIELDS]],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hmac.new(key, content.encode(), hashlib.sha256).hexdigest()


_HEADS = "chain_heads"  # session.info: each chain's head as this flush advances it


def _take_head(connection, chain: str, wait: bool = True) -> tuple[int, str] | None:
    """Lock ``chain``'s head row until the commit and read it: (last position, hash).
    With ``wait`` false, on PostgreSQL, None at once if another transaction holds it."""
    if not wait and connection.dialect.name == "postgresql":
        row = connection.execute(
            select(_head.c.seq, _head.c.last_hash)
            .where(_head.c.name == chain)
            .with_for_update(skip_locked=True)
        ).one_or_none()
        if (
            row is None
            and connection.execute(select(_head.c.name).where(_head.c.name == chain)).one_or_none()
        ):
            return None  # another sealer holds it: it links the entries
    else:
        row = connection.execute(
            update(_head)
            .where(_head.c.name == chain)
            .values(seq=_head.c.seq)
            .returning(_head.c.seq, _head.c.last_hash)
        ).one_or_none()
    if row is None:
        raise RuntimeError(
            f"the '{chain}' chain has no head row: build the database with "
            "`flask db upgrade`, which creates it"
        )
    return row.seq, row.last_hash


def _put_head(connection, chain: str, seq: int, last_hash: str) -> None:
    connection.execute(
        update(_head).where(_head.c.name == chain).values(seq=seq, last_hash=last_hash)
    )


def _seal(connection, chain: str, target) -> None:
    """Give ``target`` its place in ``chain``. The head row is locked and read once per
    flush (its first row of the chain) and written back once, after the flush."""
    heads = object_session(target).info.setdefault(_HEADS, {})
    if chain not in heads:
        heads[chain] = _take_head(connection, chain)
    seq, prev = heads[chain]
    values = {name: getattr(target, name) for name in FIELDS[chain]}
    target.chain_seq, target.prev_hash = seq + 1, prev
    target.hash = digest(current_key(), chain, seq + 1, prev, values)
    heads[chain] = (seq + 1, target.hash)


@event.listens_for(Session, "before_flush")
def _forget_heads(session, flush_context, instances) -> None:
    session.info.pop(_HEADS, None)  # a flush that failed part way left its own


@event.listens_for(Session, "after_flush")
def _write_heads(session, flush_context) -> None:
    heads = session.info.pop(_HEADS, None)
    if not heads:
        return
    connection = session.connection()
    for chain, (seq, last_hash) in heads.items():  # the event chain's (audit: seal_pending)
        _put_head(connection, chain, seq, last_hash)


def seal_contents(chain: str, contents: list[str]) -> list[tuple[int, str, str]]:
    """The places in ``chain`` of rows about to be inserted in bulk, in list order, from
    each row's ``content_items``: (chain_seq, prev_hash, hash) each. One lock of the head
    for the lot; insert the rows in the same transaction."""
    if not contents:
        return []
    connection = db.session.connection()
    position, prev = _take_head(connection, chain)
    key = current_key()
    links = []
    for items in contents:
        position += 1
        link = _link(key, chain, position, prev, items)
        links.append((position, prev, link))
        prev = link
    _put_head(connection, chain, position, prev)
    return links


@event.listens_for(Event, "before_insert")
def _seal_event(mapper, connection, target: Event) -> None:
    # Column defaults are applied by the INSERT itself, after this hook: set them here,
    # so the sealed content is exactly what is stored.
    if target.recorded_at is None:
        target.recorded_at = utcnow()
    if target.data is None:
        target.data = {}
    if target.pathway_id is None and target.pathway is not None:
        target.pathway_id = target.pathway.id
    _seal(connection, "event", target)


@event.listens_for(AuditEntry, "before_insert")
def _seal_audit(mapper, connection, target: AuditEntry) -> None:
    for name, default in (
        ("at", None),
        ("username", ""),
        ("outcome", "ok"),
        ("detail", ""),
        ("address", ""),
        ("method", ""),
        ("path", ""),
    ):
        if getattr(target, name) is None:
            setattr(target, name, utcnow() if name == "at" else default)
    values = {name: getattr(target, name) for name in ENTRY_FIELDS}
    target.entry_hash = entry_digest(current_key(), values)
    # Linked into the chain later, by the sealer: this write waits on no row.
    object_session(target).info[PENDING] = True


# session.info: this session wrote an audit entry the sealer has yet to link.
PENDING = "audit_entries_pending"


def seal_pending(batch: int = SEAL_BATCH, wait: bool = True) -> int:
    """Link the audit entries awaiting their place into the chain, oldest first, at most
    ``batch`` of them, in the session's transaction (the caller commits, at once: the
    chain's head stays locked until then). How many were linked: 0 at once, with
    ``wait`` false on PostgreSQL, when another sealer holds the head.

    An entry whose content no longer matches its ``entry_hash`` (changed in the database
    since it was written) is left out of the chain, with an error in the log; verify
    names it."""
    connection = db.session.connection()
    head = _take_head(connection, "audit", wait=wait)
    if head is None:
        return 0
    position, prev = head
    columns = [_entries.c.id, _entries.c.entry_hash, *(_entries.c[n] for n in FIELDS["audit"])]
    pending = connection.execute(
        select(*columns).where(_entries.c.hash.is_(None)).order_by(_entries.c.id).limit(batch)
    ).all()
    key = current_key()
    links = []
    for row in pending:
        values = row._mapping
        if row.entry_hash != entry_digest(key, values):
            log.error(
                "audit entry id %s does not match its entry hash (changed in the database "
                "after it was written): left out of the chain",
                row.id,
            )
            continue
        position += 1
        sealed = digest(key, "audit", position, prev, values)
        links.append({"entry": row.id, "position": position, "prev": prev, "sealed": sealed})
        prev = sealed
    if links:
        connection.execute(
            update(_entries)
            .where(_entries.c.id == bindparam("entry"))
            .values(
                chain_seq=bindparam("position"),
                prev_hash=bindparam("prev"),
                hash=bindparam("sealed"),
            ),
            links,
        )
        _put_head(connection, "audit", position, prev)
    return len(links)


def seal_all() -> int:
    """Link every audit entry awaiting its place (committing each batch): the worker's
    periodic run and ``flask tracker seal-audit``. How many were linked."""
    total = 0
    while True:
        linked = seal_pending()
        db.session.commit()
        total += linked
        if linked < SEAL_BATCH:
            return total


@dataclass(frozen=True)
class Pending:
    """The audit entries not yet linked into the chain."""

    count: int
    oldest: datetime | None
    altered: list[int]  # the ids of those whose content no longer matches their hash


def pending_entries(batch: int = 5000) -> Pending:
    key = current_key()
    columns = [_entries.c.id, _entries.c.entry_hash, *(_entries.c[n] for n in ENTRY_FIELDS)]
    count, oldest, altered, last = 0, None, [], 0
    while True:
        rows = db.session.execute(
            select(*columns)
            .where(_entries.c.hash.is_(None), _entries.c.id > last)
            .order_by(_entries.c.id)
            .limit(batch)
        ).all()
        if not rows:
            return Pending(count, oldest, altered)
        for row in rows:
            count += 1
            oldest = row.at if oldest is None or row.at < oldest else oldest
            if row.entry_hash != entry_digest(key, row._mapping):
                altered.append(row.id)
        last = rows[-1].id


# -- verification ---------------------------------------------------------------------


@dataclass(frozen=True)
class Break:
    chain: str
    position: int
    row_id: int | None
    message: str

    def __str__(self) -> str:
        where = f"position {self.position}" + (f" (id {self.row_id})" if self.row_id else "")
        return f"{self.chain} chain broken at {where}: {self.message}"


def _rows(chain: str, batch: int) -> Iterator:
    model = MODELS[chain]
    columns = [model.id, model.chain_seq, model.prev_hash, model.hash]
    columns += [getattr(model, name) for name in FIELDS[chain]]
    last = 0
    while True:
        rows = db.session.execute(
            select(*columns).where(model.chain_seq > last).order_by(model.chain_seq).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].chain_seq


def verify_chain(chain: str, batch: int = 5000) -> tuple[Break | None, int]:
    """The first broken link of ``chain``, or None; and how many rows were checked."""
    key = current_key()
    expected_seq, prev = 1, GENESIS
    checked = 0
    for row in _rows(chain, batch):
        values = row._mapping
        if row.chain_seq != expected_seq:
            return Break(
                chain,
                expected_seq,
                None,
                f"the row at this position is missing (the next one is at {row.chain_seq})",
            ), checked
        if row.prev_hash != prev:
            return Break(
                chain, row.chain_seq, row.id, "it does not follow the row before it"
            ), checked
        if digest(key, chain, row.chain_seq, prev, values) != row.hash:
            return Break(
                chain,
                row.chain_seq,
                row.id,
                "its content does not match its hash (changed after it was written, "
                "or sealed with another key)",
            ), checked
        prev = row.hash
        expected_seq += 1
        checked += 1
    head = db.session.get(ChainHead, chain)
    if head is None:
        return Break(chain, 0, None, "the chain has no head row"), checked
    if head.seq != checked or head.last_hash != prev:
        return Break(
            chain,
            checked + 1,
            None,
            f"the chain ends at position {checked} but its head says {head.seq}: "
            "rows at the end were removed",
        ), checked
    return None, checked


# -- the heads, written to the application log --------------------------------------------


def head_lines(session) -> list[str]:
    """Each chain's head as one line: its name, its length and the hash at its end."""
    heads = session.scalars(select(ChainHead).order_by(ChainHead.name)).all()
    return [f"chain head: {h.name} length={h.seq} hash={h.last_hash}" for h in heads]


def heads_logger(app: Flask):
    """The app's logger for chain heads, at INFO whatever the root logger's level, so the
    lines reach the app's log handler (stderr by default, gunicorn's error log)."""
    logger = app.logger.getChild("chains")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    return logger


def log_chain_heads(app: Flask, session) -> list[str]:
    """Write each chain's head to the application log, to be shipped off the server: a
    later head shorter than a logged one, or with another hash at the same length, shows
    rows removed from the end of the chain (which the database alone cannot show)."""
    lines = head_lines(session)
    logger = heads_logger(app)
    for line in lines:
        logger.info(line)
    return lines
