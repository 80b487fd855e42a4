"""The pages' rollup reads: closed hours through the window cache, the last two hours fresh.

Each function returns what a page shows for [start, now): the kept part [start, fresh) comes
from `Windows` (slid forward hour by hour), the two hours from `fresh` on are read on every
view (bounded: a clock behind the database's newest rows must not read a day of them).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from monitor.adapters.webstore import WebStore
from monitor.reports.model import Histogram, Tally
from monitor.web.cache import Windows
from monitor.web.model import total

Counts = dict[tuple[str, str], Tally]  # per (route, recipient)
DAY = timedelta(hours=24)
HOUR = timedelta(hours=1)


def add(one: Mapping[Any, Tally], other: Mapping[Any, Tally]) -> dict[Any, Tally]:
    merged = dict(one)
    for key, tally in other.items():
        merged[key] = total((merged[key], tally)) if key in merged else tally
    return merged


def minus(one: Mapping[Any, Tally], other: Mapping[Any, Tally]) -> dict[Any, Tally]:
    """`one` less `other`, per key and verdict; keys left with nothing are dropped."""
    merged = {}
    for key, tally in one.items():
        taken = other.get(key, Tally())
        left = {v: n - taken.count(v) for v, n in tally.counts.items() if n > taken.count(v)}
        if left:
            merged[key] = Tally(left)
    return merged


async def counts(
    store: WebStore, windows: Windows, start: datetime, fresh: datetime
) -> tuple[Counts, Counts]:
    """Verdict counts per mailbox over the last 24 hours and since `start` (both up to now);
    `fresh` is the first hour read on every view, the 24 hours end with the current one."""

    async def window(a: datetime, b: datetime) -> Counts:
        return (await store.tallies(a, b, b))[1]

    async def load(a: datetime, b: datetime) -> tuple[Counts, Counts]:
        return await store.tallies(a, b, b + 2 * HOUR - DAY)

    async def slide(
        kept: tuple[Counts, Counts], a0: datetime, b0: datetime, a: datetime, b: datetime
    ) -> tuple[Counts, Counts]:
        short, long = kept
        added = await window(b0, b)
        day0, day = b0 + 2 * HOUR - DAY, b + 2 * HOUR - DAY
        short = add(minus(short, await window(day0, day)), added)
        long = add(minus(long, await window(a0, a)), added)
        return short, long

    short, long = await windows.get(("counts",), start, fresh, load, slide)
    _, newest = await store.tallies(fresh, fresh + 2 * HOUR, fresh)
    return add(short, newest), add(long, newest)


async def delivery(
    store: WebStore,
    windows: Windows,
    start: datetime,
    fresh: datetime,
    route: str | None = None,
    recipient: str | None = None,
) -> dict[datetime, Histogram]:
    """Delivery-time histograms per hour since `start` (all mailboxes, a route or a mailbox)."""

    async def load(a: datetime, b: datetime) -> dict[datetime, Histogram]:
        return await store.delivery(a, b, route, recipient)

    async def slide(
        kept: dict[datetime, Histogram], a0: datetime, b0: datetime, a: datetime, b: datetime
    ) -> dict[datetime, Histogram]:
        return {hour: h for hour, h in kept.items() if hour >= a} | await load(b0, b)

    kept = await windows.get(("delivery", route, recipient), start, fresh, load, slide)
    return kept | await store.delivery(fresh, fresh + 2 * HOUR, route, recipient)


async def hourly(
    store: WebStore,
    windows: Windows,
    start: datetime,
    fresh: datetime,
    route: str,
    recipient: str | None,
) -> dict[tuple[str, datetime], Tally]:
    """Verdict counts per (recipient, hour) of a route since `start`."""

    async def load(a: datetime, b: datetime) -> dict[tuple[str, datetime], Tally]:
        return await store.hourly(a, b, route, recipient)

    async def slide(
        kept: dict[tuple[str, datetime], Tally],
        a0: datetime,
        b0: datetime,
        a: datetime,
        b: datetime,
    ) -> dict[tuple[str, datetime], Tally]:
        return {key: t for key, t in kept.items() if key[1] >= a} | await load(b0, b)

    kept = await windows.get(("hourly", route, recipient), start, fresh, load, slide)
    return kept | await store.hourly(fresh, fresh + 2 * HOUR, route, recipient)
