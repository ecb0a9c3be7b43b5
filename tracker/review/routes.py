"""Awaiting sign-off: a surgeon's pathways with steps not yet reviewed.

A sign-off confirms what was recorded before it, whatever the steps' dates, so a step
entered late puts its pathway back in its lead surgeon's queue. The count is kept on the
pathway row by the derivation (``unreviewed_steps``), so the queue is one indexed query.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, render_template, request
from flask_login import current_user
from sqlalchemy import select

from tracker.core.db import utcnow
from tracker.engine import clocks
from tracker.engine.models import Pathway
from tracker.extensions import db
from tracker.teams import scope
from tracker.users.models import User

bp = Blueprint("review", __name__, url_prefix="/sign-off")
LIMIT = 500


@bp.get("/")
def index():
    """The lead surgeon's pathways awaiting sign-off; anyone may look at a surgeon's queue
    (``?surgeon=username``), a surgeon sees their own by default."""
    surgeons = db.session.scalars(
        select(User).where(User.role == "surgeon", User.active.is_(True)).order_by(User.username)
    ).all()
    wanted = request.args.get("surgeon") or (
        current_user.username if current_user.role == "surgeon" else None
    )
    surgeon = next((u for u in surgeons if u.username == wanted), None)
    rows = []
    if surgeon is not None:
        rows = db.session.scalars(
            select(Pathway)
            .where(
                Pathway.lead_surgeon_id == surgeon.id,
                Pathway.unreviewed_steps > 0,
                Pathway.in_error.is_(False),
                scope.pathways(current_user, utcnow()),
            )
            .order_by(Pathway.next_target_sort, Pathway.id)
            .limit(LIMIT)
        ).all()
    now = datetime.now(UTC)
    return render_template(
        "review/index.html",
        rows=rows,
        surgeon=surgeon,
        surgeons=surgeons,
        own=surgeon is not None and surgeon.id == current_user.id,
        limit=LIMIT,
        now=now,
        statuses={
            p.id: clocks.status_at(p.next_target_due_at, p.next_target_warn_at, now) for p in rows
        },
        target_labels=clocks.LABELS,
    )
