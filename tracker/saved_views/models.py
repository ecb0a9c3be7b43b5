"""A saved view: a named set of filters (and sort) of the worklist or the PTL.

A view is its owner's; a shared one is seen by everyone and listed in the navigation.
Names are unique per owner, and among shared views, as typed apart from case and
surrounding spaces (``name_key``): the database keeps both rules.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tracker.core.db import Base, JSONType, UTCDateTime, utcnow

PAGES = {"worklist": "Worklist", "ptl": "Patient tracking list"}
NAME_MAX = 80


class SavedView(Base):
    __tablename__ = "saved_view"
    __table_args__ = (
        UniqueConstraint("owner_id", "name_key", name="uq_saved_view_owner_name"),
        CheckConstraint("page IN ('worklist', 'ptl')", name="page_known"),
        # Two shared views never share a name: the navigation lists them by name.
        Index(
            "uq_saved_view_shared_name",
            "name_key",
            unique=True,
            sqlite_where=text("shared = 1"),
            postgresql_where=text("shared"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("user.id"), index=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    name_key: Mapped[str] = mapped_column(String(NAME_MAX))  # the name folded: case, spaces
    page: Mapped[str] = mapped_column(String(16))
    # The page's query values ({"state": "imaging", "sort": "name"}), checked when saved.
    filters: Mapped[dict] = mapped_column(JSONType, default=dict)
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    owner = relationship("User", lazy="joined")

    def __repr__(self) -> str:
        return f"<SavedView {self.id} {self.page} {self.name!r}>"
