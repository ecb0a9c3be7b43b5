"""`flask tracker backup PATH`: a consistent copy of the live database, encrypted.

A backup holds patient data, so it is encrypted in the age format (``pyrage``) to the
public keys of BACKUP_AGE_RECIPIENTS; without one the command refuses, unless asked
for ``--plaintext``. The plaintext copy is made in a private temporary directory and
only the encrypted file is written beside PATH. Whoever holds a matching identity
decrypts it with ``age -d -i key.txt`` (docs/deployment.md, Backup).

On SQLite:

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
data), switched to the rollback journal so that it is one self-contained file,
checked with ``PRAGMA integrity_check``, encrypted, flushed to disk and only then
renamed to PATH, so PATH is either absent or a complete, checked copy.

On PostgreSQL the command runs ``pg_dump --format=custom`` (the same kind of
snapshot, while the app writes), reads the dump back with ``pg_restore --list``,
then encrypts and installs it the same way.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shlex
import shutil
import sqlite3
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyrage
from pyrage import x25519
from sqlalchemy.engine import URL

# Filesystems without hard links (some network shares): fall back to check-then-rename.
_NO_HARD_LINKS = {errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK}


class BackupError(Exception):
    """The backup was refused or failed; nothing was written at the target path."""


@dataclass(frozen=True)
class BackupResult:
    source: str
    target: Path
    size: int
    seconds: float
    finished_at: datetime
    check: str  # what checked the copy, and its answer
    recipients: int  # age recipients it is encrypted to; 0: plaintext
    pages: int = 0  # SQLite only

    @property
    def encrypted(self) -> bool:
        return self.recipients > 0

    def summary(self) -> str:
        pages = f", {self.pages:,} pages" if self.pages else ""
        sealed = (
            f"Encrypted with age to {self.recipients} recipient"
            f"{'s' if self.recipients > 1 else ''} (BACKUP_AGE_RECIPIENTS); decrypt it with "
            "`age -d -i KEY_FILE` to restore (docs/deployment.md, Backup)."
            if self.encrypted
            else "NOT encrypted (--plaintext): it holds patient data in the clear."
        )
        return (
            f"Backed up {self.source} to {self.target}: {_size(self.size)} "
            f"({self.size:,} bytes{pages}) in {self.seconds:.2f} s, "
            f"finished {self.finished_at:%Y-%m-%d %H:%M:%S} UTC.\n"
            f"{self.check}\n{sealed}"
        )


NO_RECIPIENT = (
    "No backup recipient is configured, and a backup holds patient data: set "
    "BACKUP_AGE_RECIPIENTS to the age public key (age1...) of whoever may restore it "
    "(several separated by spaces or commas; make one with `age-keygen -o key.txt` and "
    "keep key.txt off this server), or pass --plaintext to write an unencrypted copy."
)


def age_recipients(setting: str) -> list:
    """The age recipients of BACKUP_AGE_RECIPIENTS: public keys separated by spaces or
    commas (age1... X25519 keys, or ssh-ed25519 / ssh-rsa public keys)."""
    found = []
    for value in setting.replace(",", " ").split():
        try:
            if value.startswith("ssh-"):
                found.append(pyrage.ssh.Recipient.from_str(value))
            else:
                found.append(x25519.Recipient.from_str(value))
        except pyrage.RecipientError as exc:
            raise BackupError(
                f"BACKUP_AGE_RECIPIENTS holds '{value}', which is not an age public key "
                f"({exc}): give keys as age-keygen prints them (age1...), separated by "
                "spaces or commas."
            ) from None
    return found


def backup_database(
    url: URL,
    target: Path,
    *,
    force: bool = False,
    recipients: list | tuple = (),
    plaintext: bool = False,
) -> BackupResult:
    """Back up the database at ``url`` (SQLAlchemy URL) to ``target``, encrypted to the
    age ``recipients`` unless ``plaintext``: SQLite with its online backup API,
    PostgreSQL with pg_dump."""
    if not plaintext and not recipients:
        raise BackupError(NO_RECIPIENT)
    backend = url.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise BackupError(
            f"`flask tracker backup` copies SQLite and PostgreSQL databases; this is {backend}."
        )
    target = Path(os.path.abspath(target))
    if backend == "sqlite":
        if (
            not url.database
            or url.database == ":memory:"
            or url.database.startswith("file::memory:")
        ):
            raise BackupError("The database is in memory; there is no file to back up.")
        source = Path(url.database).resolve()
        if not source.is_file():
            raise BackupError(f"The database file {source} does not exist.")
    _check_target(target, force, source if backend == "sqlite" else None)

    started = time.monotonic()
    # Encrypted: the plaintext copy is made in a private directory (0700), never beside
    # PATH (which may be a share); only the encrypted file goes there.
    with tempfile.TemporaryDirectory(prefix="tracker-backup-") as private:
        work = target.parent if plaintext else Path(private)
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=work)
        os.close(fd)
        copy = Path(name)
        final = copy
        try:
            if backend == "sqlite":
                pages = _copy(source, copy)
                integrity = _integrity(copy)
                if integrity != "ok":
                    raise BackupError(
                        "PRAGMA integrity_check failed on the copy, so it was discarded:\n"
                        f"{integrity}"
                    )
                check, shown = f"PRAGMA integrity_check on the copy: {integrity}", str(source)
            else:
                pages = 0
                check = _pg_dump(url, copy, target)
                shown = _without_password(url, "postgresql", url.database).render_as_string()
            if not plaintext:
                fd, name = tempfile.mkstemp(
                    prefix=f".{target.name}.", suffix=".partial", dir=target.parent
                )
                os.close(fd)
                final = Path(name)
                try:
                    pyrage.encrypt_file(str(copy), str(final), list(recipients))
                except (pyrage.EncryptError, OSError) as exc:
                    raise BackupError(f"Could not encrypt the copy: {exc}") from exc
            _fsync(final)
            _install(final, target, force=force)
        finally:
            copy.unlink(missing_ok=True)
            final.unlink(missing_ok=True)
    return BackupResult(
        source=shown,
        target=target,
        size=target.stat().st_size,
        pages=pages,
        seconds=time.monotonic() - started,
        finished_at=datetime.now(UTC),
        check=check,
        recipients=0 if plaintext else len(recipients),
    )


def _check_target(target: Path, force: bool, source: Path | None) -> None:
    if not target.parent.is_dir():
        raise BackupError(f"The directory {target.parent} does not exist.")
    if target.is_dir():
        raise BackupError(f"{target} is a directory; give the path of the backup file.")
    if target.exists():
        if source is not None and target.samefile(source):
            raise BackupError(f"{target} is the live database itself.")
        if not force:
            raise BackupError(f"{target} already exists; use --force to replace it.")


def _pg_dump(url: URL, dump: Path, target: Path) -> str:
    """pg_dump's custom format of the database at ``url`` into ``dump``, read back by
    ``pg_restore --list``; the password goes in the environment, never on the command."""
    pg_dump, pg_restore = shutil.which("pg_dump"), shutil.which("pg_restore")
    if not pg_dump or not pg_restore:
        raise BackupError(
            "pg_dump and pg_restore are not installed (Debian: apt install "
            "postgresql-client, as new as the server). By hand:\n\n" + postgres_advice(url, target)
        )
    live = _without_password(url, "postgresql", url.database).render_as_string()
    environment = dict(os.environ)
    if url.password:
        environment["PGPASSWORD"] = str(url.password)
    dumped = subprocess.run(  # noqa: S603 - pg_dump and pg_restore by path, no shell
        [pg_dump, "--format=custom", f"--file={dump}", live],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    if dumped.returncode != 0:
        raise BackupError(f"pg_dump failed: {dumped.stderr.strip()}")
    listed = subprocess.run(  # noqa: S603 - pg_dump and pg_restore by path, no shell
        [pg_restore, "--list", str(dump)], capture_output=True, text=True, check=False
    )
    if listed.returncode != 0:
        raise BackupError(f"pg_restore could not read the dump: {listed.stderr.strip()}")
    return "pg_restore --list on the dump: ok"


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
