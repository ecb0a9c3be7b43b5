"""The audit entries the web layer writes: views of patient data and refusals.

Changes write their own entries in their transaction (tracker.audit.services); this
hook adds, after each request, one entry for a page or call that showed patient data
(the matrix's ``shows``) and one for each refusal (401, 403), and commits them.
"""

from __future__ import annotations

from flask import Flask, Response, g, request

from tracker.audit.services import record
from tracker.extensions import db
from tracker.web.access import rule_for

# Query arguments worth keeping with a list view (what was asked for), bounded.
_MAX_QUERY = 500


def _ids() -> tuple[int | None, int | None]:
    """(patient_id, pathway_id) named by the URL."""
    from tracker.pathway.models import Pathway

    args = request.view_args or {}
    pathway_id = args.get("pathway_id")
    patient_id = args.get("patient_id")
    if pathway_id is not None:
        pathway = db.session.get(Pathway, pathway_id) if 0 < pathway_id < 2**31 else None
        if pathway is None:
            return None, None
        patient_id = pathway.patient_id
    return patient_id, pathway_id


def _after(response: Response) -> Response:
    if request.endpoint in (None, "static", "bootstrap.static", "healthz"):
        return response
    status = response.status_code
    if status in (401, 403):
        db.session.rollback()  # nothing of a refused request is kept but its entry
        reason = getattr(g, "refusal", None) or f"HTTP {status}"
        record(
            "refused", outcome="refused", detail={"endpoint": request.endpoint, "reason": reason}
        )
        db.session.commit()
        return response
    rule = rule_for(request.endpoint)
    # A page or call that answered with its content (not a redirect to the login page).
    if rule.shows and status == 200 and request.method == "GET":
        patient_id, pathway_id = _ids()
        detail = {"endpoint": request.endpoint}
        if request.query_string:
            detail["query"] = request.query_string.decode("utf-8", "replace")[:_MAX_QUERY]
        record(
            "export" if rule.shows == "export" else "view",
            patient_id=patient_id,
            pathway_id=pathway_id,
            detail=detail,
        )
        db.session.commit()
    return response


def init_app(app: Flask) -> None:
    app.after_request(_after)
