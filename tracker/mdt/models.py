"""MDT meetings and the cases listed on them.

A meeting belongs to one team (``tracker.engine.teams``). Listing a pathway on a meeting
is a step of the pathway (``schedule_mdt`` naming the meeting: hash-chained, on the
timeline, replayed by ``verify``); the ``mdt_case`` row is the meeting's side of it, with
what only the meeting orders: the position on the list.
"""

from __future__ import annotations

from datetime import date, datetime, time

from sqlalchemy import (
    CheckConstraint,
    Date,
    ForeignKey,
    LargeBinary,
    String,
    Text,
    Time,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tracker.core.db import Base, UTCDateTime, utcnow
from tracker.engine.dictionary import MDT_TRIAGE

MEETING_STATUSES = {
    "scheduled": "Scheduled",
    "held": "Held",
    "cancelled": "Cancelled",
}
TRIAGE = dict(MDT_TRIAGE)


class MdtMeeting(Base):
    __tablename__ = "mdt_meeting"
    __table_args__ = (
        # One meeting of a team at one time: recurring meetings are created idempotently.
        UniqueConstraint("team", "meeting_date", "start_time", name="uq_mdt_meeting_slot"),
        CheckConstraint("status IN ('scheduled', 'held', 'cancelled')", name="status_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    team: Mapped[str] = mapped_column(String(32), index=True)
    meeting_date: Mapped[date] = mapped_column(Date, index=True)  # local date
    start_time: Mapped[time] = mapped_column(Time)  # local time
    location: Mapped[str] = mapped_column(String(200), default="")
    video_link: Mapped[str] = mapped_column(String(500), default="")
    chair_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    status: Mapped[str] = mapped_column(String(16), default="scheduled")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))

    chair = relationship("User", foreign_keys=[chair_id], lazy="joined")
    cases = relationship(
        "MdtCase",
        back_populates="meeting",
        order_by="MdtCase.position",
        lazy="select",
        foreign_keys="MdtCase.meeting_id",
    )
    attendance = relationship(
        "MdtAttendance", back_populates="meeting", order_by="MdtAttendance.id", lazy="select"
    )

    def __repr__(self) -> str:
        return f"<MdtMeeting {self.id} {self.team} {self.meeting_date} {self.start_time}>"


class MdtCase(Base):
    """One pathway on one meeting's list, in the list's order."""

    __tablename__ = "mdt_case"
    __table_args__ = (
        UniqueConstraint("meeting_id", "pathway_id", name="uq_mdt_case_meeting_pathway"),
        CheckConstraint("triage IN ('full_discussion', 'standard_of_care')", name="triage_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("mdt_meeting.id"), index=True)
    pathway_id: Mapped[int] = mapped_column(ForeignKey("pathway.id"), index=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id"))  # the schedule_mdt step
    position: Mapped[int]
    question: Mapped[str] = mapped_column(Text)
    presenter_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    triage: Mapped[str] = mapped_column(String(32))
    late_reason: Mapped[str] = mapped_column(Text, default="")
    listed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Not reached: rolled over to a later meeting of the team (listed there anew).
    rolled_to_id: Mapped[int | None] = mapped_column(ForeignKey("mdt_meeting.id"))

    meeting = relationship("MdtMeeting", back_populates="cases", foreign_keys=[meeting_id])
    pathway = relationship("Pathway", lazy="joined")
    presenter = relationship("User", foreign_keys=[presenter_id], lazy="joined")
    event = relationship("Event")

    def __repr__(self) -> str:
        return f"<MdtCase {self.meeting_id}#{self.position} pathway {self.pathway_id}>"


class MdtAttendance(Base):
    """Who attended a meeting, as which core specialty (a discipline of the MDT record)."""

    __tablename__ = "mdt_attendance"
    __table_args__ = (
        UniqueConstraint("meeting_id", "user_id", name="uq_mdt_attendance_meeting_user"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("mdt_meeting.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    specialty: Mapped[str] = mapped_column(String(32))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    meeting = relationship("MdtMeeting", back_populates="attendance")
    user = relationship("User", lazy="joined")


LETTER_KINDS = {
    "gp": "Outcome letter to the GP",
    "patient": "Outcome letter to the patient",
}


class LetterTemplate(Base):
    """The template of one kind of outcome letter, edited by an administrator (Jinja,
    rendered in a sandbox). Seeded with the defaults on first use."""

    __tablename__ = "letter_template"
    __table_args__ = (CheckConstraint("kind IN ('gp', 'patient')", name="kind_known"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), unique=True)
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))


class GeneratedDocument(Base):
    """A PDF made by the tracker (an outcome letter), kept as generated: its bytes, their
    SHA-256, who generated it and when. Each generation is a new row."""

    __tablename__ = "generated_document"
    __table_args__ = (CheckConstraint("kind IN ('gp', 'patient')", name="kind_known"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    pathway_id: Mapped[int] = mapped_column(ForeignKey("pathway.id"), index=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("mdt_case.id"), index=True)
    meeting_id: Mapped[int | None] = mapped_column(ForeignKey("mdt_meeting.id"))
    kind: Mapped[str] = mapped_column(String(16))
    filename: Mapped[str] = mapped_column(String(200))
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    sha256: Mapped[str] = mapped_column(String(64))
    generated_by_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    generated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    pathway = relationship("Pathway")
    generated_by = relationship("User", lazy="joined")

    @property
    def kind_label(self) -> str:
        return LETTER_KINDS[self.kind]
