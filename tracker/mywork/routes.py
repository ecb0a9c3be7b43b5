"""/my-work: the signed-in coordinator's or surgeon's open tasks, the clocks due soon or
breached on the pathways they coordinate or lead, and (surgeons) what awaits their
sign-off. A fixed number of queries, whatever the data."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, render_template
from flask_login import current_user

from tracker.core.clock import local_date
from tracker.engine import clocks
from tracker.mywork import queries

bp = Blueprint("mywork", __name__, url_prefix="/my-work")


@bp.get("/")
def index():
    now = datetime.now(UTC)
    surgeon = current_user.role == "surgeon"
    return render_template(
        "mywork/index.html",
        tasks=queries.open_tasks(current_user, now),
        clock_rows=queries.clocks_due(current_user, now),
        sign_off=queries.awaiting_sign_off(current_user, now) if surgeon else None,
        surgeon=surgeon,
        limit=queries.LIMIT,
        today=local_date(now),
        now=now,
        target_labels=clocks.LABELS,
    )
