"""`flask tracker backup PATH`: a consistent copy of the live SQLite database.

The copy is made with SQLite's online backup API (``sqlite3.Connection.backup``)
in **one step**, from a read-only connection of its own, while the app keeps
writing. Why one step and not pages with a sleep between them:

- The database runs in WAL mode (``tracker/core/db.py``). One step is one read
  transaction: it copies a single snapshot, the last commit before it began,
  including the commits still in the ``-wal`` file. In WAL mode a reader never
  blocks a writer, so the app's writes go on during the copy; only checkpoints
  wait, and the WAL grows for the seconds the copy takes.
- Copying in pages gives up the read lock between steps, and SQLite restarts a
  backup from its first page whenever another connection commits between two
  steps. Under a steady stream of writes a paged backup with sleeps restarts
  again and again and never finishes (tried: 64 pages a step, 5 ms apart, a
  write every 2 ms: 187 restarts and unfinished after 8 s, where one step
  finished in 13 ms). The sleeps would protect writers only in the old
  rollback-journal mode, which the app does not use.

The copy is written to a private temporary file (mode 0600: it holds patient
data) in PATH's directory, switched to the rollback journal so that it is one
self-contained file, checked with ``PRAGMA integrity_check``, flushed to disk and
only then renamed to PATH, so PATH is either absent or a complete, checked copy.

PostgreSQL is not copied here: ``pg_dump`` takes the same kind of snapshot and
the command says how to run it (and ``pg_restore``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shlex
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import URL

# Filesystems without hard links (some network shares): fall back to check-then-rename.
_NO_HARD_LINKS = {errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK}


class BackupError(Exception):
    """The backup was refused or failed; nothing was written at the target path."""


@dataclass(frozen=True)
class BackupResult:
    source: Path
    target: Path
    size: int
    pages: int
    seconds: float
    finished_at: datetime
    integrity: str

    def summary(self) -> str:
        return (
            f"Backed up {self.source} to {self.target}: {_size(self.size)} "
            f"({self.size:,} bytes, {self.pages:,} pages) in {self.seconds:.2f} s, "
            f"finished {self.finished_at:%Y-%m-%d %H:%M:%S} UTC.\n"
            f"PRAGMA integrity_check on the copy: {self.integrity}"
        )


def backup_database(url: URL, target: Path, *, force: bool = False) -> BackupResult:
    """Back up the database at ``url`` (SQLAlchemy URL) to ``target``; SQLite only."""
    backend = url.get_backend_name()
    if backend == "postgresql":
        raise BackupError(postgres_advice(url, target))
    if backend != "sqlite":
        raise BackupError(f"`flask tracker backup` copies SQLite databases; this one is {backend}.")
    if not url.database or url.database == ":memory:" or url.database.startswith("file::memory:"):
        raise BackupError("The database is in memory; there is no file to back up.")
    return backup_sqlite(Path(url.database), target, force=force)


def backup_sqlite(source: Path, target: Path, *, force: bool = False) -> BackupResult:
    """Copy the SQLite database file ``source`` to ``target`` while others write to it."""
    source = source.resolve()
    target = Path(os.path.abspath(target))
    if not source.is_file():
        raise BackupError(f"The database file {source} does not exist.")
    if not target.parent.is_dir():
        raise BackupError(f"The directory {target.parent} does not exist.")
    if target.is_dir():
        raise BackupError(f"{target} is a directory; give the path of the backup file.")
    if target.exists():
        if target.samefile(source):
            raise BackupError(f"{target} is the live database itself.")
        if not force:
            raise BackupError(f"{target} already exists; use --force to replace it.")

    started = time.monotonic()
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(fd)
    temporary = Path(name)
    try:
        pages = _copy(source, temporary)
        integrity = _integrity(temporary)
        if integrity != "ok":
            raise BackupError(
                f"PRAGMA integrity_check failed on the copy, so it was discarded:\n{integrity}"
            )
        _fsync(temporary)
        _install(temporary, target, force=force)
    finally:
        temporary.unlink(missing_ok=True)
    return BackupResult(
        source=source,
        target=target,
        size=target.stat().st_size,
        pages=pages,
        seconds=time.monotonic() - started,
        finished_at=datetime.now(UTC),
        integrity=integrity,
    )


def _copy(source: Path, temporary: Path) -> int:
    """One backup step from a read-only connection: one snapshot, committed WAL included."""
    uri = f"{source.as_uri()}?mode=ro"
    try:
        with (
            contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as live,
            contextlib.closing(sqlite3.connect(temporary, isolation_level=None)) as copy,
        ):
            live.backup(copy, pages=-1)  # -1: every page in a single step (see above)
            # The copy inherits WAL mode in its header; one self-contained file is
            # safer to move, and the app switches it back to WAL when it opens it.
            copy.execute("PRAGMA journal_mode=DELETE")
            return copy.execute("PRAGMA page_count").fetchone()[0]
    except sqlite3.Error as exc:
        raise BackupError(f"Could not copy {source}: {exc}") from exc


def _integrity(path: Path) -> str:
    try:
        with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as copy:
            rows = copy.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.Error as exc:
        raise BackupError(f"Could not check the copy: {exc}") from exc
    return "\n".join(str(row[0]) for row in rows)


def _install(temporary: Path, target: Path, *, force: bool) -> None:
    """Give the checked copy its name in one step; never replace a file without --force."""
    if force:
        os.replace(temporary, target)
    else:
        try:
            os.link(temporary, target)  # fails if target appeared meanwhile: no overwrite
        except FileExistsError:
            raise BackupError(f"{target} already exists; use --force to replace it.") from None
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            if target.exists():
                raise BackupError(f"{target} already exists; use --force to replace it.") from None
            os.rename(temporary, target)
    _fsync_directory(target.parent)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(path: Path) -> None:
    """Make the rename itself durable (POSIX; a no-op where directories cannot be opened)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _size(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    value, unit = size / 1024, "KiB"
    for bigger in ("MiB", "GiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:.1f} {unit}"


def postgres_advice(url: URL, target: Path) -> str:
    """The refusal on PostgreSQL, with the pg_dump and pg_restore commands to use instead.

    pg_dump and pg_restore take libpq URLs (``postgresql://``), not SQLAlchemy's
    ``postgresql+psycopg://``; the password is left out of the printed commands.
    """
    name = url.database or "tracker"
    live = _without_password(url, "postgresql", name)
    restored = _without_password(url, "postgresql", f"{name}_restored")
    app_restored = _without_password(url, url.drivername, restored.database)

    def shown(u: URL) -> str:
        return shlex.quote(u.render_as_string(hide_password=False))

    dump = shlex.quote(str(target))
    return "\n".join(
        [
            "This database is PostgreSQL: `flask tracker backup` copies SQLite files only.",
            "Back it up with pg_dump, which reads one consistent snapshot while the app "
            "keeps writing:",
            "",
            f"  pg_dump --format=custom --file={dump} {shown(live)}",
            "",
            "Restore it into a new, empty database with pg_restore, then check it:",
            "",
            f"  createdb --maintenance-db={shown(live)} {shlex.quote(restored.database or '')}",
            f"  pg_restore --exit-on-error --single-transaction --no-owner "
            f"--dbname={shown(restored)} {dump}",
            f"  DATABASE_URL={shown(app_restored)} flask tracker verify",
            "",
            "pg_dump and pg_restore take postgresql:// URLs, not DATABASE_URL's "
            "postgresql+psycopg://; they read the password from PGPASSWORD or ~/.pgpass.",
        ]
    )


def _without_password(url: URL, drivername: str, database: str | None) -> URL:
    # URL.set(password=None) keeps the password, so the URL is built afresh.
    return URL.create(
        drivername,
        username=url.username,
        host=url.host,
        port=url.port,
        database=database,
        query=url.query,
    )
