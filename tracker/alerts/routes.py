"""The notifications page, marking them read, and the top bar's counter."""

from __future__ import annotations

from flask import Blueprint, Flask, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from tracker.alerts import services
from tracker.alerts.models import KINDS
from tracker.core.db import utcnow
from tracker.teams import scope

bp = Blueprint("notifications", __name__, url_prefix="/notifications")


def _visible():
    return scope.pathways(current_user, utcnow())


@bp.get("/")
def index():
    notes = services.notifications_of(current_user, _visible())
    return render_template(
        "alerts/notifications.html",
        notifications=notes,
        unread=sum(1 for n in notes if n.read_at is None),
        kinds=KINDS,
    )


@bp.post("/read")
def mark_read():
    """One notification read (its id in the form field ``notification``)."""
    raw = request.form.get("notification", "")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        flash("Choose a notification to mark as read.", "warning")
        return redirect(url_for("notifications.index"))
    notification_id = int(raw)
    if not services.owns(current_user, notification_id):
        abort(404)  # someone else's, or none: the same answer
    services.mark_read(current_user, notification_id, utcnow())
    return redirect(url_for("notifications.index"))


@bp.post("/read-all")
def mark_all_read():
    count = services.mark_read(current_user, None, utcnow())
    flash(
        f"Marked {count} notification{'s' if count != 1 else ''} as read."
        if count
        else "No unread notifications.",
        "success",
    )
    return redirect(url_for("notifications.index"))


def init_app(app: Flask) -> None:
    @app.context_processor
    def notification_counter():
        """``unread_notifications()`` for the top bar: one query, only on the pages that
        show the bar to a logged-in user."""

        def unread_notifications() -> int:
            if not current_user.is_authenticated:
                return 0
            return services.unread_count(current_user, _visible())

        return {"unread_notifications": unread_notifications}
