"""Pages: the patient tracking list and the monthly return, with their CSV downloads.

The rows, counts and day counts come from ``tracker.returns.queries`` (the API reads the
same functions); these views read the query string, call one of them and answer.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

from flask import Blueprint, abort, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from tracker.core.clock import local_date
from tracker.engine import clocks
from tracker.engine.dictionary import REFERRAL_PRIORITY
from tracker.extensions import db
from tracker.returns import queries
from tracker.teams import scope
from tracker.users.models import User
from tracker.web.back import remember_list
from tracker.web.csv import csv_response

bp = Blueprint("returns", __name__)
PTL_PAGE_SIZE = 100


def _now() -> datetime:
    return datetime.now(UTC)


def _surgeons() -> list[User]:
    return list(
        db.session.scalars(
            select(User).where(User.role == "surgeon").order_by(User.full_name, User.username)
        )
    )


def _ptl_filters():
    args = request.args
    filters, errors = queries.ptl_filters(args.get("band"), args.get("lead_surgeon"))
    if filters is not None:
        filters = replace(filters, visible=scope.pathways(current_user, _now()))
    return filters, [message for messages in errors.values() for message in messages]


def _cells(record: dict) -> list:
    """A row's values for the CSV: yes/no for a flag, the rest as the CSV writes them."""
    return [("yes" if v else "no") if isinstance(v, bool) else v for v in record.values()]


@bp.get("/ptl")
def ptl():
    now = _now()
    filters, problems = _ptl_filters()
    # An absurd page number is an empty page, not an offset the database cannot hold.
    page = min(max(1, request.args.get("page", 1, type=int) or 1), 1_000_000)
    context = {
        "args": request.args,
        "surgeons": _surgeons(),
        "bands": queries.BANDS,
        "problems": problems,
        "target_labels": clocks.LABELS,
        "priorities": dict(REFERRAL_PRIORITY),
    }
    if filters is None:
        return render_template("returns/ptl.html", result=None, **context), 422
    result = queries.ptl(filters, now, page, PTL_PAGE_SIZE)
    pages = max(1, -(-result.total // PTL_PAGE_SIZE))
    remember_list("ptl")

    def link(**changes):
        merged = {k: v for k, v in request.args.items() if v}
        merged.update(changes)
        return url_for("returns.ptl", **{k: v for k, v in merged.items() if v})

    return render_template(
        "returns/ptl.html", result=result, page=page, pages=pages, link=link, **context
    )


@bp.get("/ptl.csv")
def ptl_csv():
    filters, problems = _ptl_filters()
    if filters is None:
        abort(422, " ".join(problems))
    result = queries.ptl(filters, _now())
    rows = (_cells(row.record()) for row in result.rows)
    return csv_response(f"ptl_{result.today}.csv", list(queries.PTL_COLUMNS), rows)


def _month(default: date | None) -> tuple[date | None, str | None]:
    raw = request.args.get("month")
    if not (raw or "").strip() and default is not None:
        return default, None
    return queries.parse_month(raw, local_date(_now()))


@bp.get("/returns/cwt")
def cwt():
    """The month's return; without a month, the previous month's."""
    month, problem = _month(queries.previous_month(local_date(_now())))
    context = {
        "args": request.args,
        "problems": [problem] if problem else [],
        "labels": clocks.LABELS,
        "priorities": dict(REFERRAL_PRIORITY),
    }
    if month is None:
        return render_template("returns/cwt.html", result=None, **context), 422
    result = queries.cwt_return(month, scope.pathways(current_user, _now()))
    return render_template(
        "returns/cwt.html",
        result=result,
        month=month.strftime("%Y-%m"),
        previous=queries.previous_month(month).strftime("%Y-%m"),
        following=queries.next_month(month).strftime("%Y-%m"),
        **context,
    )


@bp.get("/returns/cwt.csv")
def cwt_csv():
    """The month's return, one row per clock; the month must be given."""
    month, problem = _month(None)
    if month is None:
        abort(422, problem)
    result = queries.cwt_return(month, scope.pathways(current_user, _now()))
    rows = (_cells(row.record()) for row in result.rows)
    return csv_response(f"cwt_return_{month:%Y-%m}.csv", list(queries.RETURN_COLUMNS), rows)
