"""Rules for text that every boundary applies alike."""

from __future__ import annotations


def has_control_characters(text: str) -> bool:
    """A C0 control character or DEL, other than tab and line breaks: never meant by a
    person, refused by PostgreSQL (NUL), and confusing in every list and export."""
    return any((ord(c) < 32 and c not in "\t\n\r") or c == "\x7f" for c in text)
