"""Scores that agree with each other, and the NOMS reading (PATHWAY.md, "Scores agree with
each other" and "NOMS").

- Cross-field rules (``Rule``: clean data and the local day -> {field: [messages]}) refuse
  contradictory scores on one record, naming the field and what would be accepted.
- ``TOKUHASHI_METASTATIC_ONLY`` is a guard: whether a Tokuhashi score belongs on a record
  depends on the pathway's diagnosis category, which only the history knows. As a guard
  it is checked when the step is recorded and again, by ``timing``, on every correction
  (of the MDT record or of the referral's diagnosis category).
- ``mdt_form_defaults`` and ``noms_for`` read a ``History``: what the MDT form starts with,
  and the NOMS reading in words (decision support, never a decision).

Pure functions: no web framework, no database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from tracker.engine import tags
from tracker.engine.dictionary import MDT_OUTCOME_FIELDS, RADIOSENSITIVITY
from tracker.engine.fields import lesion_key
from tracker.engine.guards import Guard
from tracker.engine.scores import SINS, sins_needs_surgical_opinion

if TYPE_CHECKING:  # history imports the registry, which imports this module
    from tracker.engine.history import History

METASTATIC = "metastatic_spinal"

# -- Tokuhashi components read from other scores ---------------------------------------------

# The words of each general_condition and palsy points, for the refusals.
_CONDITION = {0: "10-40 %", 1: "50-70 %", 2: "80-100 %"}
_PALSY = {0: "Frankel A-B", 1: "Frankel C-D", 2: "Frankel E"}
# Tokuhashi primary_site points of the referral's primary_cancer_site, where it maps.
PRIMARY_SITE_POINTS = {
    "breast": 5,
    "prostate": 5,
    "thyroid": 5,
    "kidney": 3,
    "lung": 0,
    "unknown": 1,  # unidentified
}


def general_condition_for(karnofsky: int) -> int:
    """Tokuhashi general condition of a Karnofsky score: 10-40 -> 0, 50-70 -> 1, 80-100 -> 2
    (Karnofsky 0 reads as poor)."""
    return 0 if karnofsky <= 40 else 1 if karnofsky <= 70 else 2


def palsy_for(asia_grade: str) -> int:
    """Tokuhashi palsy of an ASIA grade (Frankel and ASIA share letters): A-B -> 0, C-D -> 1,
    E -> 2."""
    return 0 if asia_grade in ("A", "B") else 1 if asia_grade in ("C", "D") else 2


def _tokuhashi_general_condition_matches_karnofsky(clean, day: date | None):
    tokuhashi, karnofsky = clean.get("tokuhashi"), clean.get("karnofsky")
    if not tokuhashi or karnofsky is None:
        return {}
    given, wanted = tokuhashi["general_condition"], general_condition_for(karnofsky)
    if given == wanted:
        return {}
    return {
        "tokuhashi.general_condition": [
            f"Tokuhashi general condition {given} (Karnofsky {_CONDITION[given]}) does not "
            f"match Karnofsky {karnofsky}: choose {wanted} ({_CONDITION[wanted]}) or correct "
            "the Karnofsky score"
        ]
    }


def _tokuhashi_palsy_matches_asia(clean, day: date | None):
    tokuhashi, asia = clean.get("tokuhashi"), clean.get("asia_grade")
    if not tokuhashi or asia is None:
        return {}
    given, wanted = tokuhashi["palsy"], palsy_for(asia)
    if given == wanted:
        return {}
    return {
        "tokuhashi.palsy": [
            f"Tokuhashi palsy {given} ({_PALSY[given]}) does not match ASIA grade {asia}: "
            f"choose {wanted} ({_PALSY[wanted]}) or correct the ASIA grade"
        ]
    }


def _bilsky_on_mri_only(clean, day: date | None):
    modality = clean.get("modality")
    if clean.get("bilsky_grade") is None or modality == "mri":
        return {}
    study = {"ct": "a CT", "xray": "an X-ray", "bone_scan": "a bone scan", "pet_ct": "a PET-CT"}
    return {
        "bilsky_grade": [
            f"A Bilsky grade is read on MRI only, and this study is {study.get(modality, modality)}"
            ": leave the Bilsky grade blank, or choose MRI as the modality if the study was an MRI"
        ]
    }


# The rules of the MDT record and of an imaging report (steps.py lists them on the steps).
MDT_RULES = (_tokuhashi_general_condition_matches_karnofsky, _tokuhashi_palsy_matches_asia)
IMAGING_RULES = (_bilsky_on_mri_only,)


def _tokuhashi_only_for_metastatic_disease(*, history, data=None, probe=False, **_) -> bool:
    """A Tokuhashi score on this record only when the pathway's diagnosis category (as
    corrected) is metastatic spinal disease."""
    if probe or not data or not data.get("tokuhashi"):
        return True
    category = history.referral_values().get("diagnosis_category")
    return category in (None, METASTATIC)


TOKUHASHI_METASTATIC_ONLY = Guard(
    "tokuhashi_metastatic_only",
    _tokuhashi_only_for_metastatic_disease,
    "the revised Tokuhashi score is for metastatic spinal disease only, and this pathway's "
    "diagnosis category is not metastatic spinal: leave the Tokuhashi components blank, or "
    "correct the referral's diagnosis category first",
)


# -- the MDT form's starting values -------------------------------------------------------------


def latest_mri_bilsky(history: History) -> str | None:
    """The Bilsky grade of the latest MRI report that gives one."""
    latest = _latest_mri_graded(history)
    return latest.data["bilsky_grade"] if latest else None


def _latest_mri_graded(history: History):
    graded = [
        s
        for s in history.tagged(tags.IMAGING_REPORTED)
        if s.data.get("modality") == "mri" and s.data.get("bilsky_grade")
    ]
    return max(graded, key=lambda s: (s.occurred_at, s.seq), default=None)


def _one_lesion_offered(history: History, out: dict[str, Any]) -> None:
    """With two or more spinal lesions, the SINS and Bilsky offered on the MDT form are
    each one lesion's: offered, with that lesion named on the form, only when they are of
    the same lesion; otherwise neither is offered (recorded unchanged, they would be put
    on the lesion the form names, or on the tumour site)."""
    spinal = [lesion for lesion in history.lesions() if lesion.spinal]
    if len(spinal) < 2 or not ({"sins", "bilsky_grade"} & out.keys()):
        return
    owners: set[int | None] = set()  # indexes in ``spinal``
    if "sins" in out:
        scored = [(r, i) for i, lesion in enumerate(spinal) if (r := lesion.latest("sins_total"))]
        latest = max(scored, key=lambda p: (p[0].at, p[0].seq), default=None)
        owners.add(latest[1] if latest else None)
    if "bilsky_grade" in out:
        step = _latest_mri_graded(history)
        seq = step.seq if step else None
        owners.add(
            next((i for i, x in enumerate(spinal) if any(r.seq == seq for r in x.readings)), None)
        )
    if len(owners) == 1 and None not in owners:
        lesion = spinal[owners.pop()]
        out["lesion"] = "" if lesion.from_referral else lesion.ref
        return
    out.pop("sins", None)
    out.pop("bilsky_grade", None)


# The MDT form's assessments offered again from the latest step that recorded them.
OFFERED_AGAIN = ("sins", "ecog", "karnofsky", "asia_grade", "enneking_stage", "radiosensitivity")


def mdt_form_defaults(history: History) -> dict[str, Any]:
    """What a new MDT outcome form starts with: on a metastatic spinal pathway, the Tokuhashi
    general condition from the latest Karnofsky, palsy from the latest ASIA grade and primary
    site from the referral's primary cancer where it maps; the latest MRI's Bilsky; the
    meeting date of the MDT listing since the last outcome; and the latest value recorded
    of each other assessment on the form (SINS, ECOG, Karnofsky, ASIA, Enneking stage,
    radiosensitivity), so nothing recorded minutes before is asked for again."""
    out: dict[str, Any] = {}
    for key in OFFERED_AGAIN:
        if (value := history.latest_value(key)) is not None:
            out[key] = value
    outcomes = history.tagged(tags.MDT_OUTCOME)
    since = outcomes[-1].seq if outcomes else 0
    if listings := history.tagged(tags.MDT_LISTING, since=since):
        out["meeting_date"] = listings[-1].data.get("meeting_date")
        if listings[-1].data.get("meeting_id") is not None:
            out["meeting_id"] = listings[-1].data["meeting_id"]
    referral = history.referral_values()
    if referral.get("diagnosis_category") == METASTATIC:
        tokuhashi = {}
        if (karnofsky := history.latest_value("karnofsky")) is not None:
            tokuhashi["general_condition"] = general_condition_for(karnofsky)
        if (asia := history.latest_value("asia_grade")) is not None:
            tokuhashi["palsy"] = palsy_for(asia)
        if (site := PRIMARY_SITE_POINTS.get(referral.get("primary_cancer_site"))) is not None:
            tokuhashi["primary_site"] = site
        if tokuhashi:
            out["tokuhashi"] = tokuhashi
    if (bilsky := latest_mri_bilsky(history)) is not None:
        out["bilsky_grade"] = bilsky
    _one_lesion_offered(history, out)
    return out


# -- NOMS ---------------------------------------------------------------------------------------

NOMS_KEYS = ("bilsky_grade", "asia_grade", "radiosensitivity", "sins_total", "ecog", "karnofsky")
HIGH_GRADE = frozenset({"2", "3"})
LOW_GRADE = frozenset({"0", "1a", "1b", "1c"})
SINS_UNSTABLE_FROM = 13
BILSKY_FLAG = "Bilsky 2-3, high-grade compression: a spinal surgical opinion is needed."
SINS_FLAG = "SINS 7 or more: a spinal surgical opinion is needed."
_RADIOSENSITIVITY = dict(RADIOSENSITIVITY)
_ONCOLOGIC = {
    "radiosensitive": "Radiosensitive histology",
    "moderately_sensitive": "Moderately radiosensitive histology",
    "radioresistant": "Radioresistant histology",
    "unknown": "Radiosensitivity unknown",
}


def bilsky_needs_surgical_opinion(grade: str | None) -> bool:
    return grade in HIGH_GRADE


@dataclass(frozen=True)
class Noms:
    """The four NOMS considerations in words, what they read as together, and the flags."""

    applies: bool  # metastatic spinal disease: NOMS is its framework
    neurologic: str
    oncologic: str
    mechanical: str
    systemic: str
    readings: tuple[str, ...]  # "... to be considered": decision support, never a decision
    flags: tuple[str, ...]  # a spinal surgical opinion is needed (Bilsky 2-3, SINS 7+)


def _neurologic(bilsky, asia) -> str:
    if bilsky in HIGH_GRADE:
        words = f"Bilsky {bilsky}, high grade"
    elif bilsky in LOW_GRADE:
        words = f"Bilsky {bilsky}, low grade"
    else:
        words = "Bilsky not graded"
    return f"{words}; ASIA {asia}" if asia else f"{words}; ASIA not recorded"


def _mechanical(sins_total) -> str:
    if sins_total is None:
        return "SINS not scored"
    return f"SINS {sins_total}, {SINS.band(sins_total)[1].lower()}"


def _systemic(ecog, karnofsky) -> str:
    pairs = (("ECOG", ecog), ("Karnofsky", karnofsky))
    given = [f"{label} {value}" for label, value in pairs if value is not None]
    return "; ".join(given) if given else "ECOG and Karnofsky not recorded"


def _readings(bilsky, radiosensitivity, sins_total) -> list[str]:
    high, low = bilsky in HIGH_GRADE, bilsky in LOW_GRADE
    out = []
    if high and radiosensitivity == "radioresistant":
        out.append(
            "High-grade compression with radioresistant histology: separation surgery then "
            "stereotactic radiotherapy to be considered."
        )
    elif low and radiosensitivity == "radiosensitive":
        out.append(
            "Low-grade compression, radiosensitive histology: radiotherapy alone to be considered."
        )
    elif low:
        out.append("Low-grade compression: radiotherapy alone to be considered.")
    elif radiosensitivity == "radiosensitive":
        out.append("Radiosensitive histology: radiotherapy alone to be considered.")
    elif high:
        known = _RADIOSENSITIVITY.get(radiosensitivity, "not recorded").lower()
        out.append(
            f"High-grade compression, radiosensitivity {known}: no reading until the "
            "histology's radiosensitivity is known."
        )
    else:
        out.append("No reading until a Bilsky grade or a radiosensitive histology is recorded.")
    if sins_total is not None and sins_total >= SINS_UNSTABLE_FROM:
        out.append("SINS 13 or more, unstable: stabilisation to be considered.")
    return out


def noms(values: dict[str, Any], diagnosis_category: str | None = None) -> Noms:
    """The NOMS reading of ``values`` (the keys of ``NOMS_KEYS``; missing ones not known).
    The readings are for metastatic spinal disease only; the flags hold for every spine."""
    bilsky, sins_total = values.get("bilsky_grade"), values.get("sins_total")
    radiosensitivity = values.get("radiosensitivity")
    applies = diagnosis_category in (None, METASTATIC)
    flags = []
    if bilsky_needs_surgical_opinion(bilsky):
        flags.append(BILSKY_FLAG)
    if sins_total is not None and sins_needs_surgical_opinion(sins_total):
        flags.append(SINS_FLAG)
    return Noms(
        applies=applies,
        neurologic=_neurologic(bilsky, values.get("asia_grade")),
        oncologic=_ONCOLOGIC.get(radiosensitivity, "Radiosensitivity not recorded"),
        mechanical=_mechanical(sins_total),
        systemic=_systemic(values.get("ecog"), values.get("karnofsky")),
        readings=tuple(_readings(bilsky, radiosensitivity, sins_total)) if applies else (),
        flags=tuple(flags),
    )


def latest_values(history: History) -> dict[str, Any]:
    """The latest recorded value of each NOMS input, from any step that carries it."""
    values = {key: history.latest_value(key) for key in NOMS_KEYS}
    return {key: value for key, value in values.items() if value is not None}


def _valid_entries(entered: dict[str, Any]) -> dict[str, Any]:
    """The NOMS inputs among a form's values as typed (an MDT record not yet recorded, its
    SINS as components), those that are valid; the rest are refused beside their fields."""
    fields = {f.name: f for f in MDT_OUTCOME_FIELDS}
    out = {}
    for key in (*NOMS_KEYS, "sins"):
        if key not in fields or entered.get(key) is None:
            continue
        try:
            value = fields[key].check(entered[key])
        except ValueError:
            continue
        if key == "sins":
            out["sins_total"] = SINS.total(value)
        else:
            out[key] = value
    return out


def noms_for(history: History, entered: dict[str, Any] | None = None) -> Noms:
    """The NOMS reading of the latest recorded values, with the valid values ``entered`` on
    a form not yet recorded (field names as the MDT record's) taking their place."""
    values = {**latest_values(history), **_valid_entries(entered or {})}
    return noms(values, history.referral_values().get("diagnosis_category"))


# -- NOMS per lesion ------------------------------------------------------------------------------

LESION_KEYS = ("sins_total", "bilsky_grade")  # a lesion's own; the rest are the patient's


@dataclass(frozen=True)
class LesionNoms:
    """The NOMS reading of one lesion: its own latest SINS and Bilsky, the patient's ASIA,
    radiosensitivity, ECOG and Karnofsky. ``lesion`` names it ("T7-T9") when the pathway
    has two or more lesions scored; None when it has one (or none): read as the pathway's."""

    lesion: str | None
    noms: Noms


def noms_by_lesion(
    history: History, entered: dict[str, Any] | None = None, *, form_scores: bool = True
) -> list[LesionNoms]:
    """The NOMS reading of each spinal lesion scored (SINS or Bilsky), in the order they were
    charted: a spine surgeon reads NOMS per lesion, so an unstable T7-T9 is never read from a
    stable L3 scored later. With one lesion scored (or none), the one reading of
    :func:`noms_for`. ``entered`` (a form not yet recorded) scores the lesion it names,
    or, with none named, the referral's tumour site, as recording it would (with
    ``form_scores`` False, the SINS and Bilsky entered are a prefill of recorded ones and
    only the patient's values entered count, when two or more lesions are scored)."""
    entered = entered or {}
    typed = _valid_entries(entered)
    category = history.referral_values().get("diagnosis_category")
    per_lesion: dict[str, tuple[str, dict[str, Any]]] = {}
    for lesion in history.lesions():
        if not lesion.spinal:
            continue
        values = {
            key: reading.get(key)
            for key in LESION_KEYS
            if (reading := lesion.latest(key)) is not None
        }
        if values:
            per_lesion[lesion_key(lesion.ref)] = (lesion.site, values)
    typed_scores = {k: v for k, v in typed.items() if k in LESION_KEYS}
    if typed_scores and form_scores:
        label = entered.get("lesion") or history.referral_values().get("tumour_site") or ""
        site, values = per_lesion.get(lesion_key(label), (label, {}))
        per_lesion[lesion_key(label)] = (site, {**values, **typed_scores})
    if len(per_lesion) <= 1:
        return [LesionNoms(None, noms_for(history, entered))]
    patient = {k: v for k, v in latest_values(history).items() if k not in LESION_KEYS}
    patient.update({k: v for k, v in typed.items() if k not in LESION_KEYS})
    return [
        LesionNoms(site, noms({**patient, **values}, category))
        for site, values in per_lesion.values()
    ]
