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

from datetime import UTC, datetime

from flask import Response, g, request

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
