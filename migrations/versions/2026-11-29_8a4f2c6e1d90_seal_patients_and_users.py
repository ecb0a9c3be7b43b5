"""Seal patient and user rows: a ``seal`` column, HMAC-SHA256 of the row's declared
columns under the audit key, so `flask tracker verify` names a row changed in the
database directly (a birth date, an MRN, a role).

Read by hand:
- Every existing row is sealed with the app's key (AUDIT_KEY / AUDIT_KEY_FILE), the
  same key the chains use: run this with the key the app will use. Without one the
  migration stops and says so, and nothing is changed.
- The columns each seal covers are frozen below, as this revision seals them; the
  models' SEALED tuples must match them. A later column added to a SEALED tuple needs
  a migration of its own that seals the rows again.

Revision ID: 8a4f2c6e1d90
Revises: 5d0c7e21a9f4
Create Date: 2026-11-29 16:00:00

"""
from alembic import op
import sqlalchemy as sa
from flask import current_app


# revision identifiers, used by Alembic.
revision = '8a4f2c6e1d90'
down_revision = '5d0c7e21a9f4'
branch_labels = None
depends_on = None

SEALED = {
    "patient": (
        ("mrn", None),
        ("family_name", None),
        ("given_name", None),
        ("birth_date", sa.Date()),
        ("sex", None),
        ("nhs_number", None),
        ("gp_practice", None),
    ),
    "user": (
        ("username", None),
        ("full_name", None),
        ("role", None),
        ("active", sa.Boolean()),
        ("password_hash", None),
    ),
}


def _key() -> bytes:
    key = current_app.extensions.get("audit_key")
    if not key:
        raise RuntimeError(
            "Sealing the patient and user rows needs the audit key, and none is loaded: "
            "set AUDIT_KEY, or AUDIT_KEY_FILE to the file holding it (the key the app "
            "uses; see README, Configuration), then run `flask db upgrade` again."
        )
    return key


def _seal_rows(name, key):
    from tracker.audit.seals import row_seal

    columns = SEALED[name]
    names = [column for column, _ in columns]
    table = sa.table(
        name,
        sa.column("id"),
        sa.column("seal"),
        *(sa.column(column, type_) if type_ is not None else sa.column(column) for column, type_ in columns),
    )
    bind = op.get_bind()
    last_id = 0
    while True:
        rows = bind.execute(
            sa.select(table).where(table.c.id > last_id).order_by(table.c.id).limit(5000)
        ).all()
        if not rows:
            break
        bind.execute(
            table.update().where(table.c.id == sa.bindparam("row_id")).values(seal=sa.bindparam("new_seal")),
            [
                {"row_id": row.id, "new_seal": row_seal(key, name, row.id, names, row._mapping)}
                for row in rows
            ],
        )
        last_id = rows[-1].id


def upgrade():
    key = _key()  # before any change: no key, nothing altered
    for name in ("patient", "user"):
        with op.batch_alter_table(name, schema=None, recreate='never') as batch_op:
            batch_op.add_column(sa.Column('seal', sa.String(length=64), nullable=False, server_default=''))
        _seal_rows(name, key)


def downgrade():
    for name in ("user", "patient"):
        with op.batch_alter_table(name, schema=None, recreate='never') as batch_op:
            batch_op.drop_column('seal')
