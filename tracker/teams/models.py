from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tracker.core.db import Base, UTCDateTime


class UserTeam(Base):
    """A user's membership of a team (``tracker.engine.teams``): they see its patients."""

    __tablename__ = "user_team"

    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"), primary_key=True)
    team: Mapped[str] = mapped_column(String(32), primary_key=True)


class EmergencyAccess(Base):
    """Access to one patient of another team, asked for with a reason, for a limited
    time; every one is audited and listed on the administrators' report."""

    __tablename__ = "emergency_access"
    __table_args__ = (Index("ix_emergency_access_user_until", "user_id", "expires_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)

    user = relationship("User", lazy="joined")
    patient = relationship("Patient", lazy="joined")
