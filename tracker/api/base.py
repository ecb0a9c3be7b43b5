"""The API's frame: its blueprint, its error, authentication by bearer token, the query
parameters each call takes, and the reading of a request every call shares (the JSON
body, a pathway of the caller's teams, a page number, a write's version and request id).
The calls are in ``routes`` (patients, pathways, tasks, FHIR, returns) and ``meetings``.

Authenticated by bearer tokens only (no session cookie is read here), which is why
this blueprint is exempt from CSRF.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from flask import Blueprint, g, jsonify, request

from tracker.api.services import touch
from tracker.core.clock import local_zone
from tracker.core.text import has_control_characters
from tracker.engine import teams
from tracker.engine.models import Pathway
from tracker.extensions import db
from tracker.teams import scope
from tracker.web.access import ANONYMOUS, refusal, rule_for
from tracker.web.boundary import error_body
from tracker.web.limits import bearer_token

bp = Blueprint("api", __name__, url_prefix="/api")
PAGE_SIZE = 50
# The query parameters each call takes, by endpoint (``query_parameters``); a call takes
# none unless it says so, and any other is refused.
QUERY_PARAMETERS: dict[str, frozenset[str]] = {}


def query_parameters(*names: str) -> Callable:
    """Declares the query parameters of the view below it."""

    def register(view: Callable) -> Callable:
        QUERY_PARAMETERS[f"{bp.name}.{view.__name__}"] = frozenset(names)
        return view

    return register


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, errors: dict | None = None, **extra):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.errors, self.extra = errors or {}, extra


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError):
    if exc.status in (401, 403):
        g.refusal = exc.message  # for the audit log
    return jsonify(error_body(exc.code, exc.message, exc.errors, **exc.extra)), exc.status


# Domain errors (PathwayError), HTTP errors (an unknown URL or method under /api, a body
# too large) and unexpected exceptions (500) are answered by the transaction boundary in
# the API's one error shape (tracker.web.boundary); only the answers particular to a call
# are here.


# The methods a read-only token may use; every other one writes.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
GET_ANOTHER = "create a new one on your account page (click your name in the top bar)"


@bp.before_request
def _authenticate():
    if ANONYMOUS in rule_for(request.endpoint).roles:
        return None
    presented = bearer_token()  # read once per request, as the rate limit reads it
    if presented.expired_at is not None:
        when = presented.expired_at.astimezone(local_zone()).strftime("%d %b %Y %H:%M")
        raise ApiError(401, "token_expired", f"This API token expired on {when}; {GET_ANOTHER}.")
    token = presented.token
    if token is None:
        # Unknown, revoked, or of a deactivated account: the same answer for each.
        raise ApiError(
            401,
            "unauthorized",
            "Send a valid API token: 'Authorization: Bearer <token>'. A token stops working "
            "when it expires, is revoked, or its user's password changes; "
            f"{GET_ANOTHER}.",
        )
    g.api_user = user = token.user
    touch(token)
    reason = refusal(user.role, request.endpoint)
    if reason:
        g.refusal = reason
        raise ApiError(403, "forbidden", reason)
    if request.method not in READ_METHODS and not token.writes:
        raise ApiError(
            403,
            "read_only_token",
            f"This API token is read-only: it may read but not write. To write, {GET_ANOTHER} "
            "with the scope 'read-write'.",
        )
    allowed = QUERY_PARAMETERS.get(request.endpoint, set())
    controlled = sorted(
        name or "(empty)"
        for name, value in request.args.items(multi=True)
        if has_control_characters(name) or has_control_characters(value)
    )
    if controlled:
        raise ApiError(
            422,
            "invalid_data",
            "Control characters are not allowed.",
            {name[:40]: ["contains a control character; remove it"] for name in controlled},
        )
    unknown = sorted(set(request.args) - allowed)
    if unknown:
        raise ApiError(
            422,
            "invalid_data",
            "Unknown query parameters.",
            {name or "(empty)": ["is not a parameter of this call"] for name in unknown},
        )
    return None


def json_body() -> dict:
    try:
        body = request.get_json(silent=True)
    except RecursionError:
        raise ApiError(400, "bad_request", "The request body is nested too deeply.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "The request body must be a JSON object.")
    problems = {path: ["contains a control character; remove it"] for path in _control(body)}
    if problems:
        raise ApiError(422, "invalid_data", "Control characters are not allowed.", problems)
    # A copy: the request's parsed body stays as sent if the view runs again (boundary).
    return dict(body)


def _control(value, path: str = "") -> list[str]:
    """Where, in a JSON value, a string holds a control character (tab and newline aside)."""
    if isinstance(value, str):
        return [path or "(body)"] if has_control_characters(value) else []
    if isinstance(value, dict):
        found = []
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            found += [where] if has_control_characters(str(key)) else _control(item, where)
        return found
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in _control(item, f"{path}[{i}]")]
    return []


def now() -> datetime:
    return datetime.now(UTC)


def load_pathway(pathway_id: int) -> Pathway:
    pathway = db.session.get(Pathway, pathway_id) if pathway_id < 2**31 else None
    if pathway is None:
        raise ApiError(404, "not_found", f"No pathway {pathway_id}.")
    in_teams(pathway.patient_id, [pathway.team])
    return pathway


def in_teams(patient_id: int, record_teams: list[str]) -> None:
    """A record of the caller's teams, or of a patient they hold emergency access to."""
    user = g.api_user
    if not scope.outside(user, patient_id, record_teams):
        return
    access = scope.grant(user, patient_id, now())
    if access is not None:
        g.emergency_access = access
        return
    names = ", ".join(teams.label(t) for t in record_teams)
    g.refusal = f"patient {patient_id} belongs to {names}, not one of the caller's teams"
    raise ApiError(
        403,
        "other_team",
        f"This patient is cared for by {names}, not one of your teams. Ask an administrator "
        "to add you to the team, or open the record in the web app with emergency access.",
    )


def page_number(args) -> int:
    raw_page = args.get("page", "1")
    digits = raw_page.isascii() and raw_page.isdigit() and len(raw_page) <= 7
    if not digits or not 1 <= int(raw_page) <= 1_000_000:
        raise ApiError(
            422, "invalid_data", "Bad page.", {"page": ["page is a whole number from 1"]}
        )
    return int(raw_page)


def write_errors(version, request_id) -> dict[str, list[str]]:
    """What is wrong with the version and request id every write sends: the version of
    the pathway as the caller read it (a concurrent change is refused) and the id that
    makes a resent request answer as the first did."""
    errors = {}
    if not isinstance(version, int) or isinstance(version, bool):
        errors["expected_version"] = ["expected_version is the pathway's version, a number"]
    if not isinstance(request_id, str):
        errors["request_id"] = ["A request id of 1 to 64 characters is required"]
    return errors
