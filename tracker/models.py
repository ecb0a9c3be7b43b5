"""Every model, imported in one place for Alembic and the CLI."""

from tracker.pathway.models import Event, Pathway
from tracker.patients.models import Patient
from tracker.users.models import User

__all__ = ["Event", "Pathway", "Patient", "User"]
