"""MRNs compared by one key: ``patient.mrn_key`` (tracker.core.text.identifier_key: NFKC,
no outer spaces, case-folded), computed by Python, with its own unique index. It replaces
the unique index on lower(mrn), which on SQLite folds only ASCII letters: 'ÄX1' and
'äx1' were two patients there.

Existing rows get their key here. Two patients whose MRNs have one key are the same MRN
written two ways: the upgrade stops and names both (ids and MRNs), to be merged or
corrected by a person first; it never merges them itself.

Revision ID: 892dc234db1c
Revises: a7c3e5f1d2b9
Create Date: 2026-11-29 16:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '892dc234db1c'
down_revision = 'a7c3e5f1d2b9'
branch_labels = None
depends_on = None

_PATIENT = sa.table(
    "patient",
    sa.column("id", sa.Integer),
    sa.column("mrn", sa.String),
    sa.column("mrn_key", sa.String),
)


class SameMRNTwice(RuntimeError):
    pass


def _shown(mrn: str) -> str:
    """'ÄX1', and its code points when it is not plain ASCII: two MRNs that look alike on
    screen (a precomposed letter, a combining accent) must be told apart."""
    return repr(mrn) if mrn.isascii() else f"{mrn!r}, that is {ascii(mrn)}"


def upgrade():
    from tracker.core.text import identifier_key

    connection = op.get_bind()
    rows = connection.execute(
        sa.select(_PATIENT.c.id, _PATIENT.c.mrn).order_by(_PATIENT.c.id)
    ).all()
    holders: dict[str, list[tuple[int, str]]] = {}
    for patient_id, mrn in rows:
        holders.setdefault(identifier_key(mrn), []).append((patient_id, mrn))
    clashes = [found for found in holders.values() if len(found) > 1]
    if clashes:
        lines = [
            " and ".join(f"patient {patient_id} (MRN {_shown(mrn)})" for patient_id, mrn in found)
            for found in clashes
        ]
        raise SameMRNTwice(
            "These patients have one MRN written in different ways (letter case, accents "
            "or Unicode forms): "
            + "; ".join(lines)
            + ". Merge each into one patient, or correct the MRN that is wrong, then "
            "upgrade again. Nothing was changed."
        )

    # Outside a batch, and no batch rebuilds the table: SQLite's copy of a table cannot
    # reflect an expression index, and dropping the old table breaks the pathways' keys.
    op.drop_index("uq_patient_mrn_lower", table_name="patient")
    with op.batch_alter_table("patient", schema=None, recreate="never") as batch_op:
        # NOT NULL needs a default to be added in place on SQLite; every row gets its key
        # below (and from the model after), and a second row without one is refused by
        # the unique index.
        batch_op.add_column(sa.Column("mrn_key", sa.String(), nullable=False, server_default=""))
    for key, ((patient_id, _),) in holders.items():
        connection.execute(
            sa.update(_PATIENT).where(_PATIENT.c.id == patient_id).values(mrn_key=key)
        )
    op.create_index("uq_patient_mrn_key", "patient", ["mrn_key"], unique=True)


def downgrade():
    op.drop_index("uq_patient_mrn_key", table_name="patient")
    with op.batch_alter_table("patient", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("mrn_key")
    op.create_index("uq_patient_mrn_lower", "patient", [sa.text("lower(mrn)")], unique=True)
