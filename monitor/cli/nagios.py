"""A batch of canaries as one Nagios plugin line, for Nagios, Icinga and Checkmk.

    MAILCANARY CRITICAL - 1/3 inbox; missing: gmail:seed; spam: outlook:seed | 'delivery_…'=…

Per the Nagios plugin development guidelines: the status word matches the exit code
(0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; the worst verdict wins, as in
`monitor.probe.verdict.exit_code`), the text before `|` is for people, and the perfdata after
it is `label=value[UOM];warn;crit;min;max`, one delivery time in seconds per (route, to),
labelled `delivery_<route>:<to>`. A canary without a delivery time (missing, refused, not
looked at) reports the value `U`, so the set of labels stays the same from run to run: some
graphers start a new graph whenever it changes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from monitor.core.models import ProbeRecord, Verdict
from monitor.probe.verdict import exit_code

STATUS_WORDS = ("OK", "WARNING", "CRITICAL", "UNKNOWN")
UNKNOWN = 3
# Enough to act on from a pager; the rest is in `mailcanary history`.
MAX_NAMED = 5
# Worst first, then in Verdict order; "undecided" has no verdict and counts as UNKNOWN.
_ORDER = [v.value for v in Verdict if v is not Verdict.INBOX]
_PLAIN_LABEL = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass(frozen=True, slots=True)
class Canary:
    """What the plugin line needs of one probe."""

    route: str
    to: str
    verdict: Verdict | None  # None: the probe ended without a verdict
    delivery_seconds: float | None = None
    failure: str | None = None  # the failure kind, shown beside the canary's name
    unknown: str = "undecided"  # without a verdict: why ("undecided", "stale", "never")

    @property
    def name(self) -> str:
        return f"{self.route}:{self.to}"


def canaries(records: Iterable[ProbeRecord]) -> list[Canary]:
    result = []
    for record in records:
        decision = record.decision
        failure = decision.failure if decision else None
        if failure is None and record.send is not None:
            failure = record.send.failure
        result.append(
            Canary(
                route=record.planned.route,
                to=record.planned.recipient,
                verdict=decision.verdict if decision else None,
                delivery_seconds=decision.delivery_seconds if decision else None,
                failure=failure.kind if failure else None,
            )
        )
    return result


def plugin_output(batch: Sequence[Canary]) -> tuple[str, int]:
    """The plugin's one line (without a newline) and its exit code."""
    if not batch:
        # Nothing was checked, so nothing can be said to be OK.
        return "MAILCANARY UNKNOWN - no canary was probed", UNKNOWN
    code = exit_code([c.verdict for c in batch if c.verdict is not None])
    if any(c.verdict is None for c in batch):
        code = UNKNOWN
    inbox = sum(c.verdict is Verdict.INBOX for c in batch)
    summary = "; ".join([f"{inbox}/{len(batch)} inbox", *_worst(batch)])
    perfdata = " ".join(_delivery(c) for c in batch)
    return f"MAILCANARY {STATUS_WORDS[code]} - {_text(summary)} | {perfdata}", code


def standing(
    newest: Mapping[tuple[str, str], tuple[Canary, datetime]],
    pairs: Sequence[tuple[str, str, float]],
    now: datetime,
) -> list[Canary]:
    """The daemon's record as canaries for `status --nagios`: per configured (route, to,
    stale_after seconds) its newest verdict, or UNKNOWN when there is none or it is older
    than stale_after (the daemon or the route has stopped: a passive check must not keep
    saying OK about the past)."""
    result = []
    for route, to, stale_after in pairs:
        found = newest.get((route, to))
        if found is None:
            result.append(Canary(route, to, None, unknown="never"))
            continue
        canary, planned_at = found
        age = (now - planned_at).total_seconds()
        if age > stale_after:
            stale = Canary(route, to, None, failure=f"newest {_age(age)} old", unknown="stale")
            result.append(stale)
        else:
            result.append(canary)
    return result


def _age(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h"


def plugin_error(reason: str) -> tuple[str, int]:
    """The line for a check that could not run at all (bad config, database down)."""
    return f"MAILCANARY UNKNOWN - {_text(reason)}", UNKNOWN


def _worst(batch: Sequence[Canary]) -> list[str]:
    """`verdict: name (failure), …` groups, worst verdict first, at most MAX_NAMED names."""
    groups: dict[str, list[str]] = {}
    for canary in batch:
        if canary.verdict is Verdict.INBOX:
            continue
        group = canary.verdict.value if canary.verdict else canary.unknown
        shown = canary.name + (f" ({canary.failure})" if canary.failure else "")
        groups.setdefault(group, []).append(shown)

    def severity(group: str) -> tuple[int, int]:
        if group not in _ORDER:
            return (-UNKNOWN, -1)
        return (-exit_code([Verdict(group)]), _ORDER.index(group))

    parts, named = [], 0
    for group in sorted(groups, key=severity):
        names = groups[group][: max(MAX_NAMED - named, 0)]
        named += len(names)
        if names:
            parts.append(f"{group}: {', '.join(names)}")
    hidden = sum(len(names) for names in groups.values()) - named
    if hidden:
        parts.append(f"{hidden} more")
    return parts


def _delivery(canary: Canary) -> str:
    seconds = canary.delivery_seconds
    # Fixed point: the guidelines allow only [-0-9.], so never an exponent.
    value = "U" if seconds is None else f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{perf_label('delivery_' + canary.name)}={value};;;0;"


def perf_label(label: str) -> str:
    """A perfdata label: `=` is not allowed in one at all, a quote is doubled, and anything
    beyond letters, digits and `_.-` is quoted, since graphers disagree about the rest."""
    label = _text(label).replace("=", "_").replace("'", "''")
    return label if _PLAIN_LABEL.fullmatch(label) else f"'{label}'"


def _text(text: str) -> str:
    # `|` starts the perfdata and a line break ends the first line: neither may leak in.
    return re.sub(r"[|\r\n\t]+", " ", text)
