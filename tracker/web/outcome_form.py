"""The one MDT outcome form, built once for the pathway page and the live meeting.

Its fields, its decision choices, its prefill (``consistency.mdt_form_defaults``: the
latest scores, the listing's meeting date and meeting) and what it shows beside them
(score totals, the NOMS reading). The occurred-at preset and a new submission's version
and request id are shared with every step form. Web and engine only: no feature package.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from flask import request, url_for
from wtforms import SelectField
from wtforms.validators import InputRequired

from tracker.engine import consistency, services
from tracker.engine import steps as d
from tracker.engine.fields import Field
from tracker.engine.models import Pathway
from tracker.engine.scores import SCORES, sins_needs_surgical_opinion
from tracker.web.filters import when
from tracker.web.forms import (
    BLANK,
    StepForm,
    collect,
    fill,
    form_class,
    options,
    to_local_input,
)
from tracker.web.helpers import users_by_role


def _now() -> datetime:
    return datetime.now(UTC)


def start(form, pathway: Pathway) -> None:
    """A new submission: the version it was opened at, a request id, and now."""
    if "occurred_at" in form:
        form.occurred_at.data = to_local_input(_now())
    form.expected_version.data = str(pathway.version)
    form.request_id.data = services.new_request_id()


def when_preset(form, pathway: Pathway, history) -> dict | None:
    """The occurred-at field's preset, chosen and said: now, or (``?at=last``, for a record
    made after the fact that follows on from the last step) the last step's time. The form
    names the preset and offers the other; the person recording confirms either."""
    steps = history.counting()
    last = steps[-1] if steps else None
    now = _now()
    if last is not None and request.args.get("at") == "last":
        form.occurred_at.data = to_local_input(last.occurred_at)
        form.occurred_at.description = (
            f"Preset to the time of the last step, '{d.label(last.trigger)}' "
            f"({when(last.occurred_at)}), local time: change it to when this happened."
        )
        return {"label": "Use now instead", "url": this_form(pathway, at=None)}
    form.occurred_at.data = to_local_input(now)
    form.occurred_at.description = (
        f"Preset to now ({when(now)}), local time: most records are made after the fact, "
        "so change it to when this happened."
        + (
            f" The last step, '{d.label(last.trigger)}', happened at {when(last.occurred_at)}."
            if last is not None
            else ""
        )
    )
    if last is None:
        return None
    return {"label": "Use the last step's time", "url": this_form(pathway, at="last")}


def this_form(pathway: Pathway, **changes) -> str:
    args = {**request.args.to_dict(), **changes}
    args = {k: v for k, v in args.items() if v is not None}
    return url_for(request.endpoint, **(request.view_args or {}), **args)


def score_summary(form) -> list[dict]:
    """Totals and bands of the score components entered so far (shown on the MDT form)."""
    out = []
    for name, score in SCORES.items():
        if f"{name}__{next(iter(score.components))}" not in form:
            continue  # a score this form does not ask for
        values = {}
        for component in score.components:
            raw = form[f"{name}__{component}"].data
            allowed = {str(points) for points in score.allowed_points(component)}
            if raw in allowed:  # anything else is refused beside its field on validation
                values[component] = int(raw)
        complete = len(values) == len(score.components)
        total = sum(values.values())
        out.append(
            {
                "name": name,
                "label": score.label,
                "entered": len(values),
                "of": len(score.components),
                "total": total if values else None,
                "band": score.band(total)[1] if complete else None,
                "flag": name == "sins" and complete and sins_needs_surgical_opinion(total),
            }
        )
    return out


def entered(form, fields) -> dict:
    """The values on the form as typed (pre-filled or posted), for the NOMS reading."""
    try:
        return collect(form, fields)
    except (TypeError, ValueError):  # an input the form could not read: its error says so
        return {}


@dataclass
class OutcomeForm:
    form: object
    fields: tuple[Field, ...]
    allowed: list[str]  # the decisions the user may record now
    context: dict


def build(pathway: Pathway, history, actor, posted: bool, formdata=None) -> OutcomeForm:
    """The MDT outcome form for ``pathway``: posted, read from the request; otherwise new,
    prefilled (the decision from ``?decision=``)."""
    allowed = [
        t
        for t in services.allowed_triggers(pathway, actor, history)
        if d.is_mdt_outcome(t, pathway.state)
    ]
    choices = options(
        [BLANK] + [(t, words) for t, words in d.mdt_outcome_choices() if t in allowed or posted]
    )
    fields = d.mdt_outcome_fields()  # the MDT record and a note
    decision = SelectField(
        "Decision", choices=choices, validators=[InputRequired("Choose the MDT's decision.")]
    )
    base = type("MDTForm", (StepForm,), {"decision": decision})
    if formdata is None and posted:
        formdata = request.form
    form = form_class(fields, users_by_role(), base=base)(formdata=formdata if posted else None)
    when_choice = None
    if not posted:
        start(form, pathway)
        when_choice = when_preset(form, pathway, history)
        form.decision.data = request.args.get("decision", "")
        fill(form, fields, consistency.mdt_form_defaults(history))
    context = {
        "when_choice": when_choice,
        "title": "Record MDT outcome",
        "scores": score_summary(form),
        "noms": consistency.noms_for(history, entered(form, fields)),
        "bilsky_flag": consistency.bilsky_needs_surgical_opinion(form.bilsky_grade.data),
        "bilsky_flag_words": consistency.BILSKY_FLAG,
    }
    return OutcomeForm(form, fields, allowed, context)


def live_meeting() -> int | None:
    """The meeting a form was opened from in live mode (``?live=<meeting id>``)."""
    raw = request.args.get("live", "")
    if raw.isascii() and raw.isdigit() and 0 < int(raw) < 2**31:
        return int(raw)
    return None


def after_live_outcome(pathway: Pathway) -> str | None:
    """Where an outcome recorded in live mode goes next: the meeting's next case."""
    meeting_id = live_meeting()
    if meeting_id is None:
        return None
    return url_for("mdt.live", meeting_id=meeting_id, after=pathway.id)
