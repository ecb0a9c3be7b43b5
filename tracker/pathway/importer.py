"""Bulk import of historical pathways from CSV, one row per event, through the services.

Columns: ``mrn``, ``pathway_ref`` (any label that groups the rows of one pathway in
the file), ``trigger``, ``occurred_at`` (ISO 8601 with an offset), then data columns
named as in the data dictionary. On an ``open_pathway`` row the referral fields
(and, for a new MRN, ``family_name``, ``given_name``, ``birth_date``, ``sex``) are
given; ``occurred_at`` is the referral time. Lists are separated by ``|``; score
components are columns such as ``sins.location``; yes/no columns take yes, no,
true or false. A file with any bad row imports nothing.

The file is read twice, lazily, and never held whole: a first pass checks its form
(UTF-8, with or without a byte-order mark; every row as many cells as the header has
columns; no cell longer than CELL_LIMIT characters) and notes each pathway's and each
MRN's last row; the second records the rows. What the import keeps from one row to the
next (a pathway, its events, its patient) is let go after its last row, so memory does
not grow with the length of the file. Reasons are kept for the first REASONS_KEPT
refused rows; the others are counted.

Each row is judged by ``services.record_held``: every check of ``services.record``
but what a web request needs and a file of new pathways does not: reading a
pathway's events again for every row (the import holds them as it writes them), the
request-id lookup (the import makes its ids itself) and the version check (no one
else can see these pathways before the commit). Events are written in batches of
FLUSH_EVERY rows, in the file's order.
"""

from __future__ import annotations

import csv
import hashlib
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import event as orm_event
from sqlalchemy import select
from sqlalchemy.orm import lazyload

from tracker.core.text import identifier_key
from tracker.engine import services, tags
from tracker.engine import steps as d
from tracker.engine.dictionary import PATHWAY_FIELDS, Field, parse_datetime
from tracker.engine.errors import PathwayError
from tracker.engine.fields import gather
from tracker.engine.models import Event, Pathway
from tracker.engine.steps import all_fields_for
from tracker.extensions import db
from tracker.patients.fields import PATIENT_FIELDS
from tracker.patients.models import Patient
from tracker.patients.services import register_patient

REQUIRED = ("mrn", "pathway_ref", "trigger", "occurred_at")
# The steps recorded here as services.record records them. It changes more than the
# event and the derived columns for a suspected recurrence (the recurrence count) and
# refuses corrections and unknown triggers: those rows go to services.record itself,
# so that none of its rules is repeated here.
_RECORDED_HERE = frozenset(d.recordable()) - d.tagged(tags.NEW_EPISODE)
MRN_CHUNK = 500  # bound parameters per query when looking up the file's MRNs
PROGRESS_EVERY = 100  # rows between progress bar updates
FLUSH_EVERY = 500  # rows whose events are written together (one flush, in their order)
CELL_LIMIT = 10_000  # characters in one cell (the longest field takes 4,000)
LINE_LIMIT = 1_048_576  # bytes in one line of the file: a longer one is not a CSV row
REASONS_KEPT = 50  # refused rows whose reasons are kept; the others are counted
UTF8_BOM = b"\xef\xbb\xbf"


@dataclass
class ImportResult:
    rows: int = 0
    pathways: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)  # the first REASONS_KEPT
    refused: int = 0  # every reason, kept or not

    def refuse(self, number: int, message: str) -> None:
        self.refused += 1
        if len(self.errors) < REASONS_KEPT:
            self.errors.append((number, message))


class FileFault(Exception):
    """A fault after which the rest of the file cannot be read as rows."""

    def __init__(self, number: int, message: str) -> None:
        super().__init__(message)
        self.number, self.message = number, message


def row_data(fields: Iterable[Field], row: dict[str, str]) -> dict[str, Any]:
    """The row's cells as the service expects them; anything unparseable is passed on as
    written, to be refused by the service with its own words."""
    return gather(fields, lambda f: f.from_row(row))


def _unknown_columns(header: list[str]) -> list[str]:
    known = set(REQUIRED) | {f.name for f in PATIENT_FIELDS} | {f.name for f in PATHWAY_FIELDS}
    for t in d.transitions():
        for source in t.sources:
            for f in all_fields_for(t.trigger, source):
                known.update(f.csv_columns())
    return [name for name in header if name not in known]


def _header_faults(header: list[str]) -> list[str]:
    faults = []
    if not header:
        return [
            "the file is empty: its first row must name the columns (mrn, pathway_ref, "
            "trigger, occurred_at, then the data columns)"
        ]
    unnamed = [str(n) for n, name in enumerate(header, start=1) if not name]
    if unnamed:
        faults.append(f"column {', '.join(unnamed)} has no name: name it or remove it")
    seen: dict[str, int] = {}
    for n, name in enumerate(header, start=1):
        if name and name in seen:
            faults.append(
                f"column '{name}' is named twice (columns {seen[name]} and {n}): keep one of them"
            )
        seen.setdefault(name, n)
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        faults.append(f"missing columns: {', '.join(missing)}")
    unknown = [name for name in _unknown_columns(header) if name]
    if unknown:
        faults.append(f"unknown columns: {', '.join(unknown)}")
    return faults


@dataclass
class _LastRows:
    """Each pathway's and each MRN's last row in the file: after it, what the import
    holds for them is let go."""

    of_pathway: dict[str, int] = field(default_factory=dict)
    of_mrn: dict[str, int] = field(default_factory=dict)

    def note(self, number: int, row: dict[str, str]) -> None:
        self.of_pathway[row["pathway_ref"].strip()] = number
        self.of_mrn[identifier_key(row["mrn"])] = number


def import_rows(
    rows: Iterable[dict[str, str]],
    header: list[str],
    actor,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Record rows already in memory (row 1 is the header); the caller commits only if
    ``errors`` is empty. A file is imported by :func:`import_file`, which streams it."""
    numbered = list(enumerate(rows, start=2))
    result = ImportResult(rows=len(numbered))
    faults = _header_faults(header)
    if faults:
        for fault in faults:
            result.refuse(1, fault)
        return result
    last = _LastRows()
    for number, row in numbered:
        last.note(number, row)
    _record_rows(numbered, last, actor, result, progress)
    return result


def _record_rows(
    numbered: Iterable[tuple[int, dict[str, str]]],
    last: _LastRows,
    actor,
    result: ImportResult,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Record every row, in batches of FLUSH_EVERY rows.

    The services raise before they change anything, so a refused row leaves the
    session as it was and the next rows are still checked: every bad row is reported.
    """
    patients: dict[str, Patient] = {}
    pathways: dict[str, Pathway] = {}
    failed: set[str] = set()
    seen: dict[str, dict[bytes, int]] = defaultdict(dict)  # a pathway's rows, by content
    done = 0
    with _written_events() as events_of:
        for batch in _batches(numbered, FLUSH_EVERY):
            _find_registered(batch, patients)
            for number, row in batch:
                ref = row["pathway_ref"].strip()
                mrn = identifier_key(row["mrn"])
                try:
                    _not_a_repeat(seen[ref], number, row)
                    occurred_at = _occurred_at(row)
                    if ref in failed:
                        raise PathwayError(f"an earlier row of pathway '{ref}' was refused")
                    if row["trigger"].strip() == d.OPEN_TRIGGER:
                        if ref in pathways:
                            raise PathwayError(f"pathway '{ref}' is opened twice")
                        pathways[ref] = _open(row, occurred_at, actor, patients)
                        result.pathways += 1
                    elif ref not in pathways:
                        raise PathwayError(
                            f"pathway '{ref}' has no open_pathway row before this one"
                        )
                    else:
                        _record(pathways[ref], events_of[pathways[ref]], row, occurred_at, actor)
                except PathwayError as exc:  # DuplicateMRN too
                    result.refuse(number, exc.message)
                    failed.add(ref)
                if last.of_pathway.get(ref, number) <= number:
                    pathway = pathways.pop(ref, None)
                    if pathway is not None:
                        events_of.pop(pathway, None)
                    failed.discard(ref)
                    seen.pop(ref, None)
                if last.of_mrn.get(mrn, number) <= number:
                    patients.pop(mrn, None)
                done += 1
                if progress and done % PROGRESS_EVERY == 0:
                    progress(PROGRESS_EVERY)
            db.session.flush()
    if progress and done % PROGRESS_EVERY:
        progress(done % PROGRESS_EVERY)


def _batches(items: Iterable, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _not_a_repeat(seen: dict[bytes, int], number: int, row: dict[str, str]) -> None:
    """Refuse a row the same, cell for cell, as an earlier row of its pathway (an exact
    repeat is always a pathway's: the pathway label is one of its cells)."""
    content = hashlib.sha256("\x00".join(row.values()).encode()).digest()
    first = seen.setdefault(content, number)
    if first != number:
        raise PathwayError(
            f"the same as row {first}, cell for cell: remove one of them "
            "(each step is recorded once)"
        )


def _occurred_at(row: dict[str, str]) -> datetime:
    try:
        return parse_datetime(row["occurred_at"])
    except ValueError as exc:
        raise PathwayError(f"occurred_at {exc}") from None


@contextmanager
def _written_events() -> Iterator[dict[Pathway, list[Event]]]:
    """Each pathway's events as they are made, in order, so no row reads them back.

    The referral's event is taken from the session as ``open_pathway`` adds it (the
    service does not return it); the import appends the others itself.
    """
    events_of: dict[Pathway, list[Event]] = defaultdict(list)

    def written(session, instance) -> None:
        # The referral's event; the import appends the others itself as it makes them.
        if isinstance(instance, Event) and instance.trigger == d.OPEN_TRIGGER:
            events_of[instance.pathway].append(instance)

    session = db.session()
    orm_event.listen(session, "transient_to_pending", written)
    try:
        yield events_of
    finally:
        orm_event.remove(session, "transient_to_pending", written)


def _find_registered(batch: list[tuple[int, dict[str, str]]], patients: dict) -> None:
    """Add to ``patients`` those already registered under the batch's new MRNs, by
    ``identifier_key``; matched as ``find_by_mrn`` matches, a few hundred MRNs per query."""
    wanted = sorted({identifier_key(row["mrn"]) for _, row in batch} - patients.keys())
    key = Patient.mrn_key
    for i in range(0, len(wanted), MRN_CHUNK):
        query = (
            select(key, Patient)
            .where(key.in_(wanted[i : i + MRN_CHUNK]))
            .options(lazyload(Patient.pathways))  # not needed to add one
        )
        patients.update((mrn, patient) for mrn, patient in db.session.execute(query))


def _open(row: dict[str, str], occurred_at: datetime, actor, patients: dict[str, Patient]):
    mrn = identifier_key(row["mrn"])
    patient = patients.get(mrn)
    # Written with the batch; the file's own MRNs are known to ``patients`` already, so the
    # service's lookup need not flush the batch to see them.
    with db.session.no_autoflush:
        if patient is None:
            patient = register_patient(actor, flush=False, **row_data(PATIENT_FIELDS, row))
            patients[mrn] = patient
        fields = {**row_data(PATHWAY_FIELDS, row), "referral_received_at": occurred_at}
        return services.open_pathway(
            actor, patient, flush=False, confirm_another_pathway=True, **fields
        )


def _record(
    pathway: Pathway, events: list[Event], row: dict[str, str], occurred_at: datetime, actor
) -> None:
    """``services.record_held`` on a pathway this import opened, with its events in hand;
    the event is written with the next batch's flush."""
    trigger = row["trigger"].strip()
    if pathway.patient.mrn_key != identifier_key(row["mrn"]):
        raise PathwayError(
            f"pathway '{row['pathway_ref'].strip()}' belongs to MRN {pathway.patient.mrn}"
        )
    data = row_data(all_fields_for(trigger, pathway.state), row)
    if trigger not in _RECORDED_HERE:
        db.session.flush()  # services.record reads the pathway's events back
        recorded = services.record(
            pathway, trigger, data, occurred_at, actor, pathway.version, uuid.uuid4().hex
        )
        events.append(recorded.event)
        return
    event = services.record_held(
        pathway, events, trigger, data, occurred_at, actor, uuid.uuid4().hex, flush=False
    )
    events.append(event)


def import_file(path: str, actor, progress_factory=None) -> ImportResult:
    """Check the file's form, then record its rows: two lazy reads of the file."""
    result = ImportResult()
    last = _LastRows()
    for number, row in _read(path, result, count=True):
        last.note(number, row)
    if result.refused:
        return result
    rows = _read(path, result)  # the same checks again: nothing is taken on trust
    if progress_factory is None:
        _record_rows(rows, last, actor, result)
        return result
    with progress_factory(result.rows) as bar:
        _record_rows(rows, last, actor, result, progress=bar.update)
    return result


def _read(
    path: str, result: ImportResult, count: bool = False
) -> Iterator[tuple[int, dict[str, str]]]:
    """The file's rows, one at a time, as (row number, cells by column): row 1 is the
    header, and blank rows are numbered (as a spreadsheet shows them) but skipped. A row
    of the wrong form is refused in ``result`` and not given; a fault after which the
    file cannot be read on is refused and ends the reading."""
    with open(path, "rb") as handle:
        lines = _Lines(handle)
        reader = csv.reader(lines)
        header: list[str] | None = None
        try:
            for cells in reader:
                number = lines.row
                lines.row += 1
                if header is None:
                    header = [name.strip() for name in cells]
                    for fault in _header_faults(header):
                        result.refuse(1, fault)
                    if result.refused:
                        return
                    continue
                if not cells:
                    continue
                result.rows += count
                fault = _row_fault(header, cells)
                if fault:
                    result.refuse(number, fault)
                    continue
                yield number, dict(zip(header, cells, strict=True))
        except FileFault as fault:
            result.refuse(fault.number, f"{fault.message} (the rest of the file was not read)")
        except csv.Error as exc:
            result.refuse(lines.row, f"{_csv_fault(exc)} (the rest of the file was not read)")
        if header is None and not result.refused:
            result.refuse(1, _header_faults([])[0])


def _row_fault(header: list[str], cells: list[str]) -> str | None:
    extra = len(cells) - len(header)
    if extra > 0:
        return (
            f"{extra} {_cells(extra)} more than the header's {len(header)} columns: "
            "remove them or add columns to the header"
        )
    if extra < 0:
        return (
            f"{-extra} {_cells(-extra)} fewer than the header's {len(header)} columns: "
            "add the missing cells (an empty cell is written as nothing between two commas)"
        )
    for name, cell in zip(header, cells, strict=True):
        if len(cell) > CELL_LIMIT:
            return (
                f"the cell in column '{name}' has {len(cell):,} characters; a cell may have "
                f"at most {CELL_LIMIT:,}: shorten it"
            )
    return None


def _cells(n: int) -> str:
    return "cell" if n == 1 else "cells"


def _csv_fault(exc: csv.Error) -> str:
    if "field larger than field limit" in str(exc):
        return (
            f"a cell is longer than {csv.field_size_limit():,} characters (a cell may have at "
            f'most {CELL_LIMIT:,}), or a quote (") that opens a cell is not closed: shorten '
            "the cell or close the quote"
        )
    if "new-line character seen in unquoted field" in str(exc):
        return (
            "a line ends with a carriage return alone (as on old Macs), which the import "
            "does not read: save the file as CSV UTF-8"
        )
    return f"the row cannot be read as CSV ({exc}): save the file as CSV UTF-8"


class _Lines:
    """The file's lines, decoded as UTF-8 (a leading byte-order mark dropped), for the
    CSV reader; ``row`` is the number of the row being read, for the reasons."""

    def __init__(self, handle) -> None:
        self.handle = handle
        self.row = 1
        self.first = True

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        raw = self.handle.readline(LINE_LIMIT)
        if not raw:
            raise StopIteration
        if self.first:
            self.first = False
            raw = raw.removeprefix(UTF8_BOM)
        if len(raw) >= LINE_LIMIT and not raw.endswith(b"\n"):
            raise FileFault(
                self.row,
                f"a line is longer than {LINE_LIMIT:,} bytes, which is not a row of a CSV "
                "file: save the file as CSV UTF-8",
            )
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FileFault(
                self.row,
                f"the file is not UTF-8 (byte 0x{raw[exc.start]:02x} at row {self.row}): "
                "save it as CSV UTF-8",
            ) from None
