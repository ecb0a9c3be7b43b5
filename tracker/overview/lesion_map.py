"""The spine and skeleton map: where each lesion is, how unstable it is, what was done to it.

Geometry only, computed from the pathway's history; the template draws it (escaping every
text). The vertebral column C1 to S5 is drawn level by level, each level labelled; beside
it the operated levels and the instrumentation span (left) and the radiotherapy fields as
brackets with their dose (right); a simple skeleton carries the lesions of the other bones.
Each lesion is coloured by its latest SINS band (spine) or Mirels band (long bone), with a
pattern and a label so that colour is never the only cue, and outlined heavily when its
latest Bilsky grade is high (2 or 3). ``as_of`` draws the map as it stood at an MDT.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from tracker.engine import steps as d
from tracker.engine import tags
from tracker.engine.fields import SPINAL_LEVELS, expand_levels
from tracker.engine.history import History, Step
from tracker.engine.lesions import Lesion, radiotherapy
from tracker.engine.scores import MIRELS, SINS

WIDTH = 500
TOP = 30
LEVEL_H = 12.5
LABEL_X = 30  # level labels end here
ROD_X = 37  # the instrumentation rod
OPERATED_X = 45  # the operated levels
VERTEBRA_X, VERTEBRA_W = 56, 40
RT_X = 102  # the first radiotherapy bracket
TEXT_X = 166  # the lesions' labels
SKELETON_X = 432  # the skeleton's midline
LINE_H = 14
SPINE_BOTTOM = TOP + len(SPINAL_LEVELS) * LEVEL_H
HIGH_BILSKY = frozenset({"2", "3"})

# Band code -> (css key, short word shown in the mark); SINS and Mirels share three keys.
BAND_KEY = {
    "stable": "low",
    "potentially_unstable": "mid",
    "unstable": "high",
    "low_risk": "low",
    "borderline": "mid",
    "fixation_recommended": "high",
}
# What a Mirels band asks of the surgeon, in a word (the lesion's table gives it in full).
MIRELS_ADVICE = {
    "borderline": ", consider fixation",
    "fixation_recommended": ", fixation recommended",
}
LEGEND = (
    ("low", "SINS 0-6 stable · Mirels 4-7"),
    ("mid", "SINS 7-12 potentially unstable · Mirels 8"),
    ("high", "SINS 13-18 unstable · Mirels 9-12"),
    ("none", "Not scored yet"),
)


def level_y(level: str) -> float:
    """The top of a level's box."""
    return TOP + SPINAL_LEVELS.index(level) * LEVEL_H


# Where each bone's lesion is marked: (x offset from the midline for the patient's right,
# y); the patient's right is drawn on the viewer's left, as on a scan.
BONE_AT = {
    "skull": (0, 40),
    "scapula": (-28, 92),
    "sternum": (0, 104),
    "rib": (-22, 118),
    "humerus": (-50, 110),
    "radius": (-60, 176),
    "ulna": (-52, 176),
    "pelvis": (-18, 206),
    "femur": (-22, 246),  # the proximal third, where Mirels' peritrochanteric site is
    "tibia": (-24, 330),
    "fibula": (-32, 330),
    "other": (60, 372),
}
MIDLINE_BONES = frozenset({"skull", "sternum", "other"})


@dataclass
class Band:
    key: str  # low, mid, high, none
    words: str  # "SINS 14 unstable", "Mirels 9 fixation recommended", "not scored"


@dataclass
class SpinalMark:
    ref: str
    levels: str
    ys: list[float]  # the top of each level's box
    band: Band
    bilsky: str | None
    finding: str | None
    label: str
    label_y: float
    lead_y: float  # where the leader line leaves the column
    title: str
    more: str = ""  # the label's second line: the band in words, the finding, the episode


@dataclass
class BoneMark:
    ref: str
    key: str  # a short key drawn in the mark ("1") and beside its label
    x: float
    y: float
    band: Band
    label: str
    title: str
    where: str = ""
    treated: str = "none"
    operated: bool = False
    irradiated: str | None = None  # the dose, when a radiotherapy field covered the bone
    # The label drawn on two lines (one line would leave the chart): "Left femur: Mirels 9",
    # then "impending fracture, fixation recommended, progressing".
    head: str = ""
    more: str = ""
    key_y: float = 0.0  # below the first key, where this one's lines start


@dataclass
class Span:
    first: float  # the top of the first level
    last: float  # the bottom of the last level
    title: str


@dataclass
class Field:
    x: float
    first: float
    last: float
    dose: str
    title: str


@dataclass
class Snapshot:
    seq: int
    at: datetime
    words: str  # "MDT 12 Jun 2026: surgery"
    current: bool


@dataclass
class LesionMap:
    height: float
    as_of: datetime | None  # None: today's map
    levels: list[tuple[str, float]]  # label, top of the box
    spinal: list[SpinalMark]
    bones: list[BoneMark]
    instrumented: list[Span]
    operated: list[Span]
    fields: list[Field]
    unplaced: list[str] = field(default_factory=list)  # lesions with no level or bone
    snapshots: list[Snapshot] = field(default_factory=list)
    legend_y: float = 0.0
    keys_y: float = 0.0  # the other bones' lesions, by their key
    legend: tuple = LEGEND
    width: int = WIDTH
    text_x: int = TEXT_X
    skeleton_x: int = SKELETON_X

    @property
    def rows(self) -> list[tuple[str, str, str, str, str]]:
        """The map as a table: lesion, where, latest score, Bilsky, treated (operations
        and radiotherapy reaching it)."""
        out = []
        for m in self.spinal:
            reached = [s.title for s in self.operated + self.instrumented if _covers(s, m)]
            reached += [f.title for f in self.fields if _covers(f, m)]
            out.append(
                (m.ref, m.levels, m.band.words, m.bilsky or "", "; ".join(reached) or "none")
            )
        for b in self.bones:
            out.append((b.ref, b.where, b.band.words, "", b.treated))
        return out


def _covers(span, mark: SpinalMark) -> bool:
    return any(span.first <= y < span.last for y in mark.ys)


def _band(lesion: Lesion) -> Band:
    if lesion.spinal:
        reading = lesion.latest("sins_total")
        if reading is None:
            return Band("none", "SINS not scored")
        total = reading.get("sins_total")
        code, words = SINS.band(total)
        return Band(BAND_KEY[code], f"SINS {total} {words.lower()}")
    reading = lesion.latest("mirels_total")
    if reading is None:
        return Band("none", "not scored")
    total = reading.get("mirels_total")
    code, words = MIRELS.band(total)
    advice = MIRELS_ADVICE.get(code, "")
    return Band(BAND_KEY[code], f"Mirels {total} {words.lower()}{advice}")


def as_of(history: History, step: Step) -> History:
    """The story as it stood when ``step`` happened (today's corrections applied)."""
    return History(
        [s for s in history.counting() if (s.occurred_at, s.seq) <= (step.occurred_at, step.seq)]
    )


def snapshots(history: History, chosen: int | None) -> list[Snapshot]:
    out = []
    for step in history.mdt_outcomes():
        out.append(
            Snapshot(
                step.seq,
                step.occurred_at,
                f"MDT {step.occurred_at:%d %b %Y}: "
                f"{d.label(step.trigger).removeprefix('MDT decision: ')}",
                step.seq == chosen,
            )
        )
    return out


def _spread(wanted: list[float], gap: float, low: float) -> list[float]:
    """Labels at their wanted heights, pushed down so none overlaps the one above."""
    out, last = [], low - gap
    for y in wanted:
        y = max(y, last + gap)
        out.append(y)
        last = y
    return out


def _levels_span(levels: str) -> tuple[float, float]:
    covered = expand_levels(levels)
    return level_y(covered[0]), level_y(covered[-1]) + LEVEL_H


def build(history: History, at: int | None = None) -> LesionMap:
    """The map today, or as it stood at the MDT decision ``at`` (a step's seq)."""
    chosen = history.by_seq.get(at) if at is not None else None
    if chosen is not None and chosen.seq not in {s.seq for s in history.mdt_outcomes()}:
        chosen = None  # not an MDT decision standing: today's map
    story = as_of(history, chosen) if chosen is not None else history
    lesions = story.lesions()
    recurred = bool(story.tagged(tags.NEW_EPISODE))

    courses = radiotherapy(story)
    rt_seqs = {s.seq for s in courses}
    operated_seqs = {s.seq for s in story.tagged(tags.OPERATION)}
    spinal, bones, unplaced = [], [], []
    for lesion in lesions:
        band = _band(lesion)
        finding = lesion.finding
        if lesion.spinal and lesion.levels:
            covered = expand_levels(lesion.levels)
            ys = [level_y(level) for level in covered]
            bilsky = lesion.latest("bilsky_grade")
            grade = bilsky.get("bilsky_grade") if bilsky else None
            episode = ""
            if recurred and lesion.first_seq is not None:
                n = story.episode_of(story.by_seq[lesion.first_seq])
                episode = f"recurrence {n}" if n else ""
            head = lesion.ref if lesion.ref == lesion.levels else f"{lesion.ref} ({lesion.levels})"
            score = band.words.split(" ")[:2] if band.key != "none" else ["SINS", "not scored"]
            first = [head, " ".join(score)] + ([f"Bilsky {grade}"] if grade else [])
            second = [band.words.split(" ", 2)[2]] if band.key != "none" else []
            if finding and finding != "new":
                second.append(finding)
            if episode:
                second.append(episode)
            label, more = " · ".join(first), ", ".join(second)
            spinal.append(
                SpinalMark(
                    lesion.ref,
                    lesion.levels,
                    ys,
                    band,
                    grade,
                    finding,
                    label,
                    (ys[0] + ys[-1]) / 2 + LEVEL_H / 2 + 2,
                    (ys[0] + ys[-1]) / 2 + LEVEL_H / 2,
                    f"Lesion {label}" + (f": {more}" if more else ""),
                    more,
                )
            )
        elif lesion.bone:
            dx, y = BONE_AT[lesion.bone]
            if lesion.bone not in MIDLINE_BONES and lesion.side == "left":
                dx = -dx  # the patient's left, on the viewer's right
            key = str(len(bones) + 1)
            label = f"{lesion.site.capitalize()}: {band.words}"
            head, more = _two_lines(lesion.site.capitalize(), band, finding)
            if finding and finding != "new":
                label += f", {finding}"
            treated = [
                f"{link.source} {link.at:%d %b %Y}"
                for link in lesion.links
                if link.seq in operated_seqs or link.seq in rt_seqs
            ]
            fields_here = [
                story.by_seq[link.seq].data for link in lesion.links if link.seq in rt_seqs
            ]
            title = f"Lesion {key}, {label}. " + ("; ".join(treated) or "none")
            bones.append(
                BoneMark(
                    lesion.ref,
                    key,
                    SKELETON_X + dx,
                    y,
                    band,
                    label,
                    title,
                    where=lesion.site,
                    treated="; ".join(treated) or "none",
                    operated=any(link.seq in operated_seqs for link in lesion.links),
                    irradiated=_dose(fields_here[-1]) or "given" if fields_here else None,
                    head=head,
                    more=more,
                )
            )
        else:
            unplaced.append(lesion.ref)
    spinal.sort(key=lambda m: m.ys[0])  # head to tail, so the leader lines do not cross
    spread = _spread([m.label_y for m in spinal], 2 * LINE_H, TOP + 8)
    for mark, y in zip(spinal, spread, strict=True):
        mark.label_y = y

    operated, instrumented, fields = [], [], []
    for step in story.tagged(tags.OPERATION):
        day = f"{step.occurred_at:%d %b %Y}"
        if step.data.get("levels"):
            try:
                first, last = _levels_span(step.data["levels"])
            except ValueError:  # free text from before levels were checked
                pass
            else:
                operated.append(Span(first, last, f"Operated {step.data['levels']}, {day}"))
        if step.data.get("instrumented_levels"):
            first, last = _levels_span(step.data["instrumented_levels"])
            instrumented.append(
                Span(first, last, f"Instrumented {step.data['instrumented_levels']}, {day}")
            )
    for step in courses:
        if not step.data.get("levels"):
            continue
        first, last = _levels_span(step.data["levels"])
        overlapping = sum(1 for f in fields if f.first < last and first < f.last)
        dose = _dose(step.data)
        kind = "SBRT" if step.data["modality"] == "sbrt" else "Radiotherapy"
        fields.append(
            Field(
                RT_X + 8 * overlapping,
                first,
                last,
                dose,
                " ".join(w for w in (kind, step.data["levels"], dose) if w)
                + f", from {_day(step.data['start_date'])}",
            )
        )
    bottom = max(SPINE_BOTTOM, max((m.label_y + LINE_H for m in spinal), default=0)) + 14
    keys_h = 0.0
    for mark in bones:
        mark.key_y = keys_h
        keys_h += LINE_H * (2 if mark.more else 1)
    keys_h += 6 if bones else 0
    return LesionMap(
        height=bottom + keys_h + len(LEGEND) * LINE_H + 10,
        as_of=chosen.occurred_at if chosen is not None else None,
        levels=[(level, level_y(level)) for level in SPINAL_LEVELS],
        spinal=spinal,
        bones=bones,
        instrumented=instrumented,
        operated=operated,
        fields=fields,
        unplaced=unplaced,
        snapshots=snapshots(history, chosen.seq if chosen is not None else None),
        keys_y=bottom,
        legend_y=bottom + keys_h,
    )


def _two_lines(site: str, band: Band, finding: str | None) -> tuple[str, str]:
    """A long bone's label as drawn, on two lines: where and its score ("Left femur: Mirels
    9"), then what its band asks and its finding ("impending fracture, fixation
    recommended, progressing"); on one line it would leave the chart."""
    finding = finding if finding and finding != "new" else ""
    name, total, advice = [*band.words.split(" ", 2), "", ""][:3]
    if band.key == "none" or not total:
        return f"{site}: {band.words}", finding
    return f"{site}: {name} {total}", ", ".join(w for w in (advice, finding) if w)


def _day(iso_date: str) -> str:
    try:
        return f"{date.fromisoformat(iso_date):%d %b %Y}"
    except (TypeError, ValueError):
        return str(iso_date)


def _dose(data: dict) -> str:
    dose, fractions = data.get("dose_gy"), data.get("fractions")
    if dose is None:
        return ""
    gy = f"{dose:g} Gy" if isinstance(dose, int | float) else f"{dose} Gy"
    return f"{gy}/{fractions}" if fractions else gy
