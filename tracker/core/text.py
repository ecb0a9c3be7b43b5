"""Rules for text that every boundary applies alike."""

from __future__ import annotations

import re
import unicodedata

_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def has_control_characters(text: str) -> bool:
    """A C0 control character or DEL, other than tab and line breaks: never meant by a
    person, refused by PostgreSQL (NUL), and confusing in every list and export."""
    return _CONTROL.search(text) is not None


def shown_safely(text: str) -> str:
    """``text`` with each control character written as its escape (NUL as \\x00): for
    recording what a client sent (a URL path in the audit log) without refusing it."""
    return "".join(f"\\x{ord(c):02x}" if (ord(c) < 32 or c == "\x7f") else c for c in text)


def identifier_key(text: str) -> str:
    """How an identifier typed by people (an MRN) is compared and kept unique: in
    Unicode's compatibility form (NFKC: a fullwidth A, U+FF21, is 'A'), without outer spaces,
    and case-folded ('ÄX1', 'äx1' and 'ÄX1' written with a combining diaeresis are one).
    Python computes it, not the database: SQLite's ``lower()`` folds only ASCII."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold()).strip()


# Letters that carry no combining mark to drop, written as people type them without one.
_PLAIN_LETTERS = str.maketrans(
    {"ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "æ": "ae", "œ": "oe", "\u0131": "i"}
)
_NOT_WORD = re.compile(r"[^\w]+|_+")


def search_key(text: str) -> str:
    """How names are searched: ``identifier_key``'s folding, accents dropped ('Zoë
    Ó Súilleabháin' is 'zoe o suilleabhain'), apostrophes dropped ("O'Brien" is 'obrien')
    and any other run of punctuation or spaces one space ('Smith-Jones' is 'smith jones').
    Python computes it for the stored column and the query alike."""
    decomposed = unicodedata.normalize("NFKD", identifier_key(text))
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    plain = plain.translate(_PLAIN_LETTERS).replace("'", "").replace("\u2019", "")
    return " ".join(_NOT_WORD.sub(" ", unicodedata.normalize("NFKC", plain)).split())


def first_unprintable(text: str) -> tuple[int, str] | None:
    """(1-based position, character) of the first character that does not print: control
    and format characters (a zero-width space, a direction mark), line and paragraph
    separators, and spaces other than the plain space. None when every one prints."""
    for position, character in enumerate(text, start=1):
        if not character.isprintable():
            return position, character
    return None


def describe_character(character: str) -> str:
    """'U+200B ZERO WIDTH SPACE'"""
    return f"U+{ord(character):04X} {unicodedata.name(character, 'unnamed character')}"
