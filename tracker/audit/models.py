from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tracker.core.db import Base, UTCDateTime, utcnow

GENESIS = "0" * 64


class ChainHead(Base):
    """The end of one hash chain ('event' or 'audit'): its last position and hash.

    Whoever links rows into the chain updates this row first, so the row lock
    (PostgreSQL) or the write lock (SQLite) serialises them: the chain cannot fork. The
    event chain is extended by each write of events; the audit chain by the sealer
    alone (tracker.audit.chain.seal_pending), so that writing an audit entry waits on
    no row.
    """

    __tablename__ = "chain_head"

    name: Mapped[str] = mapped_column(String(16), primary_key=True)
    seq: Mapped[int] = mapped_column(default=0)
    last_hash: Mapped[str] = mapped_column(String(64), default=GENESIS)


class AuditEntry(Base):
    """One line of the audit log. Append-only: the database refuses DELETE, and every
    UPDATE but the one that links a new entry into the chain (its three chain columns,
    empty until then, set once, nothing else changed).

    An entry is written with ``entry_hash`` (HMAC of its content under the audit key)
    and no place in the chain; the sealer gives it ``chain_seq``, ``prev_hash`` and
    ``hash`` within AUDIT_SEAL_SECONDS (tracker.audit.chain).
    """

    __tablename__ = "audit_entry"
    __table_args__ = (
        Index("ix_audit_entry_user_at", "user_id", "at"),
        Index("ix_audit_entry_patient_at", "patient_id", "at"),
        Index("ix_audit_entry_action_at", "action", "at"),
        # The entries awaiting their place in the chain: what the sealer reads.
        Index(
            "ix_audit_entry_pending",
            "id",
            postgresql_where=text("hash IS NULL"),
            sqlite_where=text("hash IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    chain_seq: Mapped[int | None] = mapped_column(unique=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    # Kept as typed, so a failed login with an unknown name is still on record.
    username: Mapped[str] = mapped_column(String(64), default="")
    action: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(16), default="ok")
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patient.id"))
    pathway_id: Mapped[int | None] = mapped_column(ForeignKey("pathway.id"))
    detail: Mapped[str] = mapped_column(Text, default="")
    address: Mapped[str] = mapped_column(String(64), default="")
    method: Mapped[str] = mapped_column(String(8), default="")
    path: Mapped[str] = mapped_column(String(300), default="")
    # Empty on the entries written before entries were sealed in batches: the chain
    # covered their content from the start.
    entry_hash: Mapped[str | None] = mapped_column(String(64))
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))

    user = relationship("User", lazy="joined")
    patient = relationship("Patient", lazy="joined")
    pathway = relationship("Pathway")

    def __repr__(self) -> str:
        return f"<AuditEntry {self.chain_seq} {self.action} {self.username}>"
