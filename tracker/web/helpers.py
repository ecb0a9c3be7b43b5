"""Small pieces the feature routes share."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select

from tracker.extensions import db


def users_by_role() -> dict[str, list]:
    from tracker.users.models import User

    grouped: dict[str, list] = defaultdict(list)
    for user in db.session.scalars(
        select(User).where(User.active.is_(True)).order_by(User.full_name, User.username)
    ):
        grouped[user.role].append(user)
    return grouped
