"""The patient's fields of PATHWAY.md's data dictionary, in the engine's field kinds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from tracker.core.text import describe_character, first_unprintable
from tracker.engine.dictionary import codes
from tracker.engine.fields import Choice, Date, Text

SEX = codes("female=Female", "male=Male", "other=Other", "unknown=Unknown")
NHS_NUMBER_EXAMPLE = "943 476 5919"
# Ten digits, spaces anywhere (as printed on letters: 3 3 4); nothing else.
NHS_NUMBER_PATTERN = r"^ *(?:[0-9] *){10}$"


def nhs_check_digit(first_nine: str) -> int | None:
    """The Modulus 11 check digit of an NHS number's first nine digits; None when the
    remainder gives 10, which no valid number has."""
    total = sum(
        int(digit) * weight for digit, weight in zip(first_nine, range(10, 1, -1), strict=True)
    )
    check = 11 - total % 11
    if check == 11:
        return 0
    return None if check == 10 else check


def nhs_number_digits(value: str) -> str | None:
    """The ten digits of ``value`` with its spaces taken out, or None when that is not ten
    ASCII digits."""
    digits = value.replace(" ", "")
    return digits if len(digits) == 10 and digits.isascii() and digits.isdigit() else None


def is_valid_nhs_number(digits: str) -> bool:
    return nhs_check_digit(digits[:9]) == int(digits[9])


def format_nhs_number(digits: str) -> str:
    """'9434765919' as printed on NHS letters: '943 476 5919'."""
    return f"{digits[:3]} {digits[3:6]} {digits[6:]}"


@dataclass(frozen=True)
class NHSNumber(Text):
    """An NHS number: ten digits (typed with or without spaces, stored without) whose last
    is the Modulus 11 check digit of the first nine."""

    max_length: int = 20  # the input, spaces included
    kind: ClassVar[str] = "nhs_number"

    def check(self, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"must be text: 10 digits, for example {NHS_NUMBER_EXAMPLE}")
        if len(value) > self.max_length:
            raise ValueError(f"is too long: at most {self.max_length} characters")
        digits = nhs_number_digits(value)
        if digits is None:
            raise ValueError(
                f"must be 10 digits (spaces allowed), for example {NHS_NUMBER_EXAMPLE}"
            )
        if not is_valid_nhs_number(digits):
            raise ValueError(
                "is not valid: its last digit is not the check digit of the first nine; "
                "check it was typed correctly"
            )
        return digits

    def describe(self, value: Any, data: dict | None = None, names: dict | None = None) -> str:
        return (
            format_nhs_number(value) if isinstance(value, str) and len(value) == 10 else str(value)
        )

    def json_schema(self) -> dict:
        return {"type": "string", "pattern": NHS_NUMBER_PATTERN, "maxLength": self.max_length}

    def to_form(self, form, value: Any) -> None:
        form[self.name].data = self.describe(value)


@dataclass(frozen=True)
class HospitalNumber(Text):
    """An MRN: printable characters only. Patients are matched by its
    ``identifier_key`` (the model keeps it in ``mrn_key``), never by the text as typed."""

    def check(self, value: Any) -> str:
        value = super().check(value)
        found = first_unprintable(value)
        if found is not None:
            position, character = found
            raise ValueError(
                f"has a character that does not print at position {position} "
                f"({describe_character(character)}): type the MRN again with letters, "
                "digits and punctuation only"
            )
        return value


MRN = HospitalNumber("mrn", "MRN (hospital number)", required=True, max_length=32)
NHS_NUMBER = NHSNumber(
    "nhs_number", "NHS number", help=f"Optional: 10 digits, for example {NHS_NUMBER_EXAMPLE}."
)
GP_PRACTICE = Text("gp_practice", "GP practice", max_length=200, help="Optional.")

PATIENT_FIELDS = (
    MRN,
    NHS_NUMBER,
    Text("family_name", "Family name", required=True, max_length=100),
    Text("given_name", "Given name", required=True, max_length=100),
    Date("birth_date", "Date of birth", required=True),
    Choice("sex", "Sex", required=True, choices=SEX),
    GP_PRACTICE,
)
FIELD_BY_NAME = {f.name: f for f in PATIENT_FIELDS}
