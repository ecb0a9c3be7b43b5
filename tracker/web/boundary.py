"""The one transaction boundary of the pages and the API (as Indico's ``RH`` is).

A request's view loads, checks and calls the services, which flush and never commit.
Here, once, after the view has answered:

- a success (below 400) is committed, with the audit entry of what it showed;
- an error answer is rolled back, unless the view kept what it wrote (a failed login is
  counted and audited even though it answers 401); a refusal (401, 403) keeps only its
  audit entry;
- a domain error the view did not handle (``PathwayError``) becomes the page's error
  page or the API's JSON error, with its words and status; so does every other error
  (a URL or method that does not exist, a body too large, an unexpected exception: a
  500, logged with its traceback, nothing kept). Under /api every answer is JSON;
- a write that lost a race (``ConcurrentWrite``: another request wrote the same rows at
  the same moment and committed first) is rolled back and the view runs once more,
  against what the other request committed. A copy of that request (the same
  ``request_id``, a client's retry racing the original) is then answered exactly as a
  copy sent later is, with the original's answer; any other change gets the ordinary
  "changed since you opened it".

Views never commit. A view that must read again after a refused write calls
``discard()`` first.
"""

from __future__ import annotations

from flask import Flask, Response, current_app, g, jsonify, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException, InternalServerError, default_exceptions

from tracker.engine.errors import ConcurrentWrite, InvalidData, PathwayError, StaleVersion
from tracker.extensions import db
from tracker.web import auditing

API_PREFIX = "/api"
SERVER_ERROR = "Something went wrong; nothing was saved."


def error_body(code: str, message: str, errors: dict | None = None, **extra) -> dict:
    """The API's one error shape, for every status (500 included)."""
    return {"error": code, "message": message, "errors": errors or {}, **extra}


def api_error(exc: PathwayError) -> tuple[int, dict]:
    """A domain error as the API answers it: (status, body)."""
    if isinstance(exc, InvalidData):
        return 422, error_body("invalid_data", exc.message, exc.errors)
    if isinstance(exc, StaleVersion):
        return 409, error_body("stale_version", exc.message)
    if exc.status == 403:
        return 403, error_body("forbidden", exc.message)
    if exc.status == 422:
        return 422, error_body("invalid_request", exc.message, {"request_id": [exc.message]})
    return 409, error_body("not_allowed_now", exc.message)


class TrackerFlask(Flask):
    """Flask, with the boundary's one retry of a view that lost a race."""

    def dispatch_request(self) -> ResponseReturnValue:
        try:
            return super().dispatch_request()
        except ConcurrentWrite:
            # Once: the request that won has committed (this one waited on its locks), so
            # the view now reads what it wrote; losing again is answered as stale.
            db.session.rollback()
            return super().dispatch_request()


def discard() -> None:
    """Throw away what this request wrote so far (after a refused write), so the view can
    read the database again before it answers."""
    db.session.rollback()


def keep() -> None:
    """Commit what this request wrote even though it answers with an error status (a
    failed login: its count and audit entry must stay)."""
    g.keep_changes = True


def _finish(response: Response) -> Response:
    if request.endpoint in (None, "static", "bootstrap.static", "healthz"):
        return response
    refused = response.status_code >= 400
    if refused and not g.get("keep_changes"):
        db.session.rollback()
    auditing.record_request(response)
    db.session.commit()
    auditing.seal_after(response)
    return response


def for_the_api() -> bool:
    """Is this request the API's? Its routes, and any other path under /api (a URL or
    method it does not have): every answer there is JSON in the one error shape."""
    path = request.path
    return request.blueprint == "api" or path == API_PREFIX or path.startswith(f"{API_PREFIX}/")


# The page of one record a refused or conflicting request came from, and its name.
_RECORD_PAGES = (
    ("pathway_id", "pathway.show", "Back to the pathway"),
    ("patient_id", "patients.show", "Back to the patient"),
)


def _way_back(code: int | None) -> tuple[str, str] | None:
    """For a 403 or 409 on a pathway's or patient's page (a step refused, a record
    changed meanwhile): (label, address) of that record's own page, unless it is the
    page that answered. Its id comes from the address only: nothing is read, so the
    page says no more about a record the user may not see."""
    if code not in (403, 409):
        return None
    args = request.view_args or {}
    for key, endpoint, label in _RECORD_PAGES:
        if isinstance(args.get(key), int) and request.endpoint != endpoint:
            return label, url_for(endpoint, **{key: args[key]})
    return None


def _domain_error(exc: PathwayError):
    db.session.rollback()
    if exc.status in (401, 403):
        g.refusal = exc.message  # for the audit log
    if for_the_api():
        status, body = api_error(exc)
        return jsonify(body), status
    error = default_exceptions[exc.status](description=exc.message)
    page = render_template(
        "errors/error.html", error=error, reason=exc.message, back=_way_back(exc.status)
    )
    return page, exc.status


def _http_error(error: HTTPException):
    """404, 405, 413, an ``abort()``: the API's JSON, or the page's own error page."""
    if error.code in (401, 403) and not getattr(g, "refusal", None):
        g.refusal = error.description  # for the audit log
    if request.endpoint == "healthz":
        return error
    if for_the_api():
        if error.code == 500:  # what Flask makes of a failure after the view (the commit)
            return jsonify(error_body("server_error", SERVER_ERROR)), 500
        code = (error.name or "error").lower().replace(" ", "_")
        return jsonify(error_body(code, error.description or error.name)), error.code
    # Say why when the code that refused gave a reason; otherwise the page's own words.
    reason = error.description if error.description != type(error).description else None
    page = render_template(
        "errors/error.html", error=error, reason=reason, back=_way_back(error.code)
    )
    return page, error.code


def _server_error(error: Exception):
    """Anything else the view raised: logged with its traceback, nothing kept (``_finish``
    then writes only the request's audit entry), and a 500 without the details."""
    current_app.logger.exception("unhandled error on %s %s", request.method, request.path)
    db.session.rollback()
    if for_the_api():
        return jsonify(error_body("server_error", SERVER_ERROR)), 500
    return render_template("errors/error.html", error=InternalServerError()), 500


def init_app(app: Flask) -> None:
    # After-request functions run last-registered first: registered before any other, the
    # commit comes after every other hook has had its say.
    app.after_request_funcs.setdefault(None, []).insert(0, _finish)
    app.register_error_handler(PathwayError, _domain_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _server_error)
