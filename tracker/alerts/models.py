from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tracker.core.db import Base, UTCDateTime, utcnow

# The alerts, as stored in ``kind`` and as the pages name them.
KINDS = {
    "due_soon": "Target due soon",
    "breached": "Target breached",
    "mdt_outcome": "MDT outcome outstanding",
    "task_overdue": "Task overdue",
}
# Emailed at the next run (outside quiet hours) whatever the user's digest preference;
# the others wait for the daily digest.
IMMEDIATE_KINDS = frozenset({"breached"})


class Notification(Base):
    """One alert for one user about one pathway.

    ``dedupe_key`` names the event alerted (a clock of an episode breaching, a case
    listed on a meeting): the pair (user, key) is unique, so a rule that finds the same
    event again, at a later run, after a restart or on another worker, adds nothing.
    ``email_due_at``: when it is to be emailed (NULL: never, e.g. no address or no email
    wanted when it fell due); ``emailed_at``: when it was.
    """

    __tablename__ = "notification"
    __table_args__ = (
        UniqueConstraint("user_id", "dedupe_key", name="uq_notification_user_key"),
        CheckConstraint(f"kind IN ({', '.join(repr(k) for k in KINDS)})", name="kind_known"),
        # The top bar's counter: a user's unread notifications.
        Index("ix_notification_user_unread", "user_id", "read_at"),
        # The sender: what is still to be emailed, by when.
        Index("ix_notification_unsent", "emailed_at", "email_due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    kind: Mapped[str] = mapped_column(String(16))
    pathway_id: Mapped[int] = mapped_column(ForeignKey("pathway.id"), index=True)
    dedupe_key: Mapped[str] = mapped_column(String(200))
    # In-app words (the clock's name, the meeting's date): never put in an email.
    detail: Mapped[str] = mapped_column(String(300), default="")
    # When the target is (was) due, or the meeting was held.
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    email_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    emailed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user = relationship("User")
    pathway = relationship("Pathway")

    @property
    def kind_label(self) -> str:
        return KINDS[self.kind]

    def __repr__(self) -> str:
        return f"<Notification {self.user_id} {self.kind} {self.dedupe_key}>"
