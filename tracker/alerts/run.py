"""One run of the alerts, as the worker's periodic job and `flask tracker send-alerts` do
it: the transaction boundary of the alerts (the services flush, this commits).

First the new notifications, committed together; then each person's digest in its own
transaction, committed right after the mail server took it, so a refused message is
tried again at the next run and one person's failure stops nobody else's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.exc import IntegrityError

from tracker.alerts import services
from tracker.core.runtime import db_session
from tracker.mail import MailError

log = logging.getLogger("tracker.alerts")


@dataclass
class RunResult:
    raised: int = 0
    emailed: list[str] = field(default_factory=list)  # usernames
    failed: list[str] = field(default_factory=list)  # usernames, with the reason logged
    quiet: bool = False

    def summary(self) -> str:
        words = f"{self.raised} new notification{'s' if self.raised != 1 else ''}"
        if self.quiet:
            return words + "; quiet hours: email held until they end"
        words += f"; {len(self.emailed)} email{'s' if len(self.emailed) != 1 else ''} sent"
        if self.failed:
            words += f"; not sent (tried again at the next run): {', '.join(self.failed)}"
        return words


def run_alerts(now: datetime, ignore_schedule: bool = False) -> RunResult:
    """Raise what the rules find at ``now``, then email what is due."""
    session = db_session()
    result = RunResult()
    for attempt in (1, 2):
        try:
            result.raised = len(services.raise_alerts(now))
            session.commit()
            break
        except IntegrityError:
            # Another run (a second worker) raised some of them at the same moment: its
            # rows are committed now, so a second try skips them.
            session.rollback()
            if attempt == 2:
                raise
        except Exception:
            session.rollback()
            raise
    result.quiet = services.in_quiet_hours(now)
    digests = services.due_digests(now, ignore_schedule=ignore_schedule)
    session.commit()  # the notifications settled as not to be emailed
    for digest in digests:
        username = digest.user.username
        try:
            if services.send_digest(digest, now):
                result.emailed.append(username)
            session.commit()
        except MailError as exc:
            session.rollback()
            result.failed.append(username)
            log.warning("alerts for %s not emailed, tried again at the next run: %s", username, exc)
    return result
