"""Deliverability report maths: periods, tallies, delivery-time histograms and trends.

Nothing here reads rows one by one: the store hands over counts already aggregated in SQL
(per mailbox, hour and verdict; per delivery-time bucket), and everything else is sums of
those. Delivery times come as histograms of 16 log-scale buckets per decade from 0.1 s (96
buckets, the last one open above ~21 h) plus the exact maximum. A percentile is interpolated
log-linearly inside its bucket, so it is off by less than one bucket width (15 %) and in
practice by a few per cent; histograms of mailboxes add up to those of providers, days and
the whole period exactly, which percentiles of exact values would not.

A period is a span of local days in the report's time zone, cut at whole UTC hours (the
rollup's unit): the week in which Europe/Athens leaves summer time has 169 hours and its
Sunday 25. In the few zones whose offset is not whole hours (India, Nepal…) days are cut at
the UTC hour, up to 45 minutes off local midnight.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from monitor.core.models import Verdict

PER_DECADE = 16
# Frozen in alembic 0005 (the rollup's triggers): bucket k holds EDGES[k-1] <= s < EDGES[k].
EDGES: tuple[float, ...] = tuple(float(f"{0.1 * 10 ** (k / PER_DECADE):.4g}") for k in range(95))
BUCKETS = len(EDGES) + 1
VERDICTS: tuple[Verdict, ...] = tuple(Verdict)
HOUR = timedelta(hours=1)
# Smaller changes than these read as "flat" (→): noise, not a trend.
FLAT_RATE = 0.005
FLAT_SECONDS = 0.05  # relative


def bucket_of(seconds: float) -> int:
    return bisect_right(EDGES, seconds)


def bucket_bounds(bucket: int) -> tuple[float, float | None]:
    """[low, high) of a bucket; the last one has no upper edge."""
    low = EDGES[bucket - 1] if bucket > 0 else 0.0
    return low, EDGES[bucket] if bucket < len(EDGES) else None


@dataclass(frozen=True, slots=True)
class Histogram:
    """Delivery times: (bucket, count) pairs in bucket order, and the largest time seen."""

    counts: tuple[tuple[int, int], ...] = ()
    max: float | None = None

    @classmethod
    def of(cls, rows: Iterable[tuple[int, int, float | None]]) -> Histogram:
        """From (bucket, count, max) rows, in any order, buckets possibly repeated."""
        counts: dict[int, int] = {}
        top: float | None = None
        for bucket, n, most in rows:
            if n > 0:
                counts[bucket] = counts.get(bucket, 0) + n
            if most is not None and (top is None or most > top):
                top = most
        return cls(tuple(sorted(counts.items())), top)

    @property
    def n(self) -> int:
        return sum(n for _, n in self.counts)

    def __add__(self, other: Histogram) -> Histogram:
        rows = [(b, n, None) for b, n in (*self.counts, *other.counts)]
        return Histogram.of([*rows, (0, 0, self.max), (0, 0, other.max)])

    def percentile(self, q: float) -> float | None:
        total = self.n
        if total == 0:
            return None
        if q >= 1:
            return self.max
        rank, below = q * total, 0
        for bucket, n in self.counts:
            if below + n >= rank:
                return self._inside(bucket, (rank - below) / n)
            below += n
        return self.max

    def _inside(self, bucket: int, fraction: float) -> float:
        low, high = bucket_bounds(bucket)
        if self.max is not None:
            high = self.max if high is None else min(high, self.max)
        if high is None or high <= low:
            return low
        value = low + fraction * (high - low) if low <= 0 else low * (high / low) ** fraction
        return min(value, self.max) if self.max is not None else value


@dataclass(frozen=True, slots=True)
class Tally:
    """Canaries per verdict."""

    counts: Mapping[Verdict, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def count(self, *verdicts: Verdict) -> int:
        return sum(self.counts.get(v, 0) for v in verdicts)

    def rate(self, *verdicts: Verdict) -> float | None:
        """Share of all canaries; None when there were none (0/0 is not 0 %)."""
        total = self.total
        return self.count(*verdicts) / total if total else None

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            {v: self.count(v) + other.count(v) for v in VERDICTS if self.count(v) or other.count(v)}
        )


@dataclass(frozen=True, slots=True)
class Trend:
    now: float | None
    before: float | None
    higher_is_better: bool
    relative: bool = False  # times: compare relative change; rates: percentage points

    @property
    def delta(self) -> float | None:
        return None if self.now is None or self.before is None else self.now - self.before

    @property
    def direction(self) -> str | None:
        """ "up", "down", "flat", or None when one side is unknown."""
        delta = self.delta
        if delta is None or self.before is None:
            return None
        scale = abs(self.before) * FLAT_SECONDS if self.relative else FLAT_RATE
        if abs(delta) <= scale:
            return "flat"
        return "up" if delta > 0 else "down"

    @property
    def better(self) -> bool | None:
        direction = self.direction
        if direction in (None, "flat"):
            return None
        return (direction == "up") == self.higher_is_better

    @property
    def arrow(self) -> str:
        return {"up": "↑", "down": "↓", "flat": "→"}.get(self.direction or "", "")


@dataclass(frozen=True, slots=True)
class Summary:
    """One mailbox, provider, day or the whole report: now and in the previous period."""

    tally: Tally = Tally()
    delivery: Histogram = Histogram()
    previous: Tally = Tally()
    previous_delivery: Histogram = Histogram()
    dmarc_failed: Mapping[Verdict, int] = field(default_factory=dict)

    def __add__(self, other: Summary) -> Summary:
        dmarc = {v: self.dmarc_failed.get(v, 0) + other.dmarc_failed.get(v, 0) for v in VERDICTS}
        return Summary(
            self.tally + other.tally,
            self.delivery + other.delivery,
            self.previous + other.previous,
            self.previous_delivery + other.previous_delivery,
            {v: n for v, n in dmarc.items() if n},
        )

    def trends(self) -> dict[str, Trend]:
        now, before = self.tally, self.previous
        failed = (Verdict.SEND_FAILED, Verdict.CHECK_FAILED)
        lost = (Verdict.MISSING, Verdict.LATE)
        return {
            "inbox_rate": Trend(now.rate(Verdict.INBOX), before.rate(Verdict.INBOX), True),
            "spam_rate": Trend(now.rate(Verdict.SPAM), before.rate(Verdict.SPAM), False),
            "missing_rate": Trend(now.rate(*lost), before.rate(*lost), False),
            "failed_rate": Trend(now.rate(*failed), before.rate(*failed), False),
            "p50": self._time_trend(0.5),
            "p95": self._time_trend(0.95),
        }

    def _time_trend(self, q: float) -> Trend:
        now, before = self.delivery.percentile(q), self.previous_delivery.percentile(q)
        return Trend(now, before, higher_is_better=False, relative=True)


# -- periods ------------------------------------------------------------------------------


def floor_hour(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return moment.replace(minute=0, second=0, microsecond=0)


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The UTC hour in which `day` begins in `zone`."""
    return floor_hour(datetime.combine(day, time(0), zone))


@dataclass(frozen=True, slots=True)
class Day:
    date: date
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive

    @property
    def hours(self) -> int:
        return round((self.end - self.start) / HOUR)


@dataclass(frozen=True, slots=True)
class Period:
    start: datetime  # UTC, a whole hour, inclusive
    end: datetime  # UTC, exclusive
    timezone: str
    first_day: date | None = None  # set when the period is whole local days
    last_day: date | None = None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def hours(self) -> int:
        return round((self.end - self.start) / HOUR)

    @property
    def label(self) -> str:
        if self.first_day is not None and self.last_day is not None:
            return f"{self.first_day.isoformat()} – {self.last_day.isoformat()}"
        fmt = "%Y-%m-%d %H:%M"
        local = (self.start.astimezone(self.zone), self.end.astimezone(self.zone))
        return f"{local[0].strftime(fmt)} – {local[1].strftime(fmt)}"

    def days(self) -> list[Day]:
        zone, first = self.zone, self.start.astimezone(self.zone).date()
        days = []
        while (start := max(local_midnight(first, zone), self.start)) < self.end:
            end = min(local_midnight(first + timedelta(days=1), zone), self.end)
            if end > start:
                days.append(Day(first, start, end))
            first += timedelta(days=1)
        return days

    def previous(self) -> Period:
        """The period just before: the same number of local days, or the same length."""
        if self.first_day is not None and self.last_day is not None:
            span = self.last_day - self.first_day + timedelta(days=1)
            return days_period(self.first_day - span, self.last_day - span, self.timezone)
        return Period(self.start - (self.end - self.start), self.start, self.timezone)


def days_period(first: date, last: date, timezone: str) -> Period:
    """From the start of `first` to the end of `last` (inclusive), local days in `timezone`."""
    if last < first:
        raise ValueError(f"the period ends ({last}) before it starts ({first})")
    zone = ZoneInfo(timezone)
    start, end = local_midnight(first, zone), local_midnight(last + timedelta(days=1), zone)
    return Period(start, end, timezone, first, last)


def last_full_week(now: datetime, timezone: str) -> Period:
    """Monday to Sunday, the last week that has ended in `timezone`."""
    today = now.astimezone(ZoneInfo(timezone)).date()
    monday = today - timedelta(days=today.weekday())
    return days_period(monday - timedelta(days=7), monday - timedelta(days=1), timezone)


def recent(now: datetime, seconds: float, timezone: str) -> Period:
    """The last `seconds` up to the end of the current hour, whole hours."""
    end = floor_hour(now) + HOUR
    return Period(floor_hour(now - timedelta(seconds=seconds)), end, timezone)


def send_moment(period: Period, weekday: int, at: time) -> datetime:
    """When a weekly report of `period` is due: the first `weekday` `at` after it ends."""
    zone = period.zone
    ended = period.end.astimezone(zone)
    day = ended.date() + timedelta(days=(weekday - ended.weekday()) % 7)
    moment = datetime.combine(day, at, zone)
    if moment < ended:
        moment = datetime.combine(day + timedelta(days=7), at, zone)
    return moment.astimezone(UTC)


def due_week(now: datetime, weekday: int, at: time, timezone: str) -> Period:
    """The newest full week whose weekly send moment has come."""
    week = last_full_week(now, timezone)
    return week if send_moment(week, weekday, at) <= now else week.previous()
