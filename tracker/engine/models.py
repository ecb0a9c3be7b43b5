from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tracker.core.db import Base, JSONType, UTCDateTime, utcnow
from tracker.engine import steps as d
from tracker.engine import tasks as task_reading

NO_TARGET = datetime(9999, 12, 31, tzinfo=UTC)
_STATE_LIST = ", ".join(repr(s) for s in d.STATES)
_FINAL_LIST = ", ".join(repr(s) for s in sorted(d.FINAL_STATES))


class Pathway(Base):
    """One patient's journey; ``state`` is kept by the machine, ``version`` by each event."""

    __tablename__ = "pathway"
    __table_args__ = (
        CheckConstraint(f"state IN ({_STATE_LIST})", name="state_known"),
        CheckConstraint(
            f"(state IN ({_FINAL_LIST})) = (closed_at IS NOT NULL)", name="closed_iff_final"
        ),
        CheckConstraint("version >= 1", name="version_positive"),
        CheckConstraint("recurrence_count >= 0", name="recurrences_not_negative"),
        Index("ix_pathway_state_due", "state", "next_target_due_at"),
        # The worklist: open pathways by due time, their counts per state, and the
        # due-soon filter, each answered from an index at 100,000 pathways.
        Index("ix_pathway_open_sort", "closed_at", "next_target_sort", "id"),
        Index("ix_pathway_open_state", "closed_at", "state"),
        Index("ix_pathway_open_warn", "closed_at", "next_target_warn_at"),
        # The reports' cohort: the pathways referred in a range of days.
        Index("ix_pathway_referral", "referral_received_at", "id"),
        # The reports' medians: the n-th wait of one whole-day bin (tracker.engine.daily),
        # read from the index alone (the cohort's columns are in it).
        *(
            Index(name, wait, "referral_received_at", "in_error", "team")
            for name, wait in (
                ("ix_pathway_wait_decision", "days_to_decision"),
                ("ix_pathway_wait_treatment", "days_decision_to_treatment"),
                ("ix_pathway_wait_referral", "days_to_treatment"),
            )
        ),
        # A surgeon's queue: their pathways with steps not yet signed off.
        Index("ix_pathway_lead_unreviewed", "lead_surgeon_id", "unreviewed_steps"),
        # Most pathways are open, so PostgreSQL's planner scans and sorts rather than use an
        # index led by closed_at; these hold the open pathways only, in the worklist's
        # orders, so the first page is read off an index on both databases.
        Index(
            "ix_pathway_open_due_only",
            "next_target_sort",
            "id",
            postgresql_where=text("closed_at IS NULL"),
            sqlite_where=text("closed_at IS NULL"),
        ),
        Index(
            "ix_pathway_open_state_due_only",
            "state",
            "next_target_sort",
            "id",
            postgresql_where=text("closed_at IS NULL"),
            sqlite_where=text("closed_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    state: Mapped[str] = mapped_column(String(32), default=d.INITIAL_STATE, index=True)
    version: Mapped[int] = mapped_column(default=1)
    referral_received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    referral_source: Mapped[str] = mapped_column(String(32))
    urgency: Mapped[str] = mapped_column(String(16), index=True)
    # The waiting-time route (PATHWAY.md), beside the clinical urgency.
    referral_priority: Mapped[str] = mapped_column(
        String(32), server_default="urgent_suspected_cancer"
    )
    diagnosis_category: Mapped[str] = mapped_column(String(32))
    tumour_site: Mapped[str] = mapped_column(String(100))
    primary_cancer_site: Mapped[str] = mapped_column(String(32))
    presenting_symptoms: Mapped[list] = mapped_column(JSONType, default=list)
    # The MDT team that cares for the patient (tracker.engine.teams): only its members
    # see the pathway. Derived: the referral's, or a handover's.
    team: Mapped[str] = mapped_column(String(32), index=True, server_default="spine")
    lead_surgeon_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"), index=True)
    coordinator_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"), index=True)
    recurrence_count: Mapped[int] = mapped_column(default=0)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Derived from the events and kept with each one, so lists can sort and filter in SQL;
    # `flask tracker verify` checks them against a replay.
    state_entered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seq: Mapped[int] = mapped_column(default=0)
    next_target: Mapped[str | None] = mapped_column(String(32))
    next_target_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    next_target_warn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The due time to sort by: next_target_due_at, or NO_TARGET when no clock runs, so
    # "most urgent first" is one indexed order on both backends (NULLs sort differently).
    next_target_sort: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The first episode's milestones: the reports' intervals read them from this row.
    first_imaging_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_decision_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_treatment_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # ... and the waits between them in days, which the reports' medians sort in SQL.
    days_to_decision: Mapped[float | None]
    days_decision_to_treatment: Mapped[float | None]
    days_to_treatment: Mapped[float | None]
    # Withdrawn as opened in error: kept in the log, left out of every count and report.
    in_error: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Steps recorded after the last surgeon's sign-off ("Awaiting my sign-off").
    unreviewed_steps: Mapped[int] = mapped_column(default=0, server_default="0")
    # The latest tracking comment (add_tracking_note) and when it was written.
    tracking_note: Mapped[str | None] = mapped_column(String(400))
    tracking_note_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    patient = relationship("Patient", back_populates="pathways", lazy="joined", innerjoin=True)
    lead_surgeon = relationship("User", foreign_keys=[lead_surgeon_id], lazy="joined")
    coordinator = relationship("User", foreign_keys=[coordinator_id], lazy="joined")
    facts = relationship(
        "PathwayFact",
        back_populates="pathway",
        cascade="all, delete-orphan",
        lazy="select",
        order_by="PathwayFact.id",
    )
    clocks = relationship(
        "PathwayClock",
        back_populates="pathway",
        cascade="all, delete-orphan",
        lazy="select",
        order_by="PathwayClock.id",
    )
    tasks = relationship(
        "PathwayTask",
        back_populates="pathway",
        cascade="all, delete-orphan",
        lazy="select",
        order_by="PathwayTask.seq",
    )

    # Optimistic locking: every UPDATE says WHERE version = <the version read>.
    __mapper_args__ = {"version_id_col": version, "version_id_generator": False}

    @property
    def is_closed(self) -> bool:
        return self.state in d.FINAL_STATES

    @property
    def state_label(self) -> str:
        return d.STATE_LABELS[self.state]

    def __repr__(self) -> str:
        return f"<Pathway {self.id} {self.state} v{self.version}>"


class Event(Base):
    """An append-only entry of a pathway's log. The database refuses UPDATE and DELETE."""

    __tablename__ = "event"
    __table_args__ = (
        UniqueConstraint("pathway_id", "seq", name="uq_event_pathway_id_seq"),
        CheckConstraint("seq >= 1", name="seq_positive"),
        CheckConstraint(
            f"(trigger = '{d.AMEND_TRIGGER}') = (amends_event_id IS NOT NULL)",
            name="amend_has_target",
        ),
        CheckConstraint(
            f"(trigger = '{d.VOID_TRIGGER}') = (voids_event_id IS NOT NULL)",
            name="void_has_target",
        ),
        Index("ix_event_pathway_trigger", "pathway_id", "trigger"),
        # "Is this event voided / amended?" is asked of every event by the reports.
        Index("ix_event_voids_event_id", "voids_event_id"),
        Index("ix_event_amends_event_id", "amends_event_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    pathway_id: Mapped[int] = mapped_column(ForeignKey("pathway.id"))
    seq: Mapped[int]
    trigger: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str | None] = mapped_column(String(32))
    to_state: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    data: Mapped[dict] = mapped_column(JSONType, default=dict)
    request_id: Mapped[str] = mapped_column(String(64), unique=True)
    amends_event_id: Mapped[int | None] = mapped_column(ForeignKey("event.id"))
    voids_event_id: Mapped[int | None] = mapped_column(ForeignKey("event.id"))
    # The event's link in the HMAC chain over every event (tracker/audit/chain.py).
    chain_seq: Mapped[int] = mapped_column(unique=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    recorded_by = relationship("User", lazy="joined")
    pathway = relationship("Pathway")

    @property
    def label(self) -> str:
        return d.label(self.trigger)

    def __repr__(self) -> str:
        return f"<Event {self.pathway_id}#{self.seq} {self.trigger}>"


class PathwayClock(Base):
    """One clock of one episode of a pathway, as the derivation last computed it.

    Written with every event, in the same transaction; lists, "This week", the reports and
    the returns read these rows, never the events. A running clock's live status (pending,
    due soon, breached) is read against the time of reading from ``due_at`` and ``warn_at``.
    """

    __tablename__ = "pathway_clock"
    __table_args__ = (
        UniqueConstraint(
            "pathway_id", "episode", "clock", "started_at", name="uq_pathway_clock_key"
        ),
        CheckConstraint("status IN ('running', 'met', 'missed')", name="status_known"),
        CheckConstraint(
            "status = 'missed' OR (status = 'running') = (stopped_at IS NULL)",
            name="stop_matches_status",
        ),
        CheckConstraint("episode >= 0", name="episode_not_negative"),
        CheckConstraint("due_at >= started_at", name="due_after_start"),
        # "This week" and the worklist: running clocks by due time.
        Index("ix_pathway_clock_status_due", "status", "due_at"),
        # Reports: clocks of the first episode of the pathways in a cohort.
        Index("ix_pathway_clock_clock_episode", "clock", "episode", "pathway_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    pathway_id: Mapped[int] = mapped_column(ForeignKey("pathway.id"), index=True)
    episode: Mapped[int] = mapped_column(default=0)
    clock: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    warn_at: Mapped[datetime] = mapped_column(UTCDateTime)
    adjustment_days: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(String(16))
    wait: Mapped[float | None]  # start to stop, in the clock's unit (hours or days)
    # The episode's referral priority (the national returns report it per clock), and the
    # step that stopped the clock (its delay reason goes in the monthly return).
    priority: Mapped[str | None] = mapped_column(String(32))
    stop_seq: Mapped[int | None]

    pathway = relationship("Pathway", back_populates="clocks")

    def __repr__(self) -> str:
        return f"<PathwayClock {self.pathway_id}/{self.episode} {self.clock} {self.status}>"


class StateCount(Base):
    """Open pathways in one state, one shard of them (see ``tracker.engine.counts``)."""

    __tablename__ = "pathway_state_count"
    __table_args__ = (CheckConstraint(f"state IN ({_STATE_LIST})", name="state_known"),)

    state: Mapped[str] = mapped_column(String(32), primary_key=True)
    shard: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    open_pathways: Mapped[int] = mapped_column(default=0)


class PathwayFact(Base):
    """One code of a recorded step the reports count (an operation's approach and each of
    its procedures, a complication's grade, a recurrence), as the history reads the step:
    its amendments applied, and gone once voided.

    Written by the derivation with every event, like the clock rows, so the reports count
    these rows in SQL and never read the event log."""

    __tablename__ = "pathway_fact"
    __table_args__ = (
        UniqueConstraint("pathway_id", "seq", "kind", "code", name="uq_pathway_fact_key"),
        # The reports: the facts of one kind in a date range.
        Index("ix_pathway_fact_kind_at", "kind", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    pathway_id: Mapped[int] = mapped_column(ForeignKey("pathway.id"), index=True)
    seq: Mapped[int]  # the event's
    kind: Mapped[str] = mapped_column(String(32))  # operation, procedure, complication, ...
    code: Mapped[str] = mapped_column(String(32), default="")  # the code counted, if any
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)

    pathway = relationship("Pathway", back_populates="facts")


class ReportCount(Base):
    """The reports' figures, pre-aggregated per local day, part of a month and month,
    and team (see ``tracker.engine.daily``): what each pathway adds to the reports,
    summed, kept on write in the event's transaction, so a report over a range of days
    reads the few spans that tile it, whatever the number of pathways."""

    __tablename__ = "report_day_count"

    # daily.DAY, PART or MONTH: the span of days the row counts, from ``day`` on.
    span: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    day: Mapped[date] = mapped_column(primary_key=True)  # a local calendar day
    team: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    code: Mapped[str] = mapped_column(String(80), primary_key=True)
    bucket: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    # A second day: a running clock's start; the previous operation or recurrence of the
    # same pathway (for counts of distinct pathways); else NO_DAY.
    since: Mapped[date] = mapped_column(primary_key=True)
    n: Mapped[int] = mapped_column(default=0)


_TASK_STATUSES = ", ".join(repr(s) for s in task_reading.STATUSES)


class PathwayTask(Base):
    """One task (next action) of a pathway, as the derivation last computed it from the
    tracking steps (``tracker.engine.tasks``): written with every event, in its transaction,
    and checked by ``verify``. Never written by hand: record a step (see
    ``tracker.tracking.services``).

    ``seq`` is the 'Add task' step that created it (the event is ``(pathway_id, seq)``) and
    the task's number on its pathway; the steps that change or close it name that number.
    """

    __tablename__ = "pathway_task"
    __table_args__ = (
        UniqueConstraint("pathway_id", "seq", name="uq_pathway_task_key"),
        CheckConstraint(f"status IN ({_TASK_STATUSES})", name="status_known"),
        CheckConstraint("(status = 'open') = (closed_at IS NULL)", name="closed_matches_status"),
        # My work and the overdue alerts: a person's open tasks by due date.
        Index("ix_pathway_task_owner_open", "owner_id", "status", "due_on"),
        Index("ix_pathway_task_status_due", "status", "due_on"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    pathway_id: Mapped[int] = mapped_column(ForeignKey("pathway.id"), index=True)
    seq: Mapped[int]  # the 'Add task' event's
    what: Mapped[str] = mapped_column(String(200))
    owner_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    due_on: Mapped[date]
    status: Mapped[str] = mapped_column(String(16), default=task_reading.OPEN)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when the task was added
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    closed_seq: Mapped[int | None]  # the step that marked it done or cancelled it
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    close_note: Mapped[str | None] = mapped_column(String(4000))  # why cancelled, or a note

    pathway = relationship("Pathway", back_populates="tasks")
    owner = relationship("User", foreign_keys=[owner_id], lazy="joined")

    @property
    def status_label(self) -> str:
        return task_reading.STATUS_LABELS[self.status]

    def overdue(self, today: date) -> bool:
        return self.status == task_reading.OPEN and self.due_on < today

    def __repr__(self) -> str:
        return f"<PathwayTask {self.pathway_id}#{self.seq} {self.status}>"
