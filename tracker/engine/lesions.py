"""A pathway's lesions read from its story (PATHWAY.md, Lesions).

Every score describes one lesion: ``record_lesion`` charts a lesion by its spinal levels or
its bone, with its finding and its scores (SINS and Bilsky on the spine, Mirels on a long
bone); an MDT outcome names the lesion its SINS or Bilsky grade describes; imaging,
biopsies, operations and radiotherapy name the lesions they concern.

Scores recorded without a lesion (every SINS and Bilsky grade recorded before lesions were
charted) belong to the referral's tumour site: a lesion labelled with ``tumour_site``. This
is a reading of the log, not a change to it: the events are append-only and hash-chained,
so no migration rewrites them, and a correction of the tumour site moves the lesion with
it.

Pure functions over a ``History``: no web framework, no database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tracker.engine import tags
from tracker.engine.fields import SpinalLevels, lesion_key, parse_levels

if TYPE_CHECKING:  # history reads the lesions through this module
    from tracker.engine.history import History, Step

BONES = (
    "humerus",
    "radius",
    "ulna",
    "femur",
    "tibia",
    "fibula",
    "pelvis",
    "scapula",
    "rib",
    "sternum",
    "skull",
    "other",
)
UPPER_LIMB = frozenset({"humerus", "radius", "ulna"})
LOWER_LIMB = frozenset({"femur", "tibia", "fibula"})
LONG_BONES = UPPER_LIMB | LOWER_LIMB
RADIOTHERAPY = frozenset({"conventional_rt", "sbrt"})  # the treatment modalities with a field
# The values a reading keeps, as the steps' data names them.
READING_KEYS = (
    "finding",
    "sins_total",
    "sins_band",
    "bilsky_grade",
    "mirels_total",
    "mirels_band",
)


@dataclass(frozen=True)
class Reading:
    """One dated entry of a lesion's history: its finding and the scores given that day."""

    seq: int
    at: datetime
    trigger: str
    source: str  # the step's words ("Lesion charted", "MDT decision: surgery", ...)
    values: dict[str, Any]

    def get(self, key: str) -> Any:
        return self.values.get(key)


@dataclass(frozen=True)
class Link:
    """A step that names the lesion: an imaging study, a biopsy, an operation, a treatment."""

    seq: int
    at: datetime
    trigger: str
    source: str


@dataclass
class Lesion:
    ref: str
    levels: str | None = None  # canonical spinal levels ("T11-L1")
    bone: str | None = None
    side: str | None = None
    first_seq: int | None = None  # the record_lesion that charted it; None: the referral's
    readings: list[Reading] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)

    @property
    def from_referral(self) -> bool:
        """Named after the referral's tumour site (scores recorded without a lesion)."""
        return self.first_seq is None

    @property
    def spinal(self) -> bool:
        return self.bone is None

    @property
    def site(self) -> str:
        """Where it is, in words: "T11-L1", "left femur"."""
        if self.bone:
            return f"{self.side} {self.bone}" if self.side else self.bone
        return self.levels or self.ref

    @property
    def where(self) -> str:
        return f"of the {self.site}" if self.bone else f"at {self.site}"

    def latest(self, key: str) -> Reading | None:
        """The reading that gave the latest ``key`` (by when it happened), or None."""
        found = [r for r in self.readings if r.get(key) is not None]
        return max(found, key=lambda r: (r.at, r.seq), default=None)

    @property
    def finding(self) -> str | None:
        reading = self.latest("finding")
        return reading.get("finding") if reading else None


def radiotherapy(history: History) -> list[Step]:
    """The radiotherapy courses given (a treatment of a modality with a field), in the
    order they were recorded."""
    return [
        s for s in history.tagged(tags.ONCOLOGY_STARTED) if s.data.get("modality") in RADIOTHERAPY
    ]


def _referral_lesion(tumour_site: str) -> Lesion:
    """The lesion a score without one belongs to: the referral's tumour site, at its spinal
    levels when it names them, on its bone when it names one."""
    try:
        parse_levels(tumour_site)
    except ValueError:
        words = tumour_site.casefold().split()
        bone = next((b for b in BONES if b in words and b != "other"), None)
        side = next((s for s in ("left", "right") if s in words), None)
        return Lesion(tumour_site, bone=bone, side=side if bone else None)
    return Lesion(tumour_site, levels=SpinalLevels("levels", "Levels").check(tumour_site))


def lesion_label(data: dict[str, Any]) -> str:
    """The label a ``record_lesion`` gives its lesion: its ``lesion_ref``, or its site in
    words when none is given ("T11-L1", "left femur")."""
    if data.get("lesion_ref"):
        return data["lesion_ref"]
    if data.get("levels"):
        return data["levels"]
    return " ".join(w for w in (data.get("side"), data.get("bone")) if w)


def _scored_lesion(step: Step) -> str | None:
    """The lesion a step's SINS or Bilsky grade describes, as the step names it (None: the
    referral's tumour site)."""
    if step.data.get("lesion"):
        return step.data["lesion"]
    named = step.data.get("lesions") or []
    return named[0] if len(named) == 1 else None


def lesions(history: History) -> list[Lesion]:
    """The pathway's lesions in the order they were charted (the referral's tumour site
    first when scores belong to it), each with its dated readings and the steps naming it."""
    out: dict[str, Lesion] = {}
    charted = [s for s in history.counting() if tags.LESION in s.tags]
    for step in charted:  # identities first: a lesion may be charted after it is scored
        key = lesion_key(lesion_label(step.data))
        lesion = out.setdefault(key, Lesion(lesion_label(step.data), first_seq=step.seq))
    for step in sorted(charted, key=lambda s: (s.occurred_at, s.seq)):
        lesion = out[lesion_key(lesion_label(step.data))]
        lesion.levels, lesion.bone = step.data.get("levels"), step.data.get("bone")
        lesion.side = step.data.get("side")
    referral = history.referral_values().get("tumour_site")
    for step in history.in_time_order():
        if not step.counts or tags.OPENS in step.tags:
            continue
        for label in step.data.get("lesions") or []:
            if (lesion := out.get(lesion_key(label))) is not None:
                lesion.links.append(Link(step.seq, step.occurred_at, step.trigger, step.label))
        values = {k: step.data[k] for k in READING_KEYS if step.data.get(k) is not None}
        if not values:
            continue
        if tags.LESION in step.tags:
            label = lesion_label(step.data)
        else:
            values.pop("finding", None)  # a finding of a follow-up is not a lesion's
            values = {k: v for k, v in values.items() if not k.startswith("mirels")}
            if not values:
                continue
            label = _scored_lesion(step) or referral
            if label is None:
                continue
        key = lesion_key(label)
        if key not in out:
            if label != referral:
                continue  # names a lesion not charted (refused when recorded)
            out[key] = _referral_lesion(referral)
        out[key].readings.append(
            Reading(step.seq, step.occurred_at, step.trigger, step.label, values)
        )
    ordered = sorted(out.values(), key=lambda lesion: lesion.first_seq or 0)
    return ordered


# -- cross-field rules of the steps that chart or name lesions (steps.py lists them) ------


def lesion_site(clean, day):
    """A lesion is on the spine (levels) or on a bone, and is scored as such: SINS and
    Bilsky on the spine, Mirels on a long bone, with the Mirels site of that bone."""
    levels, bone = clean.get("levels"), clean.get("bone")
    if bool(levels) == bool(bone):
        which = "both" if levels else "neither"
        return {
            "levels": [
                f"Give the lesion's spinal levels or its bone, not {which}: a lesion is on the "
                "spine or on one bone (chart each lesion on its own)"
            ]
        }
    errors: dict[str, list[str]] = {}
    if levels:
        for name, words in (("side", "A side"), ("mirels", "A Mirels score")):
            if clean.get(name) is not None:
                errors[name] = [
                    f"{words} is for a lesion of a bone, and this one is at {levels}: leave it "
                    "blank, or give the bone instead of the levels"
                ]
        return errors
    for name, words in (("sins", "SINS"), ("bilsky_grade", "A Bilsky grade")):
        if clean.get(name) is not None:
            errors[name] = [
                f"{words} describes a spinal lesion, and this one is of the {bone}: leave it "
                "blank, or give the spinal levels instead of the bone"
            ]
    mirels = clean.get("mirels")
    if mirels and bone not in LONG_BONES:
        errors["mirels"] = [
            f"Mirels' score is for a long bone ({', '.join(sorted(LONG_BONES))}), and this "
            f"lesion is of the {bone}: leave it blank"
        ]
    elif mirels:
        site = mirels["site"]
        if bone in UPPER_LIMB and site != 1:
            errors["mirels.site"] = [
                f"The {bone} is in the upper limb: the Mirels site is 1 (upper limb)"
            ]
        elif bone in LOWER_LIMB and site == 1:
            errors["mirels.site"] = [
                f"The {bone} is in the lower limb: the Mirels site is 2 (lower limb), or 3 "
                "(peritrochanteric) for the femur"
            ]
        elif site == 3 and bone != "femur":
            errors["mirels.site"] = [
                f"Peritrochanteric (3) is a site of the femur, and this is the {bone}: "
                "choose 2 (lower limb)"
            ]
    return errors


def lesion_with_a_score(clean, day):
    if clean.get("lesion") and clean.get("sins") is None and clean.get("bilsky_grade") is None:
        return {
            "lesion": [
                "The lesion scored is named with a SINS or a Bilsky grade: give one, or leave "
                "the lesion blank"
            ]
        }
    return {}


def one_lesion_per_bilsky(clean, day):
    if clean.get("bilsky_grade") is not None and len(clean.get("lesions") or []) > 1:
        return {
            "bilsky_grade": [
                "A Bilsky grade describes one lesion, and this report names "
                f"{len(clean['lesions'])}: name the lesion graded only, or chart each "
                "lesion's grade with Record lesion"
            ]
        }
    return {}


def field_for_radiotherapy(clean, day):
    if clean.get("modality") in RADIOTHERAPY:
        return {}
    return {
        name: [
            "The field's levels and bone are for radiotherapy: leave them blank, or choose "
            "conventional radiotherapy or SBRT as the modality"
        ]
        for name in ("levels", "bone")
        if clean.get(name)
    }
