from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from tracker.core.db import Base, UTCDateTime, utcnow
from tracker.core.text import identifier_key, search_key
from tracker.patients.fields import SEX

# Compared in byte order on both databases: a prefix is then one range of an index.
SEARCH_TEXT = String().with_variant(String(collation="C"), "postgresql")


def name_search_key(family: str, given: str) -> str:
    return search_key(f"{family} {given}")


class Patient(Base):
    __tablename__ = "patient"
    # The columns the row's ``seal`` covers (tracker/audit/seals.py): every identifying and
    # demographic one. Adding a column here needs a migration that seals the rows again.
    SEALED = ("mrn", "family_name", "given_name", "birth_date", "sex", "nhs_number", "gp_practice")
    __table_args__ = (
        CheckConstraint(f"sex IN ({', '.join(repr(c) for c, _ in SEX)})", name="sex_known"),
        # MRNs are compared by their key (find_by_mrn): the database holds that rule too,
        # and answers every lookup from this index.
        Index("uq_patient_mrn_key", "mrn_key", unique=True),
        Index("uq_patient_nhs_number", "nhs_number", unique=True),
        # Name search (tracker.web.helpers.patient_search) reads prefixes of this key.
        Index("ix_patient_search_key", "search_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    mrn: Mapped[str] = mapped_column(String(32), unique=True)
    # identifier_key(mrn), set with it (below): what every lookup and the unique index use.
    # The default is the migration's (SQLite adds a NOT NULL column in place only with one).
    mrn_key: Mapped[str] = mapped_column(String, server_default="")
    family_name: Mapped[str] = mapped_column(String(100), index=True)
    given_name: Mapped[str] = mapped_column(String(100))
    # search_key("family given"), set with the names (below): what name search reads.
    # Byte order on PostgreSQL ("C"), as on SQLite, so a prefix is one range of the index.
    search_key: Mapped[str] = mapped_column(SEARCH_TEXT, server_default="")
    birth_date: Mapped[date] = mapped_column(Date)
    sex: Mapped[str] = mapped_column(String(16))
    # The NHS number: optional, ten digits with a valid Modulus 11 check digit, unique.
    nhs_number: Mapped[str | None] = mapped_column(String(10))
    gp_practice: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    # HMAC-SHA256 of the SEALED columns under the audit key, written at each flush.
    seal: Mapped[str] = mapped_column(String(64), default="", server_default="")

    pathways = relationship(
        "Pathway", back_populates="patient", order_by="Pathway.id", lazy="selectin"
    )

    @validates("mrn")
    def _keep_mrn_key(self, _, mrn: str) -> str:
        self.mrn_key = identifier_key(mrn)
        return mrn

    @validates("family_name", "given_name")
    def _keep_search_key(self, field: str, value: str) -> str:
        family = value if field == "family_name" else (self.family_name or "")
        given = value if field == "given_name" else (self.given_name or "")
        self.search_key = name_search_key(family, given)
        return value

    @property
    def name(self) -> str:
        return f"{self.family_name.upper()}, {self.given_name}"

    def __repr__(self) -> str:
        return f"<Patient {self.mrn}>"
