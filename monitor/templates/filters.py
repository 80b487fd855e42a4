"""Numbers and times as people read them, the same in the report, the alert mail and the
status page (registered as Jinja2 filters by `monitor.templates`, and called directly by
the text renderings)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

from monitor.core.durations import format_duration


class TrendLike(Protocol):
    @property
    def delta(self) -> float | None: ...
    @property
    def direction(self) -> str | None: ...
    @property
    def arrow(self) -> str: ...

    relative: bool


def percent(rate: float | None) -> str:
    """0.079 → "7.9%", 0.4 → "40%"; None (no canaries: 0/0) → "–"."""
    if rate is None:
        return "–"
    return f"{rate * 100:.1f}%" if rate < 0.1 else f"{rate * 100:.0f}%"


def seconds(value: float | None) -> str:
    return "–" if value is None else format_duration(value)


def trend_text(trend: TrendLike) -> str:
    """↑ +1.2 pp, ↓ -3s, → or "" when there is nothing to compare with."""
    delta = trend.delta
    if delta is None:
        return ""
    if trend.direction == "flat":
        return "→"
    if trend.relative:
        sign = "+" if delta > 0 else "-"
        return f"{trend.arrow} {sign}{format_duration(abs(delta))}"
    return f"{trend.arrow} {delta * 100:+.1f} pp"


def local_time(
    moment: datetime | str | None, timezone: str = "UTC", fmt: str = "%a %d %b %H:%M"
) -> str:
    """In the configured zone with UTC beside it: "Mon 26 Oct 10:00 EET (08:00 UTC)", the
    UTC weekday too when the days differ; a time in a UTC-configured installation is shown
    once. None → "never"."""
    if moment is None:
        return "never"
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    local = moment.astimezone(ZoneInfo(timezone))
    utc = moment.astimezone(UTC)
    shown = f"{local.strftime(fmt)} {local.tzname()}"
    if local.utcoffset() == utc.utcoffset() and timezone in ("UTC", "Etc/UTC"):
        return shown
    # The UTC day too when it is another one: "Mon 00:00 EET (Sun 22:00 UTC)".
    other_day = "%a " if utc.date() != local.date() else ""
    return f"{shown} ({utc.strftime(other_day + '%H:%M')} UTC)"


def plural(count: int, word: str, many: str | None = None) -> str:
    """1 canary, 2 canaries."""
    return f"{count} {word if count == 1 else many or _plural(word)}"


def _plural(word: str) -> str:
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    return word + ("es" if word.endswith(("s", "x", "ch", "sh")) else "s")


MONO = "font-family:ui-monospace,Menlo,Consolas,'DejaVu Sans Mono',monospace;font-size:13px;"
_COMMAND = re.compile(
    r"`([^`]+)`"  # quoted the markdown way
    r"|(mailcanary [a-z][a-z-]*(?: (?:--[a-z][\w-]*(?: (?!--)[^\s,;)]+)?|[A-Z][A-Z_]+))*)"
)


def code_spans(text: str | None) -> Markup:
    """Escaped text in which commands ("mailcanary dns ACCOUNT", `quoted`) are set in
    monospace. Safe on any text: every part is escaped, only our own <code> is markup."""
    if not text:
        return Markup("")
    out, at = [], 0
    for found in _COMMAND.finditer(text):
        out.append(escape(text[at : found.start()]))
        command = found.group(1) or found.group(2)
        out.append(Markup('<code style="{}">{}</code>').format(MONO, command))
        at = found.end()
    out.append(escape(text[at:]))
    return Markup("").join(out)
