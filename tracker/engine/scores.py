"""SINS, revised Tokuhashi and Mirels: totals and bands computed from component points."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Score:
    name: str
    label: str
    # component -> ((points, words), ...), as in the published table
    components: dict[str, tuple[tuple[int, str], ...]]
    # (lowest total, highest total, band code, band words)
    bands: tuple[tuple[int, int, str, str], ...]

    def allowed_points(self, component: str) -> tuple[int, ...]:
        return tuple(points for points, _ in self.components[component])

    def total(self, values: dict[str, int]) -> int:
        return sum(values[c] for c in self.components)

    def band(self, total: int) -> tuple[str, str]:
        for low, high, code, words in self.bands:
            if low <= total <= high:
                return code, words
        raise ValueError(f"{self.label} total {total} is outside its range")

    @property
    def maximum(self) -> int:
        return sum(max(self.allowed_points(c)) for c in self.components)


SINS = Score(
    name="sins",
    label="SINS",
    components={
        "location": (
            (3, "Junctional (occiput-C2, C7-T2, T11-L1, L5-S1)"),
            (2, "Mobile spine (C3-C6, L2-L4)"),
            (1, "Semi-rigid (T3-T10)"),
            (0, "Rigid (S2-S5)"),
        ),
        "pain": (
            (3, "Mechanical pain"),
            (1, "Occasional, non-mechanical pain"),
            (0, "Pain-free lesion"),
        ),
        "bone_lesion": ((2, "Lytic"), (1, "Mixed lytic/blastic"), (0, "Blastic")),
        "alignment": (
            (4, "Subluxation or translation"),
            (2, "De novo deformity (kyphosis/scoliosis)"),
            (0, "Normal alignment"),
        ),
        "collapse": (
            (3, "Over 50 % collapse"),
            (2, "Under 50 % collapse"),
            (1, "No collapse, over 50 % of the body involved"),
            (0, "None of the above"),
        ),
        "posterolateral": (
            (3, "Bilateral"),
            (1, "Unilateral"),
            (0, "None"),
        ),
    },
    bands=(
        (0, 6, "stable", "Stable"),
        (7, 12, "potentially_unstable", "Potentially unstable"),
        (13, 18, "unstable", "Unstable"),
    ),
)
SINS_SURGICAL_OPINION_FROM = 7

TOKUHASHI = Score(
    name="tokuhashi",
    label="Revised Tokuhashi",
    components={
        "general_condition": (
            (0, "Poor (Karnofsky 10-40 %)"),
            (1, "Moderate (Karnofsky 50-70 %)"),
            (2, "Good (Karnofsky 80-100 %)"),
        ),
        "extraspinal_bone_metastases": ((0, "3 or more"), (1, "1-2"), (2, "None")),
        "vertebral_metastases": ((0, "3 or more"), (1, "2"), (2, "1")),
        "visceral_metastases": ((0, "Unremovable"), (1, "Removable"), (2, "None")),
        "primary_site": (
            (0, "Lung, osteosarcoma, stomach, bladder, oesophagus, pancreas"),
            (1, "Liver, gallbladder, unidentified"),
            (2, "Other"),
            (3, "Kidney, uterus"),
            (4, "Rectum"),
            (5, "Thyroid, breast, prostate, carcinoid"),
        ),
        "palsy": (
            (0, "Complete (Frankel A-B)"),
            (1, "Incomplete (Frankel C-D)"),
            (2, "None (Frankel E)"),
        ),
    },
    bands=(
        (0, 8, "under_6_months", "Expected survival under 6 months"),
        (9, 11, "6_months_or_more", "Expected survival 6 months or more"),
        (12, 15, "1_year_or_more", "Expected survival a year or more"),
    ),
)

# Mirels' score of impending pathological fracture of a long bone (PATHWAY.md, Lesions):
# four components of 1-3 points each, total 4-12.
MIRELS = Score(
    name="mirels",
    label="Mirels",
    components={
        "site": ((1, "Upper limb"), (2, "Lower limb"), (3, "Peritrochanteric")),
        "pain": ((1, "Mild"), (2, "Moderate"), (3, "Functional")),
        "lesion": ((1, "Blastic"), (2, "Mixed"), (3, "Lytic")),
        "size": (
            (1, "Under a third of the cortex"),
            (2, "A third to two thirds of the cortex"),
            (3, "Over two thirds of the cortex"),
        ),
    },
    bands=(
        (4, 7, "low_risk", "Low risk of fracture"),
        (8, 8, "borderline", "Borderline"),
        (9, 12, "fixation_recommended", "Impending fracture"),
    ),
)
MIRELS_FIXATION_FROM = 9
MIRELS_BORDERLINE = 8
# What each Mirels band reads as (decision support in words, never a decision).
MIRELS_RECOMMENDATION = {
    "low_risk": "Under 8: radiotherapy and observation.",
    "borderline": "8, borderline: consider prophylactic fixation.",
    "fixation_recommended": "9 or more: prophylactic fixation recommended.",
}

SCORES = {SINS.name: SINS, TOKUHASHI.name: TOKUHASHI, MIRELS.name: MIRELS}


def sins_needs_surgical_opinion(total: int) -> bool:
    return total >= SINS_SURGICAL_OPINION_FROM


def mirels_recommendation(total: int) -> str:
    """The recommendation of a Mirels total: fixation at 9 or more, consider it at 8,
    radiotherapy and observation below."""
    return MIRELS_RECOMMENDATION[MIRELS.band(total)[0]]
