"""Chart geometry for inline SVG, computed on the server: pure numbers, no markup.

Templates turn these into <rect>/<polyline> elements (escaped like everything else); colours
come from CSS classes named after verdicts, so the strict CSP needs no inline style.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.core.durations import format_duration
from monitor.core.models import Verdict
from monitor.web.model import RANK, Tally, TimePoint

# Stacking order of a placement bar: good on the left, failures on the right.
ORDER = (
    Verdict.INBOX,
    Verdict.LATE,
    Verdict.SPAM,
    Verdict.MISSING,
    Verdict.CHECK_FAILED,
    Verdict.SEND_FAILED,
)
HOUR = timedelta(hours=1)
LEFT = 64.0  # room for the y labels ("500ms"), also at the larger font a phone gets


@dataclass(frozen=True, slots=True)
class Segment:
    verdict: str
    x: float  # percent of the bar
    width: float
    n: int


def stacked(tally: Tally) -> list[Segment]:
    """One 100-wide bar: a segment per verdict present, in ORDER."""
    total = tally.total
    segments, x = [], 0.0
    for verdict in ORDER:
        n = tally.counts.get(verdict, 0)
        if n and total:
            width = 100.0 * n / total
            segments.append(Segment(verdict.value, round(x, 3), round(width, 3), n))
            x += width
    return segments


@dataclass(frozen=True, slots=True)
class Cell:
    index: int  # hours from the start of the strip
    verdict: str  # the worst verdict of the hour, "none" without canaries
    title: str


def worst(tally: Tally | None) -> Verdict | None:
    if tally is None or not tally.total:
        return None
    return max((v for v, n in tally.counts.items() if n), key=RANK.__getitem__)


def strip(
    hours: Mapping[datetime, Tally], start: datetime, count: int, now: datetime
) -> list[Cell]:
    """`count` hourly cells from `start` on, each named after its worst verdict; hours after
    `now` are "future"."""
    cells = []
    for index in range(count):
        at = start + index * HOUR
        tally = hours.get(at)
        verdict = worst(tally)
        if at > now:
            cells.append(Cell(index, "future", f"{at:%a %d %b %H:00} UTC"))
            continue
        if tally is None or verdict is None:
            title = f"{at:%a %d %b %H:00} UTC: no canary"
        else:
            parts = ", ".join(f"{n} {v.value}" for v, n in sorted(tally.counts.items()) if n)
            title = f"{at:%a %d %b %H:00} UTC: {parts}"
        cells.append(Cell(index, verdict.value if verdict else "none", title))
    return cells


@dataclass(frozen=True, slots=True)
class LineChart:
    width: int
    height: int
    left: float  # where the plot starts; the y labels end just before
    p50: list[tuple[float, float]]  # (x, y) per hour with a value: a polyline and dots
    p95: list[tuple[float, float]]
    ticks: list[tuple[float, str]]  # (y, label) on the left
    marks: list[tuple[float, str]]  # (x, label) along the bottom
    empty: bool


def line_chart(
    points: list[TimePoint], start: datetime, end: datetime, *, width: int = 520, height: int = 170
) -> LineChart:
    """p50 and p95 against time; y from 0 to the largest p95 (at least one second)."""
    left, bottom = LEFT, 18.0
    span = (end - start).total_seconds() or 1.0
    top = max([p.p95 or 0.0 for p in points] + [1.0])
    plot_w, plot_h = width - left - 4, height - bottom - 6

    def xy(at: datetime, value: float) -> tuple[float, float]:
        x = left + plot_w * (at - start).total_seconds() / span
        y = 6 + plot_h * (1 - value / top)
        return round(x, 1), round(y, 1)

    # Each hour is plotted at its middle.
    half = HOUR / 2
    p50 = [xy(p.at + half, p.p50) for p in points if p.p50 is not None]
    p95 = [xy(p.at + half, p.p95) for p in points if p.p95 is not None]
    ticks = [(6 + plot_h * (1 - f), format_duration(top * f)) for f in (0.0, 0.5, 1.0)]
    days = max(1, round(span / 86400))
    step = timedelta(days=1) if days > 1 else timedelta(hours=6)
    first = start.replace(minute=0, second=0, microsecond=0)
    if days > 1:
        first = first.replace(hour=0) + timedelta(days=1)
    marks, at = [], first
    while at < end:
        x = left + plot_w * (at - start).total_seconds() / span
        marks.append((round(x, 1), f"{at:%a}" if days > 1 else f"{at:%H:00}"))
        at += step
    return LineChart(width, height, left, p50, p95, ticks, marks, not points)
