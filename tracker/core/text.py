"""Rules for text that every boundary applies alike."""

from __future__ import annotations


def has_control_characters(text: str) -> bool:
    """A C0 control character or DEL, other than tab and line breaks: never meant by a
    person, refused by PostgreSQL (NUL), and confusing in every list and export."""
    return any((ord(c) < 32 and c not in "\t\n\r") or c == "\x7f" for c in text)


def shown_safely(text: str) -> str:
    """``text`` with each control character written as its escape (NUL as \\x00): for
    recording what a client sent (a URL path in the audit log) without refusing it."""
    return "".join(f"\\x{ord(c):02x}" if (ord(c) < 32 or c == "\x7f") else c for c in text)
