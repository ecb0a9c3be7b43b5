"""Name search by a stored, folded key: ``patient.search_key`` (tracker.core.text.search_key
of "family given": case-folded, accents and apostrophes dropped, punctuation a space),
compared in byte order on PostgreSQL (collation "C", as SQLite compares), with an index,
so a name prefix is one range of it on both databases. Existing rows get their key here.

Revision ID: c4d8e2a6b1f3
Revises: 5d2b8e4f6a13
Create Date: 2026-11-29 17:10:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c4d8e2a6b1f3'
down_revision = '5d2b8e4f6a13'
branch_labels = None
depends_on = None

_PATIENT = sa.table(
    "patient",
    sa.column("id", sa.Integer),
    sa.column("family_name", sa.String),
    sa.column("given_name", sa.String),
    sa.column("search_key", sa.String),
)
_SEARCH_TEXT = sa.String().with_variant(sa.String(collation="C"), "postgresql")


def upgrade():
    from tracker.core.text import search_key

    # In place (no batch copy of the table: the MRN key's index is on it, see 892dc234db1c).
    with op.batch_alter_table("patient", schema=None, recreate="never") as batch_op:
        batch_op.add_column(
            sa.Column("search_key", _SEARCH_TEXT, nullable=False, server_default="")
        )
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(_PATIENT.c.id, _PATIENT.c.family_name, _PATIENT.c.given_name)
    ).all()
    for patient_id, family, given in rows:
        connection.execute(
            sa.update(_PATIENT)
            .where(_PATIENT.c.id == patient_id)
            .values(search_key=search_key(f"{family} {given}"))
        )
    op.create_index("ix_patient_search_key", "patient", ["search_key"])


def downgrade():
    op.drop_index("ix_patient_search_key", table_name="patient")
    with op.batch_alter_table("patient", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("search_key")
