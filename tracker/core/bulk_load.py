"""Loading many rows at the driver's speed (the demo seeder).

``insert_rows`` hands the rows to the database driver itself: COPY on PostgreSQL, the
sqlite3 module's executemany on SQLite. Each value goes through its column type's bind
processing first, as SQLAlchemy's own insert would, so a value given is stored as it
would store it. Nothing else of SQLAlchemy's insert happens: no ORM hook (seal the rows
before, count them after) and no Python-side default (give every column that has one;
a column left out takes the database's default, or NULL). ``reserve_ids`` gives out
primary keys before the insert, so that rows referring to each other can be written
at once, without reading ids back.

Both write in the caller's transaction, on its connection; neither commits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from psycopg.adapt import PyFormat, Transformer
from sqlalchemy import Table, false, func, select, text
from sqlalchemy import types as sqltypes
from sqlalchemy.engine import Connection, Dialect

_RESERVED = "bulk_reserved_ids"  # connection.info: (transaction, highest id given per table)


def reserve_ids(connection: Connection, table: Table, count: int) -> list[int]:
    """``count`` new primary keys of ``table`` (its integer ``id``), ascending, that no
    other writer will take. PostgreSQL takes them from the column's sequence, as every
    insert does. SQLite has none: the ids above the largest in the table are the next
    ones, held by this transaction's write lock (taken here, kept to the commit); ids
    given out earlier in the transaction are not given again. On SQLite, then, insert
    the rows of ``table`` that take their id from the database only after those with a
    reserved id, in this transaction: they would take the next id after the largest."""
    if count <= 0:
        return []
    if connection.dialect.name == "postgresql":
        ids = connection.execute(
            text(
                "SELECT array_agg(nextval(pg_get_serial_sequence(:table, 'id'))) "
                "FROM generate_series(1, :n)"
            ),
            {"table": connection.dialect.identifier_preparer.format_table(table), "n": count},
        ).scalar_one()
        return sorted(ids)
    # A statement that may write takes SQLite's write lock even when it changes nothing.
    connection.execute(table.delete().where(false()))
    highest = connection.scalar(select(func.max(table.c.id))) or 0
    transaction, given = connection.info.get(_RESERVED, (None, {}))
    if transaction is not connection.get_transaction():
        transaction, given = connection.get_transaction(), {}
        connection.info[_RESERVED] = (transaction, given)
    start = max(highest, given.get(table.name, 0)) + 1
    given[table.name] = start + count - 1
    return list(range(start, start + count))


@dataclass(frozen=True)
class Prepared:
    """Rows as the driver takes them: the column names and one tuple of values per row."""

    names: tuple[str, ...]
    values: list[tuple]

    def joined(self, other: Prepared) -> Prepared:
        """Each row with ``other``'s row of the same place appended (more columns)."""
        return Prepared(
            self.names + other.names,
            [a + b for a, b in zip(self.values, other.values, strict=True)],
        )


def prepare(dialect: Dialect, table: Table, rows: Sequence[Mapping]) -> Prepared:
    """``rows`` (dicts with the same keys, column names of ``table``) as ``dialect``'s
    driver takes them: each column's values through its type's bind processing, in one
    pass per column. Needs no connection: a process that only builds rows can do it."""
    names = tuple(rows[0]) if rows else ()
    if any(len(row) != len(names) for row in rows):
        raise ValueError(f"{table.name}: every row must give the same columns")
    columns = []
    for name in names:
        process = _processor(dialect, table.c[name])
        values = [row[name] for row in rows]
        columns.append(list(map(process, values)) if process else values)
    return Prepared(names, list(zip(*columns, strict=True)))


def _processor(dialect: Dialect, column) -> Callable | None:
    impl = column.type.dialect_impl(dialect)
    process = impl.bind_processor(dialect)
    if dialect.name != "postgresql" or not isinstance(impl, sqltypes.JSON) or process is None:
        return process
    # psycopg's JSON wrapper is written out only as it is sent: write it out here, where
    # the rows are built, as the text psycopg would send (COPY's text takes it as is).
    transformer = Transformer()

    def as_text(value):
        wrapped = process(value)
        if wrapped is None:
            return None
        return bytes(transformer.get_dumper(wrapped, PyFormat.TEXT).dump(wrapped)).decode()

    return as_text


def insert_rows(connection: Connection, table: Table, rows: Sequence[Mapping] | Prepared) -> None:
    """Insert ``rows`` (dicts with the same keys, the table's column names, or what
    ``prepare`` made of them) into ``table`` in the connection's transaction."""
    if not isinstance(rows, Prepared):
        rows = prepare(connection.dialect, table, rows)
    if not rows.values:
        return
    preparer = connection.dialect.identifier_preparer
    columns = ", ".join(preparer.quote(name) for name in rows.names)
    target = preparer.format_table(table)
    raw = connection.connection.driver_connection
    if connection.dialect.name == "postgresql":
        with raw.cursor() as cursor, cursor.copy(f"COPY {target} ({columns}) FROM STDIN") as copy:
            for row in rows.values:
                copy.write_row(row)
        return
    marks = ", ".join("?" for _ in rows.names)
    cursor = raw.cursor()
    try:
        # Names from the table's own metadata, quoted by the dialect; the values are bound.
        statement = f"INSERT INTO {target} ({columns}) VALUES ({marks})"  # noqa: S608  # nosec B608
        cursor.executemany(statement, rows.values)
    finally:
        cursor.close()
