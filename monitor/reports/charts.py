"""The report's charts as PNG images: placement per provider (worst first), placement and
delivery time per day, and the trend of the last periods (inbox and spam rate, p95).

Drawn at 2× (SCALE) for high-density screens: the HTML shows them at half their pixel size.
Every axis says its unit; legends sit outside the plotting area, so they never hide data.
matplotlib's object API only: a `Figure` of our own, never pyplot (whose global state is not
safe in a long-lived process) and no GUI backend. Drawing takes a few hundred milliseconds,
so it runs in a worker thread; a lock keeps it to one figure at a time.
"""

from __future__ import annotations

import asyncio
import io
import os
import threading
from pathlib import Path
from typing import Any

from monitor.core.durations import format_duration
from monitor.core.models import Verdict
from monitor.reports.document import Report
from monitor.reports.model import VERDICTS

COLORS = {
    Verdict.INBOX: "#2e7d32",
    Verdict.SPAM: "#f9a825",
    Verdict.MISSING: "#c62828",
    Verdict.LATE: "#ef6c00",
    Verdict.SEND_FAILED: "#6a1b9a",
    Verdict.CHECK_FAILED: "#607d8b",
}
CHARTS = ("providers", "placement", "delivery", "trends")
SCALE = 2  # pixels per CSS pixel
WIDTH, HEIGHT = 7.2, 2.8  # inches at 100 dpi: 720 × 280 CSS pixels
_drawing = threading.Lock()


def use_cache_dir(state_dir: Path) -> None:
    """matplotlib keeps its font cache under $HOME, which a hardened service cannot write:
    without this it rebuilds the cache in a new temporary directory at every start."""
    os.environ.setdefault("MPLCONFIGDIR", str(state_dir / "matplotlib"))


async def render_charts(report: Report) -> dict[str, bytes]:
    return await asyncio.to_thread(draw_charts, report)


def draw_charts(report: Report) -> dict[str, bytes]:
    """{name: PNG} for each of CHARTS."""
    with _drawing:
        return {
            "providers": _providers(report),
            "placement": _placement(report),
            "delivery": _delivery(report),
            "trends": _trends(report),
        }


def _figure(height: float = HEIGHT) -> Any:
    from matplotlib.figure import Figure  # imported late: it costs a second at first use

    figure = Figure(figsize=(WIDTH, height), dpi=100 * SCALE, layout="constrained")
    return figure, figure.add_subplot()


def _png(figure: Any) -> bytes:
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


def _legend(figure: Any, axes: Any) -> None:
    """To the right of the plot, outside the data."""
    if axes.get_legend_handles_labels()[0]:
        figure.legend(loc="outside right upper", fontsize=8, frameon=False)


def _shares(tally: Any, verdict: Verdict) -> float:
    return 100.0 * tally.count(verdict) / tally.total if tally.total else 0.0


def _stacked(axes: Any, tallies: list[Any], positions: list[int], horizontal: bool) -> bool:
    base = [0.0] * len(tallies)
    for verdict in VERDICTS:
        shares = [_shares(t, verdict) for t in tallies]
        if any(shares):
            bar = axes.barh if horizontal else axes.bar
            bar(positions, shares, 0.7, base, color=COLORS[verdict], label=verdict.value)
            base = [b + s for b, s in zip(base, shares, strict=True)]
    return any(base)


def _nothing(axes: Any, text: str) -> None:
    axes.text(0.5, 0.5, text, ha="center", va="center", transform=axes.transAxes)


def _providers(report: Report) -> bytes:
    providers = list(report.providers)
    figure, axes = _figure(max(1.6, 0.45 * len(providers) + 1.0))
    positions = list(range(len(providers)))
    drawn = _stacked(axes, [p.summary.tally for p in providers], positions, horizontal=True)
    axes.set_yticks(positions, [p.provider for p in providers])
    axes.invert_yaxis()  # the worst on top, as in the table
    axes.set_xlim(0, 100)
    axes.set_xlabel("% of canaries")
    return _finish(figure, axes, "Placement per provider, worst first", drawn)


def _placement(report: Report) -> bytes:
    figure, axes = _figure()
    labels = [f"{d.day.date:%a %d}" for d in report.days]
    positions = list(range(len(labels)))
    drawn = _stacked(axes, [d.tally for d in report.days], positions, horizontal=False)
    axes.set_xticks(positions, labels)
    axes.set_xlabel(f"day ({report.period.timezone})")
    # Inbox shares near 100 % would leave the trouble a sliver: start the axis below the
    # lowest inbox share instead of at 0 (the axis says where it starts).
    inbox = [_shares(d.tally, Verdict.INBOX) for d in report.days if d.tally.total]
    axes.set_ylim(max(0.0, (min(inbox, default=100.0) - 10) // 10 * 10), 100)
    axes.set_ylabel("% of canaries")
    return _finish(figure, axes, "Placement per day", drawn)


def _finish(figure: Any, axes: Any, title: str, drawn: bool) -> bytes:
    axes.set_title(title, fontsize=10)
    if not drawn:
        _nothing(axes, "no canaries in this period")
    _legend(figure, axes)
    return _png(figure)


def _duration_axis(axes: Any, values: list[float]) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    low = min((v for v in values if v > 0), default=0.0)
    if low and max(values) / low > 20:  # a long tail: keep the median readable
        axes.set_yscale("log")
        axes.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axes.yaxis.set_minor_formatter(NullFormatter())
    else:
        axes.set_ylim(bottom=0)
    axes.yaxis.set_major_formatter(FuncFormatter(lambda v, _: format_duration(v) if v > 0 else "0"))


def _delivery(report: Report) -> bytes:
    figure, axes = _figure()
    labels = [f"{d.day.date:%a %d}" for d in report.days]
    positions = list(range(len(labels)))
    shown: list[float] = []
    for q, name, style in ((0.5, "p50", "-o"), (0.95, "p95", "--s")):
        points = [
            (x, d.delivery.percentile(q)) for x, d in zip(positions, report.days, strict=True)
        ]
        points = [(x, v) for x, v in points if v is not None]
        if points:
            xs, ys = zip(*points, strict=True)
            axes.plot(xs, ys, style, label=name, markersize=4)
            shown += ys
    axes.set_xticks(positions, labels)
    axes.set_xlabel(f"day ({report.period.timezone})")
    axes.set_ylabel("delivery time (s, m, h)")
    axes.set_title("Delivery time per day", fontsize=10)
    if shown:
        _duration_axis(axes, shown)
    else:
        _nothing(axes, "nothing delivered")
    axes.grid(True, which="major", alpha=0.3)
    _legend(figure, axes)
    return _png(figure)


def _trends(report: Report) -> bytes:
    """Three small panels side by side, each with its own scale: a spam rate of 2 % is a
    sliver on an axis that also holds an inbox rate of 98 %."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(WIDTH, 2.4), dpi=100 * SCALE, layout="constrained")
    panels = figure.subplots(1, 3, sharex=True)
    weeks = list(report.weeks)
    labels = [f"{w.first_day:%d %b}" for w in weeks]
    rates = {
        v: [(x, 100.0 * (w.tally.rate(v) or 0.0)) for x, w in enumerate(weeks) if w.tally.total]
        for v in (Verdict.INBOX, Verdict.SPAM)
    }
    p95 = [(x, w.delivery.percentile(0.95)) for x, w in enumerate(weeks)]
    series = (
        (panels[0], rates[Verdict.INBOX], COLORS[Verdict.INBOX], "inbox rate", "% of canaries"),
        (panels[1], rates[Verdict.SPAM], COLORS[Verdict.SPAM], "spam rate", "% of canaries"),
        (panels[2], [(x, v) for x, v in p95 if v is not None], "#1565c0", "p95 delivery", ""),
    )
    for axes, points, color, title, unit in series:
        axes.set_title(title, fontsize=9)
        axes.tick_params(labelsize=7)
        if points:
            xs, ys = zip(*points, strict=True)
            axes.plot(xs, ys, "-o", color=color, markersize=3)
            if unit:
                axes.set_ylabel(unit, fontsize=8)
                axes.set_ylim(bottom=0 if axes is panels[1] else None, top=None)
            else:
                _duration_axis(axes, list(ys))
                axes.set_ylabel("time (s, m, h)", fontsize=8)
        else:
            _nothing(axes, "no history")
        axes.grid(True, alpha=0.3)
        every = max(1, len(weeks) // 4)
        axes.set_xticks(range(0, len(weeks), every), labels[::every], fontsize=7)
    figure.supxlabel(f"period starting ({report.period.timezone})", fontsize=8)
    return _png(figure)
