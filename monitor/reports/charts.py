"""The report's charts as PNG images: placement per day (stacked shares) and delivery time
per day (p50 and p95).

matplotlib's object API only: a `Figure` of our own, never pyplot (whose global state is
not safe in a long-lived process) and no GUI backend. Drawing takes a few hundred
milliseconds, so it runs in a worker thread; a lock keeps it to one figure at a time.
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
CHARTS = ("placement", "delivery")
_drawing = threading.Lock()


def use_cache_dir(state_dir: Path) -> None:
    """matplotlib keeps its font cache under $HOME, which a hardened service cannot write:
    without this it rebuilds the cache in a new temporary directory at every start."""
    os.environ.setdefault("MPLCONFIGDIR", str(state_dir / "matplotlib"))


async def render_charts(report: Report) -> dict[str, bytes]:
    return await asyncio.to_thread(draw_charts, report)


def draw_charts(report: Report) -> dict[str, bytes]:
    """{"placement": PNG, "delivery": PNG}."""
    with _drawing:
        return {"placement": _placement(report), "delivery": _delivery(report)}


def _figure() -> Any:
    from matplotlib.figure import Figure  # imported late: it costs a second at first use

    figure = Figure(figsize=(7.2, 2.8), dpi=100, layout="constrained")
    return figure, figure.add_subplot()


def _labels(report: Report) -> list[str]:
    return [f"{d.day.date:%a %d}" for d in report.days]


def _png(figure: Any) -> bytes:
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


def _placement(report: Report) -> bytes:
    figure, axes = _figure()
    labels = _labels(report)
    positions = list(range(len(labels)))
    bottom = [0.0] * len(labels)
    for verdict in VERDICTS:
        shares = [
            100.0 * d.tally.count(verdict) / d.tally.total if d.tally.total else 0.0
            for d in report.days
        ]
        if any(shares):
            axes.bar(
                positions,
                shares,
                bottom=bottom,
                color=COLORS[verdict],
                label=verdict.value,
                width=0.7,
            )
            bottom = [b + s for b, s in zip(bottom, shares, strict=True)]
    axes.set_xticks(positions, labels)
    # Inbox shares near 100 % would leave the trouble a sliver: start the axis below the
    # lowest inbox share instead of at 0 (the label says where it starts).
    inbox = [
        100.0 * d.tally.count(Verdict.INBOX) / d.tally.total for d in report.days if d.tally.total
    ]
    floor = max(0.0, (min(inbox, default=100.0) - 10) // 10 * 10)
    axes.set_ylim(floor, 100)
    axes.set_ylabel("% of canaries")
    axes.set_title(f"Placement per day ({report.period.timezone})", fontsize=10)
    if any(bottom):
        axes.legend(loc="lower left", fontsize=8, ncols=3, framealpha=0.9)
    else:
        axes.text(0.5, 0.5, "no canaries", ha="center", va="center", transform=axes.transAxes)
    return _png(figure)


def _delivery(report: Report) -> bytes:
    figure, axes = _figure()
    labels = _labels(report)
    positions = list(range(len(labels)))
    drawn = False
    for q, name, style in ((0.5, "p50", "-o"), (0.95, "p95", "--s")):
        values = [d.delivery.percentile(q) for d in report.days]
        points = [(x, v) for x, v in zip(positions, values, strict=True) if v is not None]
        if points:
            xs, ys = zip(*points, strict=True)
            axes.plot(xs, ys, style, label=name, markersize=4)
            drawn = True
    axes.set_xticks(positions, labels)
    axes.set_ylabel("delivery time")
    axes.set_title("Delivery time per day", fontsize=10)
    if drawn:
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        shown = [v for d in report.days for v in (d.delivery.percentile(0.5),) if v]
        highest = max((d.delivery.percentile(0.95) or 0.0) for d in report.days)
        if shown and highest / min(shown) > 20:  # a long tail: keep the median readable
            axes.set_yscale("log")
            axes.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            axes.yaxis.set_minor_formatter(NullFormatter())
        else:
            axes.set_ylim(bottom=0)
        axes.yaxis.set_major_formatter(
            FuncFormatter(lambda v, _: format_duration(v) if v > 0 else "0")
        )
        axes.legend(fontsize=8)
    else:
        axes.text(0.5, 0.5, "nothing delivered", ha="center", va="center", transform=axes.transAxes)
    axes.grid(True, which="major", alpha=0.3)
    return _png(figure)
