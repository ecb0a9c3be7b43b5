"""A Flask-Mailman backend that writes each message to its own .eml file (development and
test machines, MAIL_SERVER unset): Flask-Mailman's own file backend appends several
messages to one .log file, which no mail program opens."""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime
from pathlib import Path

from flask_mailman.backends.base import BaseEmailBackend


class EmailBackend(BaseEmailBackend):
    def __init__(self, *args, file_path: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.folder = Path(file_path or self.mailman.file_path)

    def send_messages(self, email_messages) -> int:
        self.folder.mkdir(parents=True, exist_ok=True)
        sent = 0
        for message in email_messages:
            stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
            path = self.folder / f"{stamp}-{secrets.token_hex(4)}.eml"
            partial = path.with_suffix(".part")
            partial.write_bytes(message.message().as_bytes())
            os.replace(partial, path)  # a reader never sees half a message
            sent += 1
        return sent
