"""The bulk loader (tracker.core.bulk_load): rows stored exactly as SQLAlchemy's own insert
stores them, and primary keys given out before the insert that no other writer takes."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from tracker.core.bulk_load import insert_rows, prepare, reserve_ids
from tracker.core.text import identifier_key
from tracker.demo import seed
from tracker.engine.models import Event, Pathway, PathwayClock, PathwayFact, PathwayTask
from tracker.engine.steps import CORRECTION_TRIGGERS
from tracker.extensions import db
from tracker.patients.models import Patient


def _stored(connection, table, row_id: int, columns: list[str]) -> tuple:
    """A row's values as the driver returns them, before any type processing."""
    names = ", ".join(columns)
    return tuple(
        connection.exec_driver_sql(
            f"SELECT {names} FROM {table.name} WHERE id = {int(row_id)}"
        ).one()
    )


def _twice(connection, table, row: dict, a: dict, b: dict) -> tuple[int, int]:
    """``row`` with the changes ``a`` inserted by SQLAlchemy and with ``b`` by the bulk
    loader; both ids."""
    first, second = reserve_ids(connection, table, 2)
    connection.execute(table.insert(), [{**row, **a, "id": first}])
    insert_rows(connection, table, [{**row, **b, "id": second}])
    return first, second


def test_the_bulk_loader_stores_what_sqlalchemy_stores(session):
    seed(60, seed_value=3, workers=0)
    session.flush()
    connection = session.connection()

    def one(model, *where):
        row = connection.execute(select(model.__table__).where(*where).limit(1)).one()
        return {k: v for k, v in row._mapping.items() if k != "id"}

    patient = one(Patient)
    ids = _twice(
        connection,
        Patient.__table__,
        patient,
        {"mrn": "BULK-A", "mrn_key": identifier_key("BULK-A"), "nhs_number": None},
        {"mrn": "BULK-B", "mrn_key": identifier_key("BULK-B"), "nhs_number": None},
    )
    pathway = one(Pathway, Pathway.__table__.c.tracking_note.is_not(None))
    pathways = _twice(
        connection, Pathway.__table__, pathway, {"patient_id": ids[0]}, {"patient_id": ids[1]}
    )
    compared = 0
    for model, where in (
        (Event, Event.__table__.c.trigger == "record_lesion"),
        (Event, Event.__table__.c.trigger.in_(CORRECTION_TRIGGERS)),
        (PathwayClock, PathwayClock.__table__.c.stopped_at.is_not(None)),
        (PathwayFact, PathwayFact.__table__.c.code != ""),
        (PathwayTask, PathwayTask.__table__.c.due_on.is_not(None)),
    ):
        row = one(model, where)
        a, b = {"pathway_id": pathways[0]}, {"pathway_id": pathways[1]}
        if model is Event:
            a |= {
                "request_id": f"bulk-a{compared}",
                "chain_seq": 10**9 + 2 * compared,
            }
            b |= {
                "request_id": f"bulk-b{compared}",
                "chain_seq": 10**9 + 2 * compared + 1,
            }
        copies = _twice(connection, model.__table__, row, a, b)
        columns = [name for name in row if name not in a]
        stored = [_stored(connection, model.__table__, i, columns) for i in copies]
        assert stored[0] == stored[1], model.__tablename__
        compared += 1
    for table, copies in ((Patient.__table__, ids), (Pathway.__table__, pathways)):
        columns = [c.name for c in table.c if c.name not in ("id", "mrn", "mrn_key", "patient_id")]
        assert _stored(connection, table, copies[0], columns) == _stored(
            connection, table, copies[1], columns
        )
    # And read back through the models, the two are the same values.
    first, second = (session.get(Pathway, i) for i in pathways)
    assert first.referral_received_at == second.referral_received_at
    assert first.presenting_symptoms == second.presenting_symptoms
    assert compared == 5


def test_prepare_needs_no_connection_and_processes_each_column(session):
    dialect = db.engine.dialect
    prepared = prepare(dialect, Pathway.__table__, [])
    assert prepared.names == () and prepared.values == []
    rows = [{"id": 1, "presenting_symptoms": ["back_pain"]}, {"id": 2, "presenting_symptoms": []}]
    prepared = prepare(dialect, Pathway.__table__, rows)
    assert prepared.names == ("id", "presenting_symptoms")
    assert [v[0] for v in prepared.values] == [1, 2]
    assert all(not isinstance(v[1], list) for v in prepared.values)  # serialised, not as given
    joined = prepared.joined(prepare(dialect, Pathway.__table__, [{"state": "a"}, {"state": "b"}]))
    assert joined.names == ("id", "presenting_symptoms", "state")
    assert [v[2] for v in joined.values] == ["a", "b"]


def test_reserved_ids_are_new_and_not_given_twice(session, users):
    connection = session.connection()
    table = Patient.__table__
    highest = session.scalar(select(table.c.id).order_by(table.c.id.desc()).limit(1)) or 0
    first = reserve_ids(connection, table, 3)
    second = reserve_ids(connection, table, 2)  # nothing inserted in between
    assert first == sorted(first) and second == sorted(second)
    assert min(first) > highest
    assert not set(first) & set(second)
    assert reserve_ids(connection, table, 0) == []


def test_another_writer_does_not_take_the_reserved_ids(session, app):
    connection = session.connection()
    mine = set(reserve_ids(connection, Pathway.__table__, 5))
    mine_patients = set(reserve_ids(connection, Patient.__table__, 5))
    with db.engine.connect() as other:
        if other.dialect.name == "sqlite":
            other.exec_driver_sql("PRAGMA busy_timeout = 50")
        try:
            theirs = set(reserve_ids(other, Pathway.__table__, 5))
            # An insert that takes its id from the database takes none of them either.
            patient = other.execute(
                Patient.__table__.insert().returning(Patient.__table__.c.id),
                {
                    "mrn": "RESERVE-1",
                    "mrn_key": identifier_key("RESERVE-1"),
                    "family_name": "Other",
                    "given_name": "Writer",
                    "birth_date": date(1960, 1, 1),
                    "sex": "female",
                    "created_at": datetime.now(UTC),
                },
            ).scalar_one()
        except OperationalError as error:
            # SQLite: this transaction holds the write lock until it ends.
            assert other.dialect.name == "sqlite" and "locked" in str(error)
        else:
            assert other.dialect.name == "postgresql"
            assert not mine & theirs
            assert patient not in mine_patients
        other.rollback()


def test_rows_that_give_different_columns_are_refused(session):
    rows = [{"id": 1, "state": "referral"}, {"id": 2}]
    with pytest.raises(ValueError, match="every row must give the same columns"):
        prepare(db.engine.dialect, Pathway.__table__, rows)
