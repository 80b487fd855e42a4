"""What the status page shows, decided from aggregates: pure, no I/O, no HTML.

The store hands over the newest verdict of each mailbox, counts per verdict from the hourly
rollup and delivery-time histograms; this module ranks mailboxes worst first, groups them by
provider, turns counts into rates and picks the headline's colour and its reason in words.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from monitor.core.models import Verdict
from monitor.reports.model import Histogram, Tally

# Worse verdicts rank higher; a mailbox without a verdict yet sits between good and bad.
RANK = {
    Verdict.SEND_FAILED: 6,
    Verdict.CHECK_FAILED: 5,
    Verdict.MISSING: 4,
    Verdict.SPAM: 3,
    Verdict.LATE: 2,
    None: 1,
    Verdict.INBOX: 0,
}
BAD = frozenset({Verdict.SEND_FAILED, Verdict.CHECK_FAILED, Verdict.MISSING})
POOR = frozenset({Verdict.SPAM, Verdict.LATE})
# Below these inbox shares the headline turns amber / red even when the newest verdicts are fine.
AMBER_BELOW = 0.95
RED_BELOW = 0.80


@dataclass(frozen=True, slots=True)
class Latest:
    """A mailbox's newest decided canary (narrow: only what a grid cell shows)."""

    route: str
    recipient: str
    probe_id: int
    verdict: Verdict
    planned_at: datetime
    delivery_seconds: float | None
    failure: str | None
    code: int | None


@dataclass(frozen=True, slots=True)
class Mailbox:
    """One grid cell: a route × recipient of the config, with its newest verdict if any."""

    route: str
    sender: str
    recipient: str
    provider: str
    latest: Latest | None

    @property
    def verdict(self) -> Verdict | None:
        return self.latest.verdict if self.latest else None

    @property
    def rank(self) -> int:
        return RANK[self.verdict]


@dataclass(frozen=True, slots=True)
class Row:
    """A grid row: one route's mailboxes at one provider."""

    route: str
    sender: str
    cells: tuple[Mailbox, ...]


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    rows: tuple[Row, ...]
    day: Tally
    week: Tally

    @property
    def rank(self) -> int:
        return max((cell.rank for row in self.rows for cell in row.cells), default=0)


@dataclass(frozen=True, slots=True)
class Headline:
    state: str  # green | amber | red
    reason: str


def total(tallies: Iterable[Tally]) -> Tally:
    """The sum of many tallies (Tally's own `+` is for a few: it walks every verdict)."""
    counts: dict[Verdict, int] = {}
    for tally in tallies:
        for verdict, n in tally.counts.items():
            counts[verdict] = counts.get(verdict, 0) + n
    return Tally(counts)


def group(
    mailboxes: Iterable[Mailbox], day: Mapping[str, Tally], week: Mapping[str, Tally]
) -> list[Provider]:
    """Mailboxes by provider, then route: worst provider first, worst row first, worst cell
    first; ties by name so the page does not reshuffle on every refresh. `day` and `week` are
    tallies per recipient."""
    by_provider: dict[str, dict[tuple[str, str], list[Mailbox]]] = defaultdict(dict)
    for box in mailboxes:
        by_provider[box.provider].setdefault((box.route, box.sender), []).append(box)
    providers = []
    for name, routes in by_provider.items():
        rows = [
            Row(route, sender, tuple(sorted(cells, key=lambda c: (-c.rank, c.recipient))))
            for (route, sender), cells in routes.items()
        ]
        rows.sort(key=lambda r: (-max(c.rank for c in r.cells), r.route))
        recipients = {c.recipient for r in rows for c in r.cells}
        providers.append(
            Provider(
                name,
                tuple(rows),
                total(day[r] for r in recipients if r in day),
                total(week[r] for r in recipients if r in week),
            )
        )
    providers.sort(key=lambda p: (-p.rank, p.name))
    return providers


def inbox_now(mailboxes: Iterable[Mailbox]) -> float | None:
    """The share of mailboxes whose newest canary landed in the inbox."""
    decided = [box for box in mailboxes if box.latest is not None]
    if not decided:
        return None
    return sum(box.verdict is Verdict.INBOX for box in decided) / len(decided)


def _names(boxes: list[Mailbox]) -> str:
    shown = ", ".join(f"{b.recipient} ({b.route})" for b in boxes[:3])
    return shown + (f" and {len(boxes) - 3} more" if len(boxes) > 3 else "")


def headline(mailboxes: list[Mailbox], day: Tally, open_alerts: int) -> Headline:
    """Red: a mailbox's newest canary failed or went missing, an alert is firing, or under 80 %
    reached the inbox in 24 h. Amber: spam or late, under 95 % in 24 h, or nothing decided
    yet. Green otherwise; the reason names the mailboxes that decided the colour."""
    if not mailboxes:
        return Headline("amber", "no routes configured: nothing is being watched")
    bad = [b for b in mailboxes if b.verdict in BAD]
    poor = [b for b in mailboxes if b.verdict in POOR]
    rate = day.rate(Verdict.INBOX)
    if bad:
        return Headline("red", f"{len(bad)} of {len(mailboxes)} failing: {_names(bad)}")
    if open_alerts:
        return Headline("red", f"{open_alerts} alert(s) firing")
    if rate is not None and rate < RED_BELOW:
        return Headline("red", f"only {rate:.0%} of the last 24 h reached the inbox")
    if poor:
        return Headline("amber", f"{len(poor)} of {len(mailboxes)} in spam or late: {_names(poor)}")
    if rate is not None and rate < AMBER_BELOW:
        return Headline("amber", f"{rate:.0%} of the last 24 h reached the inbox")
    waiting = [b for b in mailboxes if b.latest is None]
    if len(waiting) == len(mailboxes):
        return Headline("amber", "no canary decided yet")
    if waiting:
        return Headline("amber", f"{len(waiting)} mailbox(es) without a verdict yet")
    return Headline("green", f"all {len(mailboxes)} mailboxes got their newest canary in the inbox")


@dataclass(frozen=True, slots=True)
class TimePoint:
    at: datetime
    p50: float | None
    p95: float | None
    n: int


def percentiles(hours: Mapping[datetime, Histogram]) -> list[TimePoint]:
    """p50/p95 per hour, in time order."""
    return [
        TimePoint(at, h.percentile(0.5), h.percentile(0.95), h.n) for at, h in sorted(hours.items())
    ]
