"""MRNs unique regardless of letter case, in the database as in the services.

find_by_mrn compares lower(mrn); this unique index makes the database refuse a second
'h123' beside 'H123' (two registrations racing) and answers the lookup without a scan
(the CSV import looks one up per new patient). A database holding two MRNs that differ
only in case must have them merged before this runs; the error names them.

Revision ID: 7c2e9d41a0b3
Revises: e71713cb4768
Create Date: 2026-11-21 09:10:00

"""
from alembic import op
import sqlalchemy as sa


revision = '7c2e9d41a0b3'
down_revision = 'e71713cb4768'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index(
        "uq_patient_mrn_lower", "patient", [sa.text("lower(mrn)")], unique=True
    )


def downgrade():
    op.drop_index("uq_patient_mrn_lower", table_name="patient")
