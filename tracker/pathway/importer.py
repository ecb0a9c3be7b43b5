"""Bulk import of historical pathways from CSV, one row per event, through the services.

Columns: ``mrn``, ``pathway_ref`` (any label that groups the rows of one pathway in
the file), ``trigger``, ``occurred_at`` (ISO 8601 with an offset), then data columns
named as in the data dictionary. On an ``open_pathway`` row the referral fields
(and, for a new MRN, ``family_name``, ``given_name``, ``birth_date``, ``sex``) are
given; ``occurred_at`` is the referral time. Lists are separated by ``|``; score
components are columns such as ``sins.location``; yes/no columns take yes, no,
true or false. A file with any bad row imports nothing.

Each row is judged by ``services.record_held``: every check of ``services.record``
but what a web request needs and a file of new pathways does not: reading a
pathway's events again for every row (the import holds them as it writes them), the
request-id lookup (the import makes its ids itself) and the version check (no one
else can see these pathways before the commit). Events are written in batches of
FLUSH_EVERY rows, in the file's order.
"""

from __future__ import annotations

import csv
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


@dataclass
class ImportResult:
    rows: int = 0
    pathways: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


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


def import_rows(
    rows: list[dict[str, str]],
    header: list[str],
    actor,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Record every row; the caller commits only if ``errors`` is empty.

    The services raise before they change anything, so a refused row leaves the
    session as it was and the next rows are still checked: every bad row is reported.
    """
    result = ImportResult(rows=len(rows))
    missing = [name for name in REQUIRED if name not in header]
    unknown = _unknown_columns(header)
    if missing or unknown:
        if missing:
            result.errors.append((1, f"missing columns: {', '.join(missing)}"))
        if unknown:
            result.errors.append((1, f"unknown columns: {', '.join(unknown)}"))
        return result
    # A pathway's events are let go after its last row, so a long file is not held whole.
    last_row = {row["pathway_ref"].strip(): number for number, row in enumerate(rows, start=2)}
    patients = _registered_patients(row["mrn"] for row in rows)
    pathways: dict[str, Pathway] = {}
    failed: set[str] = set()
    with _written_events() as events_of:
        for number, row in enumerate(rows, start=2):  # row 1 is the header
            if progress and (number - 1) % PROGRESS_EVERY == 0:
                progress(PROGRESS_EVERY)
            ref = row["pathway_ref"].strip()
            try:
                occurred_at = _occurred_at(row)
                if ref in failed:
                    raise PathwayError(f"an earlier row of pathway '{ref}' was refused")
                if row["trigger"].strip() == d.OPEN_TRIGGER:
                    if ref in pathways:
                        raise PathwayError(f"pathway '{ref}' is opened twice")
                    pathways[ref] = _open(row, occurred_at, actor, patients)
                    result.pathways += 1
                elif ref not in pathways:
                    raise PathwayError(f"pathway '{ref}' has no open_pathway row before this one")
                else:
                    _record(pathways[ref], events_of[pathways[ref]], row, occurred_at, actor)
            except PathwayError as exc:  # DuplicateMRN too
                result.errors.append((number, exc.message))
                failed.add(ref)
            if last_row[ref] == number and ref in pathways:
                events_of.pop(pathways[ref], None)
            if number % FLUSH_EVERY == 0:
                db.session.flush()
        db.session.flush()
    if progress and len(rows) % PROGRESS_EVERY:
        progress(len(rows) % PROGRESS_EVERY)
    return result


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


def _registered_patients(mrns: Iterable[str]) -> dict[str, Patient]:
    """The patients already registered under the file's MRNs, by ``identifier_key``.

    Matched as ``find_by_mrn`` matches, a few hundred MRNs per query.
    """
    wanted = sorted({identifier_key(mrn) for mrn in mrns})
    key = Patient.mrn_key
    found: dict[str, Patient] = {}
    for i in range(0, len(wanted), MRN_CHUNK):
        query = (
            select(key, Patient)
            .where(key.in_(wanted[i : i + MRN_CHUNK]))
            .options(lazyload(Patient.pathways))  # not needed to add one
        )
        found.update((mrn, patient) for mrn, patient in db.session.execute(query))
    return found


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
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or []]
        rows = [{(k or "").strip(): (v or "") for k, v in row.items()} for row in reader]
    if progress_factory is None:
        return import_rows(rows, header, actor)
    with progress_factory(len(rows)) as bar:
        return import_rows(rows, header, actor, progress=bar.update)
