"""Assemble the overview of one pathway for the page and the print view."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tracker.engine import tags
from tracker.engine.consistency import LesionNoms
from tracker.engine.history import History
from tracker.overview import lesion_map, summary, svg


@dataclass
class Overview:
    phases: list
    gantt: svg.Gantt
    milestones: list
    series: list
    panels: list
    panels_height: float
    operation_xs: list[tuple[float, str]]
    marks: list[svg.Mark]
    facts: summary.Facts
    lesions: list[summary.LesionTable]
    noms: list[LesionNoms]  # one per lesion scored; empty: nothing to read
    review: summary.Review
    diagram: svg.Diagram
    lesion_map: lesion_map.LesionMap


def build(pathway, history: History, now: datetime, map_at: int | None = None) -> Overview:
    """The overview; ``map_at``: the MDT decision (its seq) whose map to show, None today's."""
    end = pathway.closed_at or now
    axis = svg.Axis(pathway.referral_received_at, end)
    phases = summary.phases(history, now, pathway.closed_at)
    series = summary.trends(history)
    panels, height = svg.trend_panels(series, axis)
    recurrences = history.tagged(tags.NEW_EPISODE)
    episodes = (
        [(pathway.referral_received_at, "First episode")]
        + [(s.occurred_at, f"Recurrence {n}") for n, s in enumerate(recurrences, start=1)]
        if recurrences
        else []
    )
    path_taken = [(s.from_state, s.to_state) for s in history.counting() if s.changes_state]
    return Overview(
        phases=phases,
        gantt=svg.gantt(phases, axis, open_=pathway.closed_at is None, episodes=episodes),
        milestones=summary.milestones(history, pathway.referral_received_at),
        series=series,
        panels=panels,
        panels_height=height,
        operation_xs=[
            (axis.x(s.occurred_at), f"{s.occurred_at:%d %b %Y}")
            for s in summary.operations(history)
        ],
        marks=svg.marks(summary.journey_marks(history), axis),
        facts=summary.facts(history),
        lesions=summary.lesion_tables(history),
        noms=summary.noms(history),
        review=summary.review(history),
        diagram=svg.diagram(pathway.state, path_taken),
        lesion_map=lesion_map.build(history, map_at),
    )
