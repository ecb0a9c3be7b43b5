"""The surgical care-pathway tracker.

``create_app`` is looked up lazily (PEP 562), so that importing the engine
(``tracker.engine``) loads no web framework.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from tracker.app import create_app, project_folder, template_folder

__all__ = ["create_app", "project_folder", "template_folder"]


def __getattr__(name: str):
    if name in __all__:
        from tracker import app

        return getattr(app, name)
    raise AttributeError(f"module 'tracker' has no attribute {name!r}")
