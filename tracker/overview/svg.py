"""Geometry for the overview's SVG charts; the templates draw it, escaping every text."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tracker.engine import steps as d
from tracker.engine.machine import graph

WIDTH = 900
LABEL_W = 150


@dataclass
class Axis:
    start: datetime
    end: datetime
    left: float = LABEL_W
    right: float = WIDTH - 20

    def x(self, at: datetime) -> float:
        span = max((self.end - self.start).total_seconds(), 3600)
        share = (at - self.start).total_seconds() / span
        return round(self.left + (self.right - self.left) * min(max(share, 0), 1), 1)

    def ticks(self) -> list[tuple[float, str]]:
        days = (self.end - self.start).days
        step = 1 if days <= 14 else 7 if days <= 120 else 30 if days <= 730 else 91
        fmt = "%d %b" if days <= 365 else "%b %Y"
        first = self.start.replace(hour=0, minute=0, second=0, microsecond=0)
        out, at = [], first
        while at <= self.end and len(out) < 40:
            if at >= self.start:
                out.append((self.x(at), at.strftime(fmt)))
            at += timedelta(days=step)
        return out


@dataclass
class Bar:
    x: float
    y: float
    w: float
    label: str
    title: str
    current: bool


@dataclass
class Gantt:
    height: float
    rows: list[tuple[float, str]]
    bars: list[Bar]
    ticks: list[tuple[float, str]]
    now_x: float | None
    episodes: list[tuple[float, str, str]] = field(default_factory=list)  # x, label, anchor


ROW_H = 22
GANTT_TOP = 24  # room above the bars for the episodes' labels
MIN_BAR = 8  # every phase visible, a day-0 emergency path too: its dates are in its title


def gantt(phases, axis: Axis, open_: bool, episodes=()) -> Gantt:
    """The phases, each at least MIN_BAR wide, and each episode's start (the referral, then
    each recurrence) marked and labelled."""
    states = [s for s in d.STATES if any(p.state == s for p in phases)]
    row_of = {s: i for i, s in enumerate(states)}
    bars = []
    for p in phases:
        x0, x1 = axis.x(p.start), axis.x(p.end)
        w = max(x1 - x0, MIN_BAR)
        x0 = min(x0, axis.right - w)
        label = d.STATE_LABELS[p.state]
        title = (
            f"{label}: {p.start:%d %b %Y} to "
            f"{'now' if p.current and open_ else f'{p.end:%d %b %Y}'} ({p.days:.1f} days)"
        )
        bars.append(Bar(x0, GANTT_TOP + row_of[p.state] * ROW_H, w, label, title, p.current))
    rows = [(GANTT_TOP + i * ROW_H + ROW_H / 2, d.STATE_LABELS[s]) for i, s in enumerate(states)]
    height = GANTT_TOP + len(states) * ROW_H + 30
    marks = []
    for at, words in episodes:
        x = axis.x(at)
        anchor = "end" if x > (axis.left + axis.right) / 2 else "start"
        marks.append((x, f"{words} · {at:%d %b %Y}", anchor))
    return Gantt(height, rows, bars, axis.ticks(), axis.x(axis.end) if open_ else None, marks)


@dataclass
class Panel:
    label: str
    top: float
    height: float
    points: list[tuple[float, float, str, str]]  # x, y, shown value, title
    ticks: list[tuple[float, str]]
    path: str


PANEL_H = 70
PANELS_TOP = 30  # room above the panels for the marks' labels


@dataclass(frozen=True)
class Mark:
    """An operation, a radiotherapy course or an MDT decision, across the trend panels."""

    x: float
    kind: str  # operation, radiotherapy, mdt
    short: str  # drawn: "Op", "RT", "MDT"
    title: str
    shown: bool = True  # its short label drawn (not when it would overlap the one before)
    row: int = 0


def marks(items, axis: Axis) -> list[Mark]:
    """``items``: (at, kind, short, title) by date; labels staggered on two rows, and left
    out (the line and its title stay) where they would still overlap."""
    out: list[Mark] = []
    last_x = [-1000.0, -1000.0]
    for at, kind, short, title in sorted(items, key=lambda item: item[0]):
        x = axis.x(at)
        row = 0 if x - last_x[0] >= 26 else 1 if x - last_x[1] >= 26 else None
        if row is not None:
            last_x[row] = x
        out.append(Mark(x, kind, short, title, row is not None, row or 0))
    return out


def trend_panels(series, axis: Axis) -> tuple[list[Panel], float]:
    panels, top = [], float(PANELS_TOP)
    for s in series:

        def y(value, s=s, top=top):
            share = (value - s.low) / (s.high - s.low)
            return round(top + PANEL_H - 8 - share * (PANEL_H - 16), 1)

        points = [
            (axis.x(at), y(v), shown, f"{s.label} {shown}: {source}, {at:%d %b %Y}")
            for at, v, shown, source in s.points
        ]
        path = " ".join(
            f"{'M' if i == 0 else 'L'}{px},{py}" for i, (px, py, _, _) in enumerate(points)
        )
        ticks = [(y(v), text) for v, text in s.ticks.items()]
        panels.append(Panel(s.label, top, PANEL_H, points, ticks, path))
        top += PANEL_H + 12
    return panels, top + 24


# -- the pathway diagram: drawn from the running machine -------------------------------

# Where each state sits (column, row); presentation only: nodes and edges come from MACHINE.
LAYOUT = {
    "referred": (0, 1),
    "imaging": (1, 0),
    "biopsy": (1, 2),
    "mdt_review": (2, 1),
    "surgery_scheduled": (3, 0),
    "post_op": (4, 0),
    "rehabilitation": (5, 0),
    "oncology_treatment": (4, 1),
    "palliative_care": (3, 3),
    "surveillance": (5, 2),
    "discharged": (6, 0),
    "deceased": (6, 2),
    "withdrawn": (6, 3),
}
BOX_W, BOX_H, COL_W, ROW_SP = 132, 34, 150, 74


@dataclass
class Node:
    state: str
    label: str
    x: float
    y: float
    current: bool
    visited: bool
    final: bool
    records: list[str]


@dataclass
class Edge:
    source: str
    dest: str
    triggers: list[str]
    path: str
    taken: bool
    faint: bool

    @property
    def title(self) -> str:
        names = ", ".join(d.label(t) for t in self.triggers)
        return f"{d.STATE_LABELS[self.source]} to {d.STATE_LABELS[self.dest]}: {names}"


@dataclass(frozen=True)
class Folded:
    """Transitions open from (almost) every state, folded into a note instead of drawn."""

    trigger: str
    dest: str
    sources: tuple[str, ...]

    @property
    def words(self) -> str:
        return f"{d.label(self.trigger)} (to {d.STATE_LABELS[self.dest]})"


@dataclass
class Diagram:
    width: float
    height: float
    nodes: list[Node]
    edges: list[Edge]
    loops: list[tuple[str, str]] = field(default_factory=list)  # (state, trigger) records
    folded: list[Folded] = field(default_factory=list)

    def machine_edges(self) -> set[tuple[str, str, str]]:
        """Every (source, dest, trigger) drawn or folded into the note, records as
        self-loops."""
        drawn = {(e.source, e.dest, t) for e in self.edges for t in e.triggers}
        folded = {(s, f.dest, f.trigger) for f in self.folded for s in f.sources}
        return drawn | folded | {(s, s, t) for s, t in self.loops}


def _centre(state: str) -> tuple[float, float]:
    col, row = LAYOUT[state]
    return 10 + col * COL_W + BOX_W / 2, 10 + row * ROW_SP + BOX_H / 2


def _edge_path(source: str, dest: str) -> str:
    (x0, y0), (x1, y1) = _centre(source), _centre(dest)
    # Leave and enter at the boxes' sides (or top and bottom when stacked).
    if abs(x1 - x0) >= BOX_W:
        sx = x0 + BOX_W / 2 if x1 > x0 else x0 - BOX_W / 2
        ex = x1 - BOX_W / 2 if x1 > x0 else x1 + BOX_W / 2
        sy, ey = y0, y1
    else:
        sx, ex = x0, x1
        sy = y0 + BOX_H / 2 if y1 > y0 else y0 - BOX_H / 2
        ey = y1 - BOX_H / 2 if y1 > y0 else y1 + BOX_H / 2
    bend = 14 if (source, dest) < (dest, source) else -14  # two directions do not overlap
    mx, my = (sx + ex) / 2 + bend * 0.3, (sy + ey) / 2 + bend
    return f"M{sx:.0f},{sy:.0f} Q{mx:.0f},{my:.0f} {ex:.0f},{ey:.0f}"


def diagram(current: str, path_taken: list[tuple[str, str]]) -> Diagram:
    states, edges = graph()
    from_anywhere = d.from_anywhere()
    visited = {current} | {s for pair in path_taken for s in pair}
    taken = set(path_taken)
    grouped: dict[tuple[str, str], list[str]] = {}
    loops = []
    for source, dest, trigger in edges:
        if source == dest:
            loops.append((source, trigger))
        else:
            grouped.setdefault((source, dest), []).append(trigger)
    nodes = []
    for state in states:
        x, y = _centre(state)
        nodes.append(
            Node(
                state,
                d.STATE_LABELS[state],
                x - BOX_W / 2,
                y - BOX_H / 2,
                state == current,
                state in visited,
                state in d.FINAL_STATES,
                [t for s, t in loops if s == state],
            )
        )
    # Transitions open to (almost) every state are folded into a note (unless this
    # patient took one), so the patient's own path and the main flow stay legible.
    drawn, folding = [], {}
    for (source, dest), triggers in grouped.items():
        spare = [t for t in triggers if t in from_anywhere and (source, dest) not in taken]
        for t in spare:
            folding.setdefault((t, dest), []).append(source)
        kept = [t for t in triggers if t not in spare]
        if kept:
            drawn.append(
                Edge(
                    source,
                    dest,
                    kept,
                    _edge_path(source, dest),
                    (source, dest) in taken,
                    False,
                )
            )
    folded = [Folded(t, dest, tuple(sources)) for (t, dest), sources in folding.items()]
    drawn.sort(key=lambda e: e.taken)  # the path taken on top
    width = 10 + 7 * COL_W
    height = 10 + 4 * ROW_SP
    return Diagram(width, height, nodes, drawn, loops, folded)
