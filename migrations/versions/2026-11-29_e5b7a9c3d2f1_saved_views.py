"""Saved views: a worklist's or the patient tracking list's filters and sort under a name,
private or shared with everyone. New table; names unique per owner (as folded in
name_key), and among shared views (a partial unique index).

Revision ID: e5b7a9c3d2f1
Revises: e3b7a91c4f25
Create Date: 2026-11-29 19:20:15.373198

"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

import tracker.core.db


# revision identifiers, used by Alembic.
revision = "e5b7a9c3d2f1"
down_revision = "e3b7a91c4f25"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "saved_view",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("name_key", sa.String(length=80), nullable=False),
        sa.Column("page", sa.String(length=16), nullable=False),
        sa.Column(
            "filters",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("shared", sa.Boolean(), nullable=False),
        sa.Column("created_at", tracker.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tracker.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("page IN ('worklist', 'ptl')", name=op.f("ck_saved_view_page_known")),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["user.id"], name=op.f("fk_saved_view_owner_id_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_view")),
        sa.UniqueConstraint("owner_id", "name_key", name="uq_saved_view_owner_name"),
    )
    with op.batch_alter_table("saved_view", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_saved_view_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index(
            "uq_saved_view_shared_name",
            ["name_key"],
            unique=True,
            sqlite_where=sa.text("shared = 1"),
            postgresql_where=sa.text("shared"),
        )


def downgrade():
    with op.batch_alter_table("saved_view", schema=None) as batch_op:
        batch_op.drop_index("uq_saved_view_shared_name")
        batch_op.drop_index(batch_op.f("ix_saved_view_owner_id"))
    op.drop_table("saved_view")
