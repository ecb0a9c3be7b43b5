"""Every model, imported in one place for Alembic and the CLI."""

from tracker.api.models import ApiToken
from tracker.pathway.models import Event, Pathway
from tracker.patients.models import Patient
from tracker.users.models import User

__all__ = ["ApiToken", "Event", "Pathway", "Patient", "User"]
