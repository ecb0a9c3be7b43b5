"""What the services refuse, each saying which rule and why."""

from __future__ import annotations

from tracker.engine.states import STATE_LABELS


class PathwayError(Exception):
    """Base: the message is meant for the person who tried."""

    status = 409

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class StaleVersion(PathwayError):
    """Someone else changed the pathway since the caller read it."""

    def __init__(self, current_state: str | None, current_version: int | None):
        self.current_state = current_state
        self.current_version = current_version
        now = (
            f": it is now '{STATE_LABELS.get(current_state, current_state)}' "
            f"(version {current_version})"
            if current_state
            else " by someone else at the same moment"
        )
        super().__init__(
            f"This pathway changed since you opened it{now}. "
            "Check the latest steps, and record yours again if it still applies."
        )


class ConcurrentWrite(StaleVersion):
    """Another writer changed the same rows at the same moment and got there first: what
    this call read is out of date. The transaction boundary runs the request once more
    against what the other wrote (a copy of the same request is then a replay)."""

    def __init__(self):
        super().__init__(None, None)


class TriggerNotAllowed(PathwayError):
    """The step does not apply in the pathway's current state, or a guard refuses it."""


class RoleNotAllowed(PathwayError):
    status = 403


class InvalidData(PathwayError):
    status = 422

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        parts = [f"{name}: {'; '.join(messages)}" for name, messages in errors.items()]
        super().__init__("Please correct: " + " | ".join(parts))


class RequestIdReused(PathwayError):
    status = 422
