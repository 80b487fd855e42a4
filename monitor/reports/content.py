"""The receivers' content-filter verdicts in the report: per mailbox and filter, the score
against the filter's threshold and the rules that fired most often, explained.

The store hands over the newest SAMPLE delivered canaries of each mailbox in the period (a
seek on the route/recipient/time index, like the authentication sample), grouped by their
recorded spam-filter headers and parsed here once per distinct text with
`monitor.content.spamscore.parse_scores`; rules are explained by `monitor.content.rules`.
A rule counts against the message when it added points; one whose points the filter did not
write (Microsoft's verdict fields; SpamAssassin's `tests=` without `X-Spam-Report`) counts on
the canaries the filter called spam or that landed in spam. Rules known to have lowered or
kept the score (allowlists, passed checks) never count.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

from monitor.content.rules import explain
from monitor.content.spamscore import SpamScore, parse_scores
from monitor.core.models import Verdict

SAMPLE = 100  # delivered canaries per mailbox: headers are larger than Authentication-Results
TOP = 5  # rules shown per mailbox and filter
SHOWN = 10  # mailbox lines text and HTML show; JSON has them all


@dataclass(frozen=True, slots=True)
class ContentCount:
    """`n` sampled canaries of one mailbox with the same verdict and the same headers."""

    route: str
    recipient: str
    verdict: Verdict  # inbox, spam or late
    scores: tuple[SpamScore, ...]
    n: int


@lru_cache(maxsize=4096)
def scores_of_text(headers: str | None) -> tuple[SpamScore, ...]:
    """parse_scores of the `spam_headers` JSON text as stored (a name → value object)."""
    try:
        found = json.loads(headers) if headers else None
    except ValueError:
        return ()
    return tuple(parse_scores(found)) if isinstance(found, dict) else ()


@dataclass(frozen=True, slots=True)
class RuleCount:
    name: str
    hits: int  # sampled canaries it fired on
    points: float | None  # the points it usually added (median); None: the filter gives none
    description: str = ""  # the filter's own words, where it writes them (SpamAssassin)

    @property
    def explanation(self) -> str | None:
        return explain(self.name)


@dataclass(frozen=True)
class FilterVerdicts:
    """One filter's verdicts on one mailbox's sampled canaries."""

    route: str
    recipient: str
    provider: str
    address: str | None  # the mailbox's
    filter: str  # "spamassassin", "rspamd", "microsoft"
    canaries: int  # sampled canaries it scored
    spam: int  # of them, found in the spam folder
    over: int  # of them, scored at or over the filter's threshold
    median: float | None
    threshold: float | None  # the one it reported most often
    rules: tuple[RuleCount, ...] = ()  # the TOP most frequent, then by points
    judgement: str | None = None  # "content" | "sender", from a plain/message route pair
    role: str | None = None  # this route's part in that pair: "message" | "plain"
    compared_with: str | None = None  # the other route of that pair

    @property
    def pairing(self) -> str:
        """The judgement in words, as this route's line says it ("" when none)."""
        if self.judgement is None:
            return ""
        if self.role == "message":
            return f"your message: it is the {self.judgement} (plain canary: {self.compared_with})"
        return (
            f"the plain canary beside your message {self.compared_with}: it is the {self.judgement}"
        )

    @property
    def shown(self) -> bool:
        """Worth a reader's line: spam, over the threshold, or half of a judged pair."""
        return bool(self.spam or self.over or self.judgement)


@dataclass(frozen=True)
class ContentReport:
    mailboxes: tuple[FilterVerdicts, ...] = ()
    sample: int = SAMPLE

    @property
    def worth(self) -> tuple[FilterVerdicts, ...]:
        return tuple(m for m in self.mailboxes if m.shown)

    @property
    def shown(self) -> tuple[FilterVerdicts, ...]:
        """What text and HTML list: the first SHOWN worth a line (judged pairs first)."""
        return self.worth[:SHOWN]

    def of(self, route: str, recipient: str) -> FilterVerdicts | None:
        """The filter that scored most of this mailbox's canaries, if any did."""
        return self._busiest.get((route, recipient))

    @cached_property
    def _busiest(self) -> dict[tuple[str, str], FilterVerdicts]:
        found: dict[tuple[str, str], FilterVerdicts] = {}
        for m in self.mailboxes:
            known = found.get((m.route, m.recipient))
            if known is None or m.canaries > known.canaries:
                found[(m.route, m.recipient)] = m
        return found


def _median(weighted: Iterable[tuple[float, int]]) -> float | None:
    """The lower median of values given with their counts."""
    values = sorted(weighted)
    half = (sum(n for _, n in values) + 1) // 2
    seen = 0
    for value, n in values:
        seen += n
        if seen >= half:
            return value
    return None


def _against(score: SpamScore, verdict: Verdict) -> Iterable[tuple[str, float | None, str]]:
    # Without points a rule may as well be a pass (SFV:NSPM, BCL:0, SPF_PASS): it counts
    # only on a canary the filter called spam or that landed there.
    spam = bool(score.spam) or verdict is Verdict.SPAM
    for rule in score.rules:
        if (rule.points is None and spam) or (rule.points is not None and rule.points > 0):
            yield rule.name, rule.points, rule.detail


def _verdicts(
    route: str,
    recipient: str,
    mailbox: tuple[str, str | None],
    name: str,
    scored: list[tuple[SpamScore, Verdict, int]],
) -> FilterVerdicts:
    hits: dict[str, int] = defaultdict(int)
    points: dict[str, list[tuple[float, int]]] = defaultdict(list)
    words: dict[str, str] = {}
    thresholds: dict[float, int] = defaultdict(int)
    for score, verdict, n in scored:
        if score.threshold is not None:
            thresholds[score.threshold] += n
        for rule, added, detail in _against(score, verdict):
            hits[rule] += n
            if added is not None:
                points[rule].append((added, n))
            if detail and not words.get(rule):
                words[rule] = detail
    rules = sorted(
        (RuleCount(r, hits[r], _median(points[r]), words.get(r, "")) for r in hits),
        key=lambda r: (-r.hits, -(r.points or 0.0), r.name),
    )
    return FilterVerdicts(
        route=route,
        recipient=recipient,
        provider=mailbox[0],
        address=mailbox[1],
        filter=name,
        canaries=sum(n for _, _, n in scored),
        spam=sum(n for _, verdict, n in scored if verdict is Verdict.SPAM),
        over=sum(
            n
            for s, _, n in scored
            if s.score is not None and s.threshold is not None and s.score >= s.threshold
        ),
        median=_median((s.score, n) for s, _, n in scored if s.score is not None),
        threshold=max(thresholds, key=lambda t: (thresholds[t], t)) if thresholds else None,
        rules=tuple(rules[:TOP]),
    )


def content_report(
    counts: Iterable[ContentCount],
    mailbox_of: Callable[[str], tuple[str, str | None]],
    order: Sequence[str] = (),
) -> ContentReport:
    """`mailbox_of(recipient)`: its provider as the report names it and its address;
    mailboxes in the placement's provider `order` (worst first), then by mailbox, most spam
    first."""
    scored: dict[tuple[str, str, str], list[tuple[SpamScore, Verdict, int]]] = defaultdict(list)
    for count in counts:
        for score in count.scores:
            scored[(count.route, count.recipient, score.filter)].append(
                (score, count.verdict, count.n)
            )
    found = [
        _verdicts(route, recipient, mailbox_of(recipient), name, rows)
        for (route, recipient, name), rows in scored.items()
    ]

    def place(m: FilterVerdicts) -> tuple[Any, ...]:
        rank = order.index(m.provider) if m.provider in order else len(order)
        return (rank, m.provider, m.recipient, -m.spam / m.canaries, m.route, m.filter)

    return ContentReport(tuple(sorted(found, key=place)))


def rules_text(rules: Iterable[RuleCount]) -> str:
    """e.g. `HTML_IMAGE_ONLY_24 +1.6, MIME_HTML_ONLY +1.1`."""
    return ", ".join(r.name if r.points is None else f"{r.name} {r.points:+g}" for r in rules)


# -- data for JSON and CSV (monitor/reports/export.py documents the fields) -------------------


def content_json(report: ContentReport) -> dict[str, Any]:
    return {
        "sample": report.sample,
        "mailboxes": [
            {
                "route": m.route,
                "recipient": m.recipient,
                "mailbox": m.address,
                "provider": m.provider,
                "filter": m.filter,
                "canaries": m.canaries,
                "spam": m.spam,
                "over_threshold": m.over,
                "median_score": m.median,
                "threshold": m.threshold,
                "judgement": m.judgement,
                "role": m.role,
                "compared_with": m.compared_with,
                "shown": m.shown,
                "top_rules": [
                    {
                        "name": r.name,
                        "hits": r.hits,
                        "points": r.points,
                        "explanation": r.explanation,
                        "description": r.description or None,
                    }
                    for r in m.rules
                ],
            }
            for m in report.mailboxes
        ],
    }


CSV_COLUMNS = (
    "content_filter",
    "content_canaries",
    "content_median_score",
    "content_threshold",
    "content_over_threshold",
    "content_top_rules",
)


def csv_cells(verdicts: FilterVerdicts | None) -> list[object]:
    """A mailbox row's content columns; top rules as `NAME:hits:points;…` (points empty when
    the filter gives none)."""
    if verdicts is None:
        return [""] * len(CSV_COLUMNS)
    rules = ";".join(
        f"{r.name}:{r.hits}:{'' if r.points is None else f'{r.points:g}'}" for r in verdicts.rules
    )
    number = ["" if v is None else f"{v:g}" for v in (verdicts.median, verdicts.threshold)]
    return [verdicts.filter, verdicts.canaries, *number, verdicts.over, rules]
