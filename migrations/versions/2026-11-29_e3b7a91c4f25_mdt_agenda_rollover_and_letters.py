"""MDT cases rolled over to a later meeting (``mdt_case.rolled_to_id``); outcome letter
templates an administrator edits; generated documents (the letters' PDFs, with their
SHA-256, who generated them and when). Nothing to backfill.

Revision ID: e3b7a91c4f25
Revises: ddbe93660349
Create Date: 2026-11-29 19:45:00.000000

"""

from alembic import op
import sqlalchemy as sa

import tracker.core.db


# revision identifiers, used by Alembic.
revision = "e3b7a91c4f25"
down_revision = "ddbe93660349"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("mdt_case", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rolled_to_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_mdt_case_rolled_to_id_mdt_meeting"),
            "mdt_meeting",
            ["rolled_to_id"],
            ["id"],
        )
    op.create_table(
        "letter_template",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("updated_at", tracker.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("kind IN ('gp', 'patient')", name=op.f("ck_letter_template_kind_known")),
        sa.ForeignKeyConstraint(
            ["updated_by_id"], ["user.id"], name=op.f("fk_letter_template_updated_by_id_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_letter_template")),
        sa.UniqueConstraint("kind", name=op.f("uq_letter_template_kind")),
    )
    op.create_table(
        "generated_document",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pathway_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("meeting_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("generated_by_id", sa.Integer(), nullable=False),
        sa.Column("generated_at", tracker.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('gp', 'patient')", name=op.f("ck_generated_document_kind_known")
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["mdt_case.id"], name=op.f("fk_generated_document_case_id_mdt_case")
        ),
        sa.ForeignKeyConstraint(
            ["generated_by_id"],
            ["user.id"],
            name=op.f("fk_generated_document_generated_by_id_user"),
        ),
        sa.ForeignKeyConstraint(
            ["meeting_id"],
            ["mdt_meeting.id"],
            name=op.f("fk_generated_document_meeting_id_mdt_meeting"),
        ),
        sa.ForeignKeyConstraint(
            ["pathway_id"], ["pathway.id"], name=op.f("fk_generated_document_pathway_id_pathway")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_generated_document")),
    )
    with op.batch_alter_table("generated_document", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_generated_document_case_id"), ["case_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_generated_document_pathway_id"), ["pathway_id"], unique=False
        )


def downgrade():
    with op.batch_alter_table("generated_document", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_generated_document_pathway_id"))
        batch_op.drop_index(batch_op.f("ix_generated_document_case_id"))
    op.drop_table("generated_document")
    op.drop_table("letter_template")
    with op.batch_alter_table("mdt_case", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_mdt_case_rolled_to_id_mdt_meeting"), type_="foreignkey"
        )
        batch_op.drop_column("rolled_to_id")
