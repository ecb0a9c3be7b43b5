"""Audit entries linked into their chain in batches, so that writing one waits on no row.

An entry is now written with ``entry_hash`` (HMAC of its content) and empty chain
columns; the sealer fills ``chain_seq``, ``prev_hash`` and ``hash`` once
(tracker.audit.chain.seal_pending). So the chain columns may be empty, and the
append-only rule lets through exactly that one UPDATE: from empty chain columns to
filled ones, every other column unchanged. DELETE and TRUNCATE stay refused.

The entries already written keep their place and hashes (their ``entry_hash`` stays
empty: the chain covered their content from the start). On SQLite the table is rebuilt
to make the columns nullable, which drops its triggers: they are made again at the end.

Revision ID: c41d7e2a9b58
Revises: 6ef40d5c75bc
Create Date: 2026-11-30 03:00:00

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "c41d7e2a9b58"
down_revision = "6ef40d5c75bc"
branch_labels = None
depends_on = None

# Every column but the three the sealer fills, as of this revision.
_KEPT = (
    "id", "at", "user_id", "username", "action", "outcome", "patient_id", "pathway_id",
    "detail", "address", "method", "path", "entry_hash",
)
_CHAIN = ("chain_seq", "prev_hash", "hash")
_REFUSED = "the audit log is append-only: rows cannot be updated, except to link a new entry into its chain"


def _sealing_update(old, new, same):
    """The SQL condition that an UPDATE only links an entry into the chain."""
    return " AND ".join(
        [f"{old}.{c} IS NULL" for c in _CHAIN]
        + [f"{new}.{c} IS NOT NULL" for c in _CHAIN]
        + [same(c) for c in _KEPT]
    )


def _drop_triggers(dialect):
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_entry_no_truncate ON audit_entry")
        op.execute("DROP TRIGGER IF EXISTS audit_entry_append_only ON audit_entry")
        op.execute("DROP FUNCTION IF EXISTS audit_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_entry_append_only_update")
        op.execute("DROP TRIGGER IF EXISTS audit_entry_append_only_delete")


def _create_triggers(dialect, sealing: bool):
    if dialect == "postgresql":
        allowed = ""
        if sealing:
            condition = _sealing_update("OLD", "NEW", lambda c: f"NEW.{c} IS NOT DISTINCT FROM OLD.{c}")
            allowed = f"IF TG_OP = 'UPDATE' AND {condition} THEN RETURN NEW; END IF;"
        op.execute(
            f"""CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                {allowed}
                RAISE EXCEPTION 'the audit log is append-only: % on audit_entry is refused', TG_OP
                    USING ERRCODE = 'restrict_violation';
            END
            $$"""
        )
        op.execute(
            """CREATE TRIGGER audit_entry_append_only BEFORE UPDATE OR DELETE ON audit_entry
            FOR EACH ROW EXECUTE FUNCTION audit_append_only()"""
        )
        op.execute(
            """CREATE TRIGGER audit_entry_no_truncate BEFORE TRUNCATE ON audit_entry
            FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()"""
        )
        return
    when = ""
    message = "the audit log is append-only: rows cannot be updated"
    if sealing:
        when = "WHEN NOT (" + _sealing_update("OLD", "NEW", lambda c: f"NEW.{c} IS OLD.{c}") + ")"
        message = _REFUSED
    op.execute(
        f"""CREATE TRIGGER audit_entry_append_only_update BEFORE UPDATE ON audit_entry {when}
        BEGIN SELECT RAISE(ABORT, '{message}'); END"""
    )
    op.execute(
        """CREATE TRIGGER audit_entry_append_only_delete BEFORE DELETE ON audit_entry
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: rows cannot be deleted'); END"""
    )


def upgrade():
    dialect = op.get_bind().dialect.name
    _drop_triggers(dialect)
    with op.batch_alter_table("audit_entry", schema=None) as batch_op:
        batch_op.add_column(sa.Column("entry_hash", sa.String(length=64), nullable=True))
        batch_op.alter_column("chain_seq", existing_type=sa.Integer(), nullable=True)
        batch_op.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=True)
        batch_op.alter_column("hash", existing_type=sa.String(length=64), nullable=True)
        batch_op.create_index(
            "ix_audit_entry_pending",
            ["id"],
            unique=False,
            postgresql_where=sa.text("hash IS NULL"),
            sqlite_where=sa.text("hash IS NULL"),
        )
    _create_triggers(dialect, sealing=True)


def downgrade():
    # The entries not yet linked would have no place in the chain: link them first
    # (`flask tracker seal-audit`); the downgrade refuses while any is left.
    bind = op.get_bind()
    dialect = bind.dialect.name
    left = bind.execute(sa.text("SELECT count(*) FROM audit_entry WHERE hash IS NULL")).scalar()
    if left:
        raise RuntimeError(
            f"{left} audit entries are not yet linked into their chain: run "
            "`flask tracker seal-audit`, then downgrade again"
        )
    _drop_triggers(dialect)
    with op.batch_alter_table("audit_entry", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_entry_pending")
        batch_op.alter_column("hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("chain_seq", existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column("entry_hash")
    _create_triggers(dialect, sealing=False)
