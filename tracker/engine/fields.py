"""Field kinds: one class per kind of value in the data dictionary.

Each kind validates a value, shows it in words, gives its JSON schema, reads its CSV
cell(s), and says which form inputs collect it and how their data becomes a value.
The engine knows no web framework: a field asks a *form kit* (built by the web layer
over WTForms) for the inputs it needs, by their general shape (a text box, a list to
choose from, boxes to tick, a date...). Adding a kind is one class here.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, ClassVar, Protocol

from tracker.core.text import has_control_characters
from tracker.engine import teams
from tracker.engine.scores import Score

# The years a pathway's dates can be in. No patient was born before 1900 (see
# register_patient); a year far ahead is a typing mistake, and at the ends of the calendar
# (year 1, year 9999) a date cannot even be moved to UTC or local time, or a target added to
# it, without an OverflowError.
EARLIEST_YEAR, LATEST_YEAR = 1900, 2999
YES, NO = {"yes", "y", "true", "1"}, {"no", "n", "false", "0"}
SCORE_SEP = "__"  # form input of a score component: <field>__<component>


class FormKit(Protocol):
    """The inputs a field can ask the web layer for (see ``tracker.web.forms``)."""

    def text(self, f: Field, *, multiline: bool) -> Any: ...
    def select(self, f: Field, choices: Iterable[tuple[str, str]], *, blank: bool) -> Any: ...
    def checkboxes(self, f: Field, choices: Iterable[tuple[str, str]]) -> Any: ...
    def date(self, f: Field) -> Any: ...
    def datetime(self, f: Field) -> Any: ...
    def integer(self, f: Field) -> Any: ...
    def decimal(self, f: Field) -> Any: ...
    def yes_no(self, f: Field) -> Any: ...
    def users(self, role: str | None) -> list[tuple[str, str]]: ...
    def optional_select(self, label: str, choices: Iterable[tuple[str, str]]) -> Any: ...


def _check_year(value: date) -> None:
    if value.year < EARLIEST_YEAR:
        raise ValueError(f"must be in {EARLIEST_YEAR} or later")
    if value.year > LATEST_YEAR:
        raise ValueError(f"must be in {LATEST_YEAR} or earlier")


def parse_date(value: Any) -> date:
    if isinstance(value, datetime):
        raise ValueError("give a date without a time, as YYYY-MM-DD")
    if isinstance(value, date):
        _check_year(value)
        return value
    if isinstance(value, str):
        try:
            parsed = date.fromisoformat(value.strip())
        except ValueError:
            pass
        else:
            _check_year(parsed)
            return parsed
    raise ValueError("is not a date; write it as YYYY-MM-DD, for example 2026-03-14")


def parse_datetime(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(
                "is not a date and time; write it as ISO 8601 with a UTC offset, "
                "for example 2026-03-14T09:30:00+00:00"
            ) from None
    if not isinstance(value, datetime):
        raise ValueError("is not a date and time")
    if value.tzinfo is None:
        raise ValueError("needs a UTC offset, for example 2026-03-14T09:30:00+00:00")
    _check_year(value)  # the year as written: in UTC, year 1 or 9999 may not exist
    return value


def blank(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, list | tuple) and not value)


@dataclass(frozen=True)
class Field(ABC):
    """A named value of a step, a pathway or a patient. Subclasses are the kinds; each
    implements the three abstract methods, and overrides the others where its values
    differ from plain text."""

    name: str
    label: str
    required: bool = False
    help: str = ""
    kind: ClassVar[str] = ""

    # -- the value ------------------------------------------------------------------------

    @abstractmethod
    def check(self, value: Any) -> Any:
        """The clean, JSON-ready value, or ValueError with words for a person."""

    def describe(self, value: Any, data: dict | None = None, names: dict | None = None) -> str:
        """The value in words, for the timeline, the overview and exports."""
        return str(value)

    # -- the API --------------------------------------------------------------------------

    @abstractmethod
    def json_schema(self) -> dict:
        """The value's JSON schema, for the API's OpenAPI document."""

    # -- the CSV import -------------------------------------------------------------------

    def csv_columns(self) -> tuple[str, ...]:
        return (self.name,)

    def from_row(self, row: dict[str, str]) -> Any:
        """The value of this field in a CSV row, or None when its cell is blank. Anything
        unparseable is passed on as written, for ``check`` to refuse with its words."""
        raw = (row.get(self.name) or "").strip()
        return self.parse_cell(raw) if raw else None

    def parse_cell(self, raw: str) -> Any:
        return raw

    # -- the forms ------------------------------------------------------------------------

    @abstractmethod
    def form_inputs(self, kit: FormKit) -> list[tuple[str, Any]]:
        """(input name, unbound form field) pairs that collect this value."""

    def from_form(self, form) -> Any:
        """The value the form's inputs hold, or None when they are blank."""
        value = form[self.name].data
        return None if blank(value) else self.form_to_value(value)

    def form_to_value(self, data: Any) -> Any:
        return data

    def to_form(self, form, value: Any) -> None:
        """Put a recorded value into the form's inputs (for an amendment)."""
        form[self.name].data = value

    # -- the pathway's story --------------------------------------------------------------

    def history_errors(self, value: Any, data: dict, history) -> list[str]:
        """What is wrong with a valid ``value`` given the pathway's ``history`` as it stood
        when the step was recorded (a lesion named must have been recorded by then). Checked
        when the step is recorded and again on every correction."""
        return []


@dataclass(frozen=True)
class Text(Field):
    max_length: int = 200
    kind: ClassVar[str] = "text"
    multiline: ClassVar[bool] = False

    def check(self, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError("must be text")
        value = value.strip()
        if not value:
            raise ValueError("must not be blank")
        if len(value) > self.max_length:
            raise ValueError(f"is too long: at most {self.max_length} characters")
        if has_control_characters(value):
            raise ValueError("contains control characters; remove them")
        return value

    def json_schema(self) -> dict:
        return {"type": "string", "minLength": 1, "maxLength": self.max_length}

    def form_inputs(self, kit: FormKit) -> list[tuple[str, Any]]:
        return [(self.name, kit.text(self, multiline=self.multiline))]


@dataclass(frozen=True)
class LongText(Text):
    max_length: int = 4000
    kind: ClassVar[str] = "longtext"
    multiline: ClassVar[bool] = True


@dataclass(frozen=True)
class UserRef(Text):
    """A user named by username; the services check that they exist, are active and have
    ``role``."""

    role: str | None = None
    kind: ClassVar[str] = "user"

    def describe(self, value: Any, data: dict | None = None, names: dict | None = None) -> str:
        return (names or {}).get(value, value)

    def form_inputs(self, kit: FormKit) -> list[tuple[str, Any]]:
        return [(self.name, kit.select(self, kit.users(self.role), blank=True))]


@dataclass(frozen=True)
class Choice(Field):
    choices: tuple[tuple[str, str], ...] = ()
    kind: ClassVar[str] = "choice"

    @property
    def codes(self) -> list[str]:
        return [code for code, _ in self.choices]

    def label_for(self, code: Any) -> str:
        for value, label in self.choices:
            if value == code:
                return label
        return str(code)

    def check(self, value: Any) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if value not in self.codes:
            raise ValueError(f"must be one of: {', '.join(self.codes)}")
        return value

    def describe(self, value: Any, data: dict | None = None, names: dict | None = None) -> str:
        return self.label_for(value)

    def json_schema(self) -> dict:
        return {"type": "string", "enum": self.codes}

    def form_inputs(self, kit: FormKit) -> list[tuple[str, Any]]:
        return [(self.name, kit.select(self, self.choices, blank=True))]

    def to_form(self, form, value: Any) -> None:
        form[self.name].data = str(value)


@dataclass(frozen=True)
class Team(Field):
    """One of the configured teams (``tracker.engine.teams``), by code."""

    kind: ClassVar[str] = "team"

    def check(self, value: Any) -> str:
        from_config = teams.codes()
        if value not in from_config:
            raise ValueError(f"must be one of: {', '.join(from_config)}")
        return value

    def describe(self, value: Any, data: dict | None = None, names: dict | None = None) -> str:
        return teams.label(value)

    def json_schema(self) -> dict:
        return {"type": "string", "enum": teams.codes()}

    def form_inputs(self, kit: FormKit) -> list[tuple[str, Any]]:
        return [(self.name, kit.select(self, teams.teams(), blank=True))]


@dataclass(frozen=True)
class MultiChoice(Choice):
    min_items: int = 0
    kind: ClassVar[str] = "multi"

    def check(self, value: Any) -> list[str]:
        if isinstance(value, str) or not isinstance(value, Iterable):
            raise ValueError("must be a list of choices")
        values = list(value)
        unknown = [v for v in values if v not in self.codes]
        if unknown:
            raise ValueError(
                f"has unknown choices ({', '.join(map(str, unknown))}); "
                f"choose from: {', '.join(self.codes)}"
            )
        if len(set(values)) < self.min_items:
            raise ValueError(f"choose at least {self.min_items}")
        return [code for code in self.codes if code in values]  # canonical order, no repeats

    def describe(self, value: Any, data: dict | None = None, names: dict | None = None) -> str:
        return ", ".join(self.label_for(v) for v in value)

    def json_schema(self) -> dict:
        return {
            "type": "array",
            "items": {"enum": self.codes},
            "minItems": max(self.min_items, 1 if self.required else 0),
            "uniqueItems": True,
        }

    def parse_cell(self, raw: str) -> Any:
        return [part.strip() for part in raw.split("|") if part.strip()]

    def form_inputs(self, kit: FormKit) -> list[tuple[str, Any]]:
        return [(self.name, kit.checkboxes(self, self.choices))]

    def to_form(self, form, value: Any) -> None:
        form[self.name].data = value


@dataclass(frozen=True)
class Date(Field):
    kind: ClassVar[str] = "date"

    def check(self, value: Any) -> str:
        return parse_date(value).isoformat()

    def describe(self, value: Any, data: dict | None = None, names: dict | None = None) -> str:
        if isinstance(value, str):
            return date.fromisoformat(value).strftime("%d %b %Y")
        return str(value)

    def json_schema(self) -> dict:
        return {"type": "string", "format": "date"}

    def form_inputs(self, kit: FormKit) -> list[tuple[str, Any]]:
        return [(self.name, kit.date(self))]

    def form_to_value(self, data: Any) -> str:
        return data.isoformat()

    def to_form(self, form, value: Any) -> None:
        form[self.name].data = date.fromisoformat(value)


@dataclass(frozen=True)
class DateTime(Field):
    kind: ClassVar[str] = "datetime"

    def check(self, value: Any) -> datetime:
        return parse_datetime(value)

    def json_schema(self) -> dict:
        return {"type": "string", "format": "date-time"}

    def form_inputs(self, kit: FormKit) -> list[tuple[str, Any]]:
        return [(self.name, kit.datetime(self))]


@dataclass(frozen=True)
class Integer(Field):
    minimum: float | None = None
    maximum: float | None = None
    step: int | None = None
    # Words for each value of a graded scale (ECOG): shown beside the number wherever
    # the value is read, and listed in the form's help.
    words: tuple[tuple[int, str], ...] = ()
    kind: ClassVar[str] = "int"

    def describe(self, value: Any, data: dict | None = None, names: dict | None = None) -> str:
        said = dict(self.words).get(value) if isinstance(value, int) else None
        return f"{value} - {said}" if said else str(value)

    def check(self, value: Any) -> int | float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("must be a number")
        self.check_whole(value)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("must be a finite number")
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"must be at least {self.minimum:g}")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"must be at most {self.maximum:g}")
        if self.step and value % self.step:
            raise ValueError(f"must be a multiple of {self.step}")
        return self.convert(value)

    def check_whole(self, value: int | float) -> None:
        if isinstance(value, float) and not value.is_integer():
            raise ValueError("must be a whole number")

    def convert(self, value: int | float) -> int | float:
        return int(value)

    def json_schema(self) -> dict:
        out: dict[str, Any] = {"type": "integer" if self.kind == "int" else "number"}
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        if self.step:
            out["multipleOf"] = self.step
        return out

    def parse_cell(self, raw: str) -> Any:
        return int(raw) if raw.isascii() and raw.lstrip("-").isdigit() else raw

    def form_inputs(self, kit: FormKit) -> list[tuple[str, Any]]:
        return [(self.name, kit.integer(self))]


@dataclass(frozen=True)
class Number(Integer):
    kind: ClassVar[str] = "number"

    def check_whole(self, value: int | float) -> None:
        pass

    def convert(self, value: int | float) -> float:
        return float(value)

    def parse_cell(self, raw: str) -> Any:
        try:
            return float(raw)
        except ValueError:
            return raw

    def form_inputs(self, kit: FormKit) -> list[tuple[str, Any]]:
        return [(self.name, kit.decimal(self))]

    def form_to_value(self, data: Any) -> float:
        return float(data)


@dataclass(frozen=True)
class YesNo(Field):
    kind: ClassVar[str] = "bool"

    def check(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise ValueError("must be yes or no (true or false)")
        return value

    def describe(self, value: Any, data: dict | None = None, names: dict | None = None) -> str:
        return "Yes" if value else "No"

    def json_schema(self) -> dict:
        return {"type": "boolean"}

    def parse_cell(self, raw: str) -> Any:
        lowered = raw.lower()
        return True if lowered in YES else False if lowered in NO else raw

    def form_inputs(self, kit: FormKit) -> list[tuple[str, Any]]:
        return [(self.name, kit.yes_no(self))]

    def form_to_value(self, data: Any) -> bool:
        return data == "yes"

    def to_form(self, form, value: Any) -> None:
        form[self.name].data = "yes" if value else "no"


@dataclass(frozen=True)
class ScoreField(Field):
    """A score given as its components' points (SINS, Tokuhashi); its total and band are
    computed, never typed."""

    score: Score | None = None
    kind: ClassVar[str] = "score"

    def check(self, value: Any) -> dict[str, int]:
        score = self.score
        if not isinstance(value, dict):
            raise ValueError(
                f"must give the {score.label} components: {', '.join(score.components)}"
            )
        unknown = sorted(set(value) - set(score.components))
        if unknown:
            raise ValueError(f"has unknown components: {', '.join(unknown)}")
        missing = [c for c in score.components if value.get(c) is None]
        if missing:
            raise ValueError(f"is missing components: {', '.join(missing)} (give all or none)")
        clean = {}
        for component in score.components:
            points = value[component]
            allowed = score.allowed_points(component)
            if isinstance(points, bool) or not isinstance(points, int) or points not in allowed:
                raise ValueError(
                    f"{component} must be one of the points {', '.join(map(str, sorted(allowed)))}"
                )
            clean[component] = points
        return clean

    def describe(self, value: Any, data: dict | None = None, names: dict | None = None) -> str:
        if not isinstance(value, dict):
            return str(value)
        total = (data or {}).get(f"{self.name}_total", self.score.total(value))
        return f"{total} - {self.score.band(total)[1]}"

    def json_schema(self) -> dict:
        return {
            "type": "object",
            "additionalProperties": False,
            "required": list(self.score.components),
            "properties": {
                c: {"enum": list(self.score.allowed_points(c))} for c in self.score.components
            },
        }

    def csv_columns(self) -> tuple[str, ...]:
        return tuple(f"{self.name}.{c}" for c in self.score.components)

    def from_row(self, row: dict[str, str]) -> Any:
        parts = {c: row.get(f"{self.name}.{c}", "").strip() for c in self.score.components}
        given = {
            c: int(v) if v.isascii() and v.lstrip("-").isdigit() else v
            for c, v in parts.items()
            if v
        }
        return given or None

    def input_name(self, component: str) -> str:
        return f"{self.name}{SCORE_SEP}{component}"

    def form_inputs(self, kit: FormKit) -> list[tuple[str, Any]]:
        out = []
        for component, points_words in self.score.components.items():
            label = f"{self.score.label}: {component.replace('_', ' ')}"
            choices = [(str(points), f"{points} - {words}") for points, words in points_words]
            out.append((self.input_name(component), kit.optional_select(label, choices)))
        return out

    def from_form(self, form) -> Any:
        parts = {}
        for component in self.score.components:
            value = form[self.input_name(component)].data
            # Blank, or only spaces (which the input's Optional() lets through as blank).
            if value is not None and str(value).strip():
                parts[component] = int(value)
        return parts or None

    def to_form(self, form, value: Any) -> None:
        for component, points in value.items():
            form[self.input_name(component)].data = str(points)


# -- spinal levels and lesions ------------------------------------------------------------------

SPINAL_LEVELS = (
    *(f"C{n}" for n in range(1, 8)),
    *(f"T{n}" for n in range(1, 13)),
    *(f"L{n}" for n in range(1, 6)),
    *(f"S{n}" for n in range(1, 6)),
)
_LEVEL_INDEX = {level: i for i, level in enumerate(SPINAL_LEVELS)}
LEVELS_HOW = "give levels from C1 to S5 as a range (T11-L1), a list (T4, T8) or both (T4, T8-T10)"


def parse_levels(value: str) -> list[tuple[str, str]]:
    """The (first, last) level of each part of ``value`` ("T4, T8-T10"), head to tail;
    ValueError in words when a level is not a real one or the parts are out of order."""
    parts = []
    for raw in value.replace(";", ",").split(","):
        raw = raw.strip().upper()
        if not raw:
            continue
        ends = [end.strip() for end in raw.replace("\u2013", "-").split("-")]
        if len(ends) > 2 or not all(ends):
            raise ValueError(f"'{raw}' is not a level or a range of levels: {LEVELS_HOW}")
        for end in ends:
            if end not in _LEVEL_INDEX:
                raise ValueError(f"'{end}' is not a spinal level: {LEVELS_HOW}")
        first, last = ends[0], ends[-1]
        if _LEVEL_INDEX[last] < _LEVEL_INDEX[first]:
            raise ValueError(f"the range {first}-{last} runs upwards: write it {last}-{first}")
        if first == last and len(ends) == 2:
            raise ValueError(f"the range {first}-{last} is one level: write {first}")
        if parts and _LEVEL_INDEX[first] <= _LEVEL_INDEX[parts[-1][1]]:
            raise ValueError(
                f"{raw} comes after {parts[-1][1]} in the list: list the levels from head to "
                "tail, each once"
            )
        parts.append((first, last))
    if not parts:
        raise ValueError(f"must not be blank: {LEVELS_HOW}")
    return parts


def expand_levels(value: str) -> list[str]:
    """Every level ``value`` covers, head to tail ("T11-L1" -> T11, T12, L1)."""
    return [
        SPINAL_LEVELS[i]
        for first, last in parse_levels(value)
        for i in range(_LEVEL_INDEX[first], _LEVEL_INDEX[last] + 1)
    ]


@dataclass(frozen=True)
class SpinalLevels(Text):
    """Spinal levels C1 to S5: one, a range or a list, kept in one canonical spelling
    ("T4, T8-T10")."""

    max_length: int = 100
    kind: ClassVar[str] = "levels"

    def check(self, value: Any) -> str:
        text = super().check(value)
        return ", ".join(
            first if first == last else f"{first}-{last}" for first, last in parse_levels(text)
        )

    def json_schema(self) -> dict:
        return {
            **super().json_schema(),
            "description": "Spinal levels C1 to S5: a level (T8), a range (T11-L1) or a list "
            "head to tail (T4, T8-T10).",
        }


LESION_LABEL_LENGTH = 40


def lesion_key(label: str) -> str:
    """How a lesion's label is matched: case and spacing do not count ("left femur" is
    "Left  Femur")."""
    return " ".join(label.split()).casefold()


def check_lesion_label(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be the label of a lesion, as text")
    label = " ".join(value.split())
    if not label:
        raise ValueError("must not be blank")
    if len(label) > LESION_LABEL_LENGTH:
        raise ValueError(
            f"is too long: a lesion's label has at most {LESION_LABEL_LENGTH} characters"
        )
    if has_control_characters(label) or any(c in label for c in ",|"):
        raise ValueError("may not contain commas, | or control characters")
    return label


def _unknown_lesions(labels: Iterable[str], history, spinal_only: bool) -> list[str]:
    """Why some of ``labels`` do not name a lesion of this pathway (recorded by then)."""
    lesions = history.lesions()
    known = {lesion_key(lesion.ref): lesion for lesion in lesions}
    recorded = ", ".join(lesion.ref for lesion in lesions) or "none yet"
    out = []
    for label in labels:
        lesion = known.get(lesion_key(label))
        if lesion is None:
            out.append(
                f"names '{label}', which is not a lesion of this pathway (recorded by then: "
                f"{recorded}): record it first with 'Record lesion', or name a recorded one"
            )
        elif spinal_only and not lesion.spinal:
            out.append(
                f"names '{lesion.ref}', a lesion {lesion.where}: SINS and Bilsky "
                "describe a spinal lesion; name a spinal one, or score a long bone with Mirels"
            )
    return out


@dataclass(frozen=True)
class LesionRefs(Field):
    """Lesions of this pathway, named by their labels (see ``record_lesion``): validated
    against the lesions recorded by the time of the step. The form types them as one line,
    separated by commas; the CSV import by |."""

    max_length: int = 400  # the form's line
    kind: ClassVar[str] = "lesions"

    def check(self, value: Any) -> list[str]:
        if isinstance(value, str):
            value = [part for part in value.split(",") if part.strip()]
        if not isinstance(value, list | tuple):
            raise ValueError("must be a list of lesion labels")
        labels: list[str] = []
        for item in value:
            label = check_lesion_label(item)
            if lesion_key(label) in {lesion_key(seen) for seen in labels}:
                raise ValueError(f"names '{label}' twice")
            labels.append(label)
        if not labels:
            raise ValueError("must name at least one lesion")
        return labels

    def describe(self, value: Any, data: dict | None = None, names: dict | None = None) -> str:
        return ", ".join(value) if isinstance(value, list) else str(value)

    def json_schema(self) -> dict:
        return {
            "type": "array",
            "items": {"type": "string", "minLength": 1, "maxLength": LESION_LABEL_LENGTH},
            "minItems": 1,
            "uniqueItems": True,
            "description": "Labels of lesions recorded on this pathway (Record lesion).",
        }

    def parse_cell(self, raw: str) -> Any:
        return [part.strip() for part in raw.split("|") if part.strip()]

    def form_inputs(self, kit: FormKit) -> list[tuple[str, Any]]:
        return [(self.name, kit.text(self, multiline=False))]

    def form_to_value(self, data: Any) -> Any:
        return [part.strip() for part in str(data).split(",") if part.strip()] or None

    def to_form(self, form, value: Any) -> None:
        form[self.name].data = ", ".join(value)

    def history_errors(self, value: Any, data: dict, history) -> list[str]:
        return _unknown_lesions(value, history, spinal_only=False)


@dataclass(frozen=True)
class LesionRef(Text):
    """One lesion of this pathway, by its label; with ``spinal_only`` a spinal one (the
    lesion a SINS or Bilsky grade describes)."""

    max_length: int = LESION_LABEL_LENGTH
    spinal_only: bool = False
    kind: ClassVar[str] = "lesion"

    def check(self, value: Any) -> str:
        return check_lesion_label(value)

    def json_schema(self) -> dict:
        return {
            **super().json_schema(),
            "description": "The label of a lesion recorded on this pathway (Record lesion).",
        }

    def history_errors(self, value: Any, data: dict, history) -> list[str]:
        return _unknown_lesions([value], history, spinal_only=self.spinal_only)


@dataclass(frozen=True)
class LesionLabel(Text):
    """The label ``record_lesion`` gives a lesion: a new one, or one recorded before (an
    update, which keeps it on the spine or on its bone)."""

    max_length: int = LESION_LABEL_LENGTH
    kind: ClassVar[str] = "lesion_label"

    def check(self, value: Any) -> str:
        return check_lesion_label(value)

    def history_errors(self, value: Any, data: dict, history) -> list[str]:
        known = {lesion_key(lesion.ref): lesion for lesion in history.lesions()}
        lesion = known.get(lesion_key(value))
        if lesion is None or lesion.spinal == bool(data.get("levels")):
            return []
        now = "spinal levels" if data.get("levels") else "a bone"
        return [
            f"'{lesion.ref}' is a lesion {lesion.where}, and this gives it {now}: give "
            "this lesion another label, or keep it where it is"
        ]


def gather(fields: Iterable[Field], read) -> dict[str, Any]:
    """``{name: value}`` of the fields whose ``read(field)`` is not None (blank): how a
    form's inputs or a CSV row become a step's data."""
    data: dict[str, Any] = {}
    for f in fields:
        value = read(f)
        if value is not None:
            data[f.name] = value
    return data


@dataclass(frozen=True)
class TaskRef(Integer):
    """One open task of this pathway, named by its number: the step number (#) of the
    'Add task' that created it, as the timeline and the Tracking panel show it."""

    minimum: float | None = 1
    kind: ClassVar[str] = "task"

    def describe(self, value: Any, data: dict | None = None, names: dict | None = None) -> str:
        return f"the task added at step #{value}"

    def json_schema(self) -> dict:
        return {
            **super().json_schema(),
            "description": "The task's number: the step number of the 'Add task' that "
            "created it (``number`` in GET .../tasks).",
        }

    def history_errors(self, value: Any, data: dict, history) -> list[str]:
        task = next((t for t in history.tasks() if t.seq == value), None)
        if task is None:
            return [
                f"#{value} is not a task of this pathway: name one of its open tasks by the "
                "step number it was added at"
            ]
        if task.status != "open":
            return [f"#{value} ('{task.what}') is already {task.status_label.lower()}"]
        return []
