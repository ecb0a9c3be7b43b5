"""Every model, imported in one place for Alembic and the CLI."""

from tracker.api.models import ApiToken
from tracker.audit import chain, services  # noqa: F401 - the hooks that seal and audit rows
from tracker.audit.models import AuditEntry, ChainHead
from tracker.engine.models import Event, Pathway
from tracker.patients.models import Patient
from tracker.users.models import RecoveryCode, User, WebSession

__all__ = [
    "ApiToken",
    "AuditEntry",
    "ChainHead",
    "Event",
    "Pathway",
    "Patient",
    "RecoveryCode",
    "User",
    "WebSession",
]
