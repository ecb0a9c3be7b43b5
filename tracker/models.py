"""Every model, imported in one place for Alembic and the CLI."""

from tracker.alerts.models import Notification
from tracker.api.models import ApiToken
from tracker.audit import chain, seals, services  # noqa: F401 - the hooks that seal and audit rows
from tracker.audit.models import AuditEntry, ChainHead
from tracker.engine.models import Event, Pathway, PathwayTask
from tracker.mdt import services as mdt_services  # noqa: F401 - the listing's checks
from tracker.mdt.models import MdtAttendance, MdtCase, MdtMeeting
from tracker.patients.models import Patient
from tracker.saved_views.models import SavedView
from tracker.teams.models import EmergencyAccess, UserTeam
from tracker.tracking import services as tracking_services  # noqa: F401 - the tasks' checks
from tracker.users.models import PasswordReset, RecoveryCode, User, WebSession

__all__ = [
    "ApiToken",
    "AuditEntry",
    "ChainHead",
    "EmergencyAccess",
    "Event",
    "MdtAttendance",
    "MdtCase",
    "MdtMeeting",
    "Notification",
    "PasswordReset",
    "Pathway",
    "PathwayTask",
    "Patient",
    "RecoveryCode",
    "SavedView",
    "User",
    "UserTeam",
    "WebSession",
]
