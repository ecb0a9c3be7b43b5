"""Bulk import of historical pathways from CSV, one row per event, through the services.

Columns: ``mrn``, ``pathway_ref`` (any label that groups the rows of one pathway in
the file), ``trigger``, ``occurred_at`` (ISO 8601 with an offset), then data columns
named as in the data dictionary. On an ``open_pathway`` row the referral fields
(and, for a new MRN, ``family_name``, ``given_name``, ``birth_date``, ``sex``) are
given; ``occurred_at`` is the referral time. Lists are separated by ``|``; score
components are columns such as ``sins.location``; yes/no columns take yes, no,
true or false. A file with any bad row imports nothing.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tracker.pathway import definition as d
from tracker.pathway import services
from tracker.pathway.dictionary import (
    PATHWAY_FIELDS,
    PATIENT_FIELDS,
    Field,
    all_fields_for,
    parse_datetime,
)
from tracker.pathway.errors import DuplicateMRN, PathwayError
from tracker.patients.services import find_by_mrn, register_patient

REQUIRED = ("mrn", "pathway_ref", "trigger", "occurred_at")
YES, NO = {"yes", "y", "true", "1"}, {"no", "n", "false", "0"}


@dataclass
class ImportResult:
    rows: int = 0
    pathways: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


def _value(f: Field, raw: str) -> Any:
    """A cell as the service expects it; anything unparseable is passed on to be refused."""
    if f.kind == "multi":
        return [part.strip() for part in raw.split("|") if part.strip()]
    if f.kind == "int":
        return int(raw) if raw.lstrip("-").isdigit() else raw
    if f.kind == "number":
        try:
            return float(raw)
        except ValueError:
            return raw
    if f.kind == "bool":
        lowered = raw.lower()
        return True if lowered in YES else False if lowered in NO else raw
    return raw


def row_data(fields: Iterable[Field], row: dict[str, str]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for f in fields:
        if f.kind == "score":
            parts = {c: row.get(f"{f.name}.{c}", "").strip() for c in f.score.components}
            given = {c: int(v) if v.lstrip("-").isdigit() else v for c, v in parts.items() if v}
            if given:
                data[f.name] = given
            continue
        raw = (row.get(f.name) or "").strip()
        if raw:
            data[f.name] = _value(f, raw)
    return data


def _unknown_columns(header: list[str]) -> list[str]:
    known = set(REQUIRED) | {f.name for f in PATIENT_FIELDS} | {f.name for f in PATHWAY_FIELDS}
    for t in d.TRANSITIONS:
        for source in t.sources:
            for f in all_fields_for(t.trigger, source):
                if f.kind == "score":
                    known |= {f"{f.name}.{c}" for c in f.score.components}
                else:
                    known.add(f.name)
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
    pathways: dict[str, Any] = {}
    failed: set[str] = set()
    for number, row in enumerate(rows, start=2):  # row 1 is the header
        if progress:
            progress(1)
        ref, trigger = row["pathway_ref"].strip(), row["trigger"].strip()
        try:
            occurred_at = parse_datetime(row["occurred_at"])
        except ValueError as exc:
            result.errors.append((number, f"occurred_at {exc}"))
            failed.add(ref)
            continue
        if ref in failed:
            result.errors.append((number, f"an earlier row of pathway '{ref}' was refused"))
            continue
        try:
            if trigger == d.OPEN_TRIGGER:
                if ref in pathways:
                    raise PathwayError(f"pathway '{ref}' is opened twice")
                patient = find_by_mrn(row["mrn"])
                if patient is None:
                    patient = register_patient(actor, **row_data(PATIENT_FIELDS, row))
                fields = {**row_data(PATHWAY_FIELDS, row), "referral_received_at": occurred_at}
                pathways[ref] = services.open_pathway(actor, patient, **fields)
                result.pathways += 1
                continue
            pathway = pathways.get(ref)
            if pathway is None:
                raise PathwayError(f"pathway '{ref}' has no open_pathway row before this one")
            if pathway.patient.mrn.lower() != row["mrn"].strip().lower():
                raise PathwayError(f"pathway '{ref}' belongs to MRN {pathway.patient.mrn}")
            data = row_data(all_fields_for(trigger, pathway.state), row)
            services.record(
                pathway,
                trigger,
                data,
                occurred_at,
                actor,
                pathway.version,
                uuid.uuid4().hex,
            )
        except DuplicateMRN as exc:
            result.errors.append((number, exc.message))
            failed.add(ref)
        except PathwayError as exc:
            result.errors.append((number, exc.message))
            failed.add(ref)
    return result


def import_file(path: str, actor, progress_factory=None) -> ImportResult:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or []]
        rows = [{(k or "").strip(): (v or "") for k, v in row.items()} for row in reader]
    if progress_factory is None:
        return import_rows(rows, header, actor)
    with progress_factory(len(rows)) as bar:
        return import_rows(rows, header, actor, progress=bar.update)
