"""The audit entries the web layer writes: views of patient data and refusals.

Changes write their own entries in their transaction (tracker.audit.services); after
each request, the transaction boundary asks here for one entry for a page or call that
showed patient data (the matrix's ``shows``) and one for each refusal (401, 403).

Refusals anyone can cause without an account are counted, not written one by one
(else a flood of them would write a flood of chained rows): an API call without a valid
token, a request stopped by a rate limit, a password reset link that names no reset
(``tracker.accounts.routes``) and a failed single sign-on that names no account
(``tracker.accounts.sso``). Per address and window
(``AUDIT_AGGREGATE_MINUTES``) the log gets the 1st, 10th, 100th, ... with the count so
far; the window's first entry also gives the previous window's total
(``tracker.web.limits.count_failure``).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

from flask import Flask, Response, current_app, g, request

from tracker.audit.chain import PENDING, seal_pending
from tracker.audit.services import record
from tracker.engine.models import Pathway
from tracker.extensions import db
from tracker.web.access import rule_for
from tracker.web.limits import address, count_failure, worth_an_entry

# Query arguments worth keeping with a list view (what was asked for), bounded.
_MAX_QUERY = 500


def _ids() -> tuple[int | None, int | None]:
    """(patient_id, pathway_id) named by the URL."""
    args = request.view_args or {}
    pathway_id = args.get("pathway_id")
    patient_id = args.get("patient_id")
    if pathway_id is not None:
        pathway = db.session.get(Pathway, pathway_id) if 0 < pathway_id < 2**31 else None
        if pathway is None:
            return None, None
        patient_id = pathway.patient_id
    return patient_id, pathway_id


def record_request(response: Response) -> None:
    """Add the request's audit entry, if it has one; the transaction boundary
    (``tracker.web.boundary``) commits it with the rest of the request, or alone."""
    status = response.status_code
    if getattr(g, "rate_limited", None):
        counted("rate_limited", g.rate_limited)
        return
    if status == 401 and request.blueprint == "api":
        counted("api_token_failed", getattr(g, "refusal", None) or "no valid token")
        return
    if status in (401, 403):
        reason = getattr(g, "refusal", None) or f"HTTP {status}"
        record(
            "refused", outcome="refused", detail={"endpoint": request.endpoint, "reason": reason}
        )
        return
    rule = rule_for(request.endpoint)
    # A page or call that answered with its content (not a redirect to the login page).
    if rule.shows and status == 200 and request.method == "GET":
        patient_id, pathway_id = _ids()
        detail = {"endpoint": request.endpoint}
        if (access := g.get("emergency_access")) is not None:
            detail["emergency_access"] = access.id  # seen through break-glass
        if request.query_string:
            detail["query"] = request.query_string.decode("utf-8", "replace")[:_MAX_QUERY]
        record(
            "export" if rule.shows == "export" else "view",
            patient_id=patient_id,
            pathway_id=pathway_id,
            detail=detail,
        )


def record_refusal(reason: str, patient_id: int | None = None) -> None:
    """An entry for a refusal answered with another status than 401 or 403 (an MRN or NHS
    number already registered). The caller keeps it (``boundary.keep``) after discarding
    what the request wrote."""
    record(
        "refused",
        outcome="refused",
        patient_id=patient_id,
        detail={"endpoint": request.endpoint, "reason": reason},
    )


def counted(action: str, reason: str, **extra) -> None:
    """One entry for the 1st, 10th, 100th, ... such failure from this address in this
    window, with the count so far (and, on the first, the previous window's total).
    ``extra`` goes into the entry's detail."""
    count, start, previous = count_failure(action, address())
    if not worth_an_entry(count):
        return
    detail = {
        **extra,
        "endpoint": request.endpoint,
        "reason": reason,
        "count_in_window": count,
        "window_start": datetime.fromtimestamp(start, UTC).isoformat(),
    }
    if count is None:
        detail["count_in_window"] = "not counted: the rate-limit storage is unreachable"
    if count == 1:
        detail["previous_window_count"] = previous
    record(action, outcome="refused", detail=detail)


# -- linking the entries into the chain ------------------------------------------------

log = logging.getLogger("tracker.audit")
_sealing = threading.Lock()  # one sealer per process at a time
_last_sealed = float("-inf")  # time.monotonic() of this process's last try


def seal_after(response: Response) -> None:
    """After a request whose transaction committed an audit entry: link the entries
    awaiting their place into the chain (``tracker.audit.chain.seal_pending``), at most
    once per AUDIT_SEAL_SECONDS in this process, once the answer has gone (the client
    does not wait for it); with 0, here and now, before the answer."""
    if not db.session.info.pop(PENDING, False):
        return
    app = current_app._get_current_object()
    every = app.config["AUDIT_SEAL_SECONDS"]
    if every <= 0:
        _seal()  # in the request's own session, its transaction just committed
    elif time.monotonic() - _last_sealed >= every:
        response.call_on_close(lambda: _seal(app))


def _seal(app: Flask | None = None) -> None:
    """One sealing transaction: in a context of its own for ``app`` (the request's has
    ended), else in the one at hand."""
    global _last_sealed
    if not _sealing.acquire(blocking=False):
        return  # this process's other thread is at it
    try:
        if app is not None and time.monotonic() - _last_sealed < app.config["AUDIT_SEAL_SECONDS"]:
            return  # another thread of this process has just done it
        _last_sealed = time.monotonic()
        if app is None:
            _seal_and_commit()
        else:
            with app.app_context():
                _seal_and_commit()
    finally:
        _sealing.release()


def _seal_and_commit() -> None:
    try:
        seal_pending(wait=False)
        db.session.commit()
    except Exception:
        # The entries stay as written, each with its own hash: the next request's sealer,
        # or the worker's, links them.
        db.session.rollback()
        log.exception("could not link the new audit entries into the chain")
