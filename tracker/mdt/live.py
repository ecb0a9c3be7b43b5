"""Running a meeting: its printable agenda, live mode (one case at a time with the MDT
outcome form beside it), and rolling the cases not reached over to the next meeting.

Live mode records with the pathway page's own MDT outcome form and route
(``pathway.mdt_outcome`` with ``?live=<meeting>``): the same step, prefilled the same
way (the listing's meeting and date among the rest), so an outcome recorded live is the
outcome recorded from the pathway page.
"""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select

from tracker.core.db import utcnow
from tracker.engine import services as engine
from tracker.engine import teams
from tracker.engine.errors import InvalidData
from tracker.engine.models import Pathway
from tracker.extensions import db
from tracker.mdt import agenda, services
from tracker.mdt.models import LETTER_KINDS, TRIAGE, GeneratedDocument, MdtMeeting
from tracker.mdt.routes import bp
from tracker.web import outcome_form
from tracker.web.boundary import discard


def _common(meeting: MdtMeeting) -> dict:
    now = utcnow()
    return {
        "meeting": meeting,
        "team_label": teams.label(meeting.team),
        "triage": TRIAGE,
        "quorum": services.quorum(meeting),
        "specialties": services.SPECIALTIES,
        "past": now >= services.starts_at(meeting),
        "decision_words": agenda.decision_words,
        "now": now,
    }


@bp.get("/meetings/<int:meeting_id>/agenda")
def agenda_print(meeting_id: int):
    """The prepared agenda of one meeting, for the screen and for A4 paper."""
    meeting = db.get_or_404(MdtMeeting, meeting_id)
    now = utcnow()
    return render_template(
        "mdt/agenda.html",
        cases=agenda.build(meeting, current_user, now),
        **_common(meeting),
    )


@bp.get("/meetings/<int:meeting_id>/live")
def live(meeting_id: int):
    """Live mode's way in: the first case without an outcome (or, ``?after=<pathway>``
    once an outcome is recorded, the case after that one)."""
    meeting = db.get_or_404(MdtMeeting, meeting_id)
    cases = agenda.build(meeting, current_user, utcnow())
    if not cases:
        flash("No case is listed on this meeting.", "info")
        return redirect(url_for("mdt.meeting", meeting_id=meeting_id))
    after = request.args.get("after", "")
    if after.isascii() and after.isdigit():
        ids = [c.case.pathway_id for c in cases]
        if int(after) in ids:
            index = ids.index(int(after)) + 1
            if index >= len(cases):
                flash("That was the last case on the list.", "info")
                return redirect(url_for("mdt.meeting", meeting_id=meeting_id) + "#cases")
            chosen = cases[index]
            return redirect(
                url_for("mdt.live_case", meeting_id=meeting_id, pathway_id=chosen.pathway.id)
            )
    chosen = next((c for c in cases if c.visible and c.outstanding), cases[0])
    return redirect(url_for("mdt.live_case", meeting_id=meeting_id, pathway_id=chosen.pathway.id))


@bp.get("/meetings/<int:meeting_id>/live/<int:pathway_id>")
def live_case(meeting_id: int, pathway_id: int):
    """One case of the meeting: its agenda and, beside it, the MDT outcome form."""
    meeting = db.get_or_404(MdtMeeting, meeting_id)
    pathway = db.get_or_404(Pathway, pathway_id)
    cases = agenda.build(meeting, current_user, utcnow())
    index = next((i for i, c in enumerate(cases) if c.case.pathway_id == pathway.id), None)
    if index is None:
        abort(404, "This pathway is not listed on this meeting.")
    item = cases[index]
    built = None
    if item.outcome is None and not item.rolled:
        history = engine.load_history(pathway)
        built = outcome_form.build(pathway, history, current_user, posted=False)
        if not built.allowed:
            built = None
    documents = list(
        db.session.scalars(
            select(GeneratedDocument)
            .where(GeneratedDocument.case_id == item.case.id)
            .order_by(GeneratedDocument.generated_at.desc(), GeneratedDocument.id.desc())
        )
    )
    return render_template(
        "mdt/live.html",
        item=item,
        pathway=pathway,
        previous=cases[index - 1] if index > 0 else None,
        following=cases[index + 1] if index + 1 < len(cases) else None,
        total=len(cases),
        form=built.form if built else None,
        form_action=url_for("pathway.mdt_outcome", pathway_id=pathway.id, live=meeting.id),
        form_columns="col-12",  # beside the agenda: each field the width of the column
        live=meeting.id,
        letters=LETTER_KINDS,
        documents=documents,
        **(built.context if built else {}),
        **_common(meeting),
    )


@bp.post("/meetings/<int:meeting_id>/roll-over")
def roll_over(meeting_id: int):
    meeting = db.get_or_404(MdtMeeting, meeting_id)
    if not FlaskForm().validate():
        abort(400, "The form expired: open the meeting again and retry.")
    try:
        moved, target = services.roll_over(meeting, current_user, utcnow())
    except InvalidData as exc:
        discard()
        flash(" ".join(m for ms in exc.errors.values() for m in ms), "danger")
        return redirect(url_for("mdt.meeting", meeting_id=meeting_id) + "#cases"), 303
    flash(
        f"{len(moved)} case{'s' if len(moved) != 1 else ''} rolled over to the meeting of "
        f"{target.meeting_date:%A %d %B %Y}.",
        "success",
    )
    return redirect(url_for("mdt.meeting", meeting_id=target.id))
