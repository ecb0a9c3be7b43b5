"""The one MDT outcome form, built once for the pathway page and the live meeting.

Its fields, its decision choices, its prefill (``consistency.mdt_form_defaults``: the
latest scores, the listing's meeting date and meeting) and what it shows beside them
(score totals, the NOMS reading). The occurred-at preset and a new submission's version
and request id are shared with every step form. Web and engine only: no feature package.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

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
    local_zone,
    options,
)
from tracker.web.helpers import users_by_role


def _now() -> datetime:
    return datetime.now(UTC)


def start(form, pathway: Pathway) -> None:
    """A new submission: the version it was opened at, a request id, and today's date."""
    if "occurred_at" in form:
        form.occurred_at.preset_date = _now().astimezone(local_zone()).date()
    form.expected_version.data = str(pathway.version)
    form.request_id.data = services.new_request_id()


# A step recorded less than this long ago, dated on an earlier day, means the person is
# catching up after the fact: the next record most likely follows on from it, that day.
CATCHING_UP = timedelta(hours=2)


def when_preset(form, pathway: Pathway, history) -> dict | None:
    """The occurred-at field's preset, chosen and said, never a silent "now": the date is
    preset and the time left for the person recording to fill in. The date is today's, or,
    for a record that follows on from the last step, the last step's: asked for with
    ``?at=last``, or chosen when the last step was recorded within the last two hours but
    dated on an earlier day (records being entered after the fact). The form says which
    date it is and offers the other."""
    steps = history.counting()
    last = max(steps, key=lambda s: (s.occurred_at, s.seq)) if steps else None
    now = _now()
    today = now.astimezone(local_zone()).date()
    form.occurred_at.data = None
    form.occurred_at.raw_data = None
    if last is None:
        form.occurred_at.preset_date = today
        form.occurred_at.description = (
            f"Defaults to today, {_day(today)}: enter the time it happened (local time), "
            "and change the date if it happened on another day."
        )
        return None
    last_day = last.occurred_at.astimezone(local_zone()).date()
    asked = request.args.get("at")
    catching_up = (
        last.recorded_at is not None and now - last.recorded_at < CATCHING_UP and last_day < today
    )
    follow_on = asked == "last" or (asked != "today" and catching_up)
    step = d.label(last.trigger)
    if follow_on:
        form.occurred_at.preset_date = last_day
        form.occurred_at.description = (
            f"Defaults to the date of the last step, {_day(last_day)} ('{step}', at "
            f"{when(last.occurred_at)}): enter the time this happened (local time), and "
            "change the date if it was another day."
        )
        if last_day == today:
            return None
        return {"label": f"Use today's date, {_day(today)}", "url": this_form(pathway, at="today")}
    form.occurred_at.preset_date = today
    form.occurred_at.description = (
        f"Defaults to today, {_day(today)}: enter the time it happened (local time), and "
        f"change the date if it was another day. The last step, '{step}', happened at "
        f"{when(last.occurred_at)}."
    )
    if last_day == today:
        return None
    return {
        "label": f"Use the date of the last step, {_day(last_day)}",
        "url": this_form(pathway, at="last"),
    }


def _day(value) -> str:
    return f"{value.day} {value:%b %Y}"


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
        # Per lesion scored; a new form's prefilled SINS and Bilsky are recorded ones already
        # read on their own lesions, not new scores of the lesion the form names.
        "noms": consistency.noms_by_lesion(history, entered(form, fields), form_scores=posted),
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
