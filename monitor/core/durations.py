"""Human durations ("90s", "5m", "1h30m", "2d") to seconds and back; the ranges they may take."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_EXPECTED = "expected a duration like 90s, 5m or 1h"


def parse_duration(text: str | int | float) -> float:
    """Seconds in `text`; a bare number means seconds. Raises ValueError with a readable reason
    that does not quote `text` (the caller decides what of it may be shown)."""
    if isinstance(text, bool):
        raise ValueError(_EXPECTED)
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        compact = text.strip().replace(" ", "").lower()
        if re.fullmatch(r"\d+(\.\d+)?", compact):
            seconds = float(compact)
        elif not compact or _PART.sub("", compact):
            raise ValueError(_EXPECTED)
        else:
            seconds = sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(compact))
    # nan passes every comparison and inf overflows timedelta: neither is a duration.
    if not math.isfinite(seconds):
        raise ValueError("must be a finite duration")
    if seconds < 0:
        raise ValueError("must not be negative")
    return seconds


@dataclass(frozen=True)
class DurationRange:
    """The seconds a duration setting may take: `low`..`high`, and 0 too when `never` (0 then
    means "never", as in remind_every)."""

    low: float
    high: float
    never: bool = False

    def check(self, seconds: float) -> float:
        """`seconds` when in range; else ValueError saying the range."""
        if self.never and seconds == 0:
            return seconds
        if not self.low <= seconds <= self.high:
            raise ValueError(f"must be {self}")
        return seconds

    def __str__(self) -> str:
        span = f"{_bound(self.low)}..{_bound(self.high)}"
        return f'{span}, or "0" for never' if self.never else span


def _bound(seconds: float) -> str:
    # "1s", not the table form "1.0s": a range is written as it would be typed.
    return f"{seconds:g}s" if 1 <= seconds < 60 else format_duration(seconds)


def format_duration(seconds: float) -> str:
    """Short form for tables: 850ms, 42s, 5m, 1h30m."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    whole = round(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if whole >= size:
            parts.append(f"{whole // size}{unit}")
            whole %= size
    return "".join(parts[:2])
