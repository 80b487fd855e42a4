"""Authentication as the receivers saw it: SPF, DKIM and DMARC pass rates per provider and
per sending account, from the Authentication-Results recorded on each canary, and which
failing check most likely explains the spam placement.

The store hands over counts of canaries per (mailbox, verdict, spf, dkim, dmarc result), of
the newest SAMPLE delivered canaries of each mailbox in the period (a seek on the
route/recipient/time index: the cost does not grow with the history). DKIM counts as passed
when any signature passed, as DMARC sees it. A canary whose receiver wrote no result for a
check is left out of that check's rate (no result is not a failure of ours to count).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from monitor.core.models import Verdict
from monitor.core.receipt import auth_verdicts, receipt_from_json
from monitor.templates.filters import percent

CHECKS = ("spf", "dkim", "dmarc")
SAMPLE = 400  # delivered canaries per mailbox
# A check explains spam when it fails this much more often on spam than on inbox canaries.
EXPLAINS = 0.2


@dataclass(frozen=True, slots=True)
class AuthCount:
    route: str
    recipient: str
    verdict: Verdict  # inbox, spam or late
    spf: str  # the receiver's result, lower case; "" when it wrote none
    dkim: str
    dmarc: str
    n: int


@lru_cache(maxsize=4096)
def results_of_text(auth: str | None) -> tuple[str, str, str]:
    """results_of for the JSON text as stored."""
    return results_of(json.loads(auth) if auth else None)


def results_of(auth: Mapping[str, Any] | None) -> tuple[str, str, str]:
    """(spf, dkim, dmarc) of a stored Authentication-Results (monitor.core.receipt.auth_json);
    "" for a check the receiver wrote nothing about."""
    parsed = receipt_from_json(auth, None, None).auth if auth else None
    found = auth_verdicts(parsed)
    return found.get("spf", ""), found.get("dkim", ""), found.get("dmarc", "")


@dataclass(frozen=True)
class AuthRates:
    """Of one provider's or sending account's sampled canaries."""

    name: str
    canaries: int
    passed: Mapping[str, int] = field(default_factory=dict)
    recorded: Mapping[str, int] = field(default_factory=dict)

    def rate(self, check: str) -> float | None:
        seen = self.recorded.get(check, 0)
        return self.passed.get(check, 0) / seen if seen else None


@dataclass(frozen=True)
class SpamCause:
    """The check that fails most often on the spam canaries, compared with the inbox ones."""

    check: str
    spam: int  # spam canaries sampled with a result for this check
    spam_failed: float  # share of them failing it
    inbox_failed: float | None  # the same share among the inbox canaries

    @property
    def text(self) -> str:
        inbox = (
            f" (of inbox canaries: {percent(self.inbox_failed)})"
            if self.inbox_failed is not None
            else ""
        )
        return f"{self.check.upper()} fails on {percent(self.spam_failed)} of those{inbox}"


@dataclass(frozen=True)
class AuthReport:
    providers: tuple[AuthRates, ...] = ()
    senders: tuple[AuthRates, ...] = ()
    causes: Mapping[str, SpamCause] = field(default_factory=dict)  # by provider
    sample: int = SAMPLE

    @property
    def recorded(self) -> bool:
        return any(r.recorded for r in self.providers)


def _check_values(count: AuthCount) -> dict[str, str]:
    return {"spf": count.spf, "dkim": count.dkim, "dmarc": count.dmarc}


def rates_by(counts: Iterable[AuthCount], key: Callable[[AuthCount], str]) -> list[AuthRates]:
    canaries: dict[str, int] = defaultdict(int)
    passed: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    recorded: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for count in counts:
        name = key(count)
        canaries[name] += count.n
        for check, result in _check_values(count).items():
            if result:
                recorded[name][check] += count.n
                passed[name][check] += count.n if result == "pass" else 0
    return [
        AuthRates(name, canaries[name], dict(passed[name]), dict(recorded[name]))
        for name in sorted(canaries)
    ]


def spam_cause(counts: Iterable[AuthCount]) -> SpamCause | None:
    """The check whose failures set the spam canaries apart from the inbox ones, if any."""
    failed: dict[tuple[Verdict, str], int] = defaultdict(int)
    seen: dict[tuple[Verdict, str], int] = defaultdict(int)
    for count in counts:
        for check, result in _check_values(count).items():
            if result:
                seen[(count.verdict, check)] += count.n
                failed[(count.verdict, check)] += 0 if result == "pass" else count.n
    best: SpamCause | None = None
    for check in CHECKS:
        spam = seen[(Verdict.SPAM, check)]
        if not spam:
            continue
        share = failed[(Verdict.SPAM, check)] / spam
        inbox_seen = seen[(Verdict.INBOX, check)]
        inbox = failed[(Verdict.INBOX, check)] / inbox_seen if inbox_seen else None
        if share - (inbox or 0.0) < EXPLAINS:
            continue
        if best is None or share - (inbox or 0.0) > best.spam_failed - (best.inbox_failed or 0):
            best = SpamCause(check, spam, share, inbox)
    return best


def auth_report(
    counts: Iterable[AuthCount],
    provider_of: Callable[[str], str],
    sender_of: Callable[[str], str],
    order: Sequence[str] = (),
) -> AuthReport:
    """`provider_of(recipient)`, `sender_of(route)`: names as the report shows them;
    providers in `order` (the placement table's, worst first), others after them."""
    rows = list(counts)
    by_provider: dict[str, list[AuthCount]] = defaultdict(list)
    for row in rows:
        by_provider[provider_of(row.recipient)].append(row)
    causes = {name: cause for name, own in by_provider.items() if (cause := spam_cause(own))}
    return AuthReport(
        providers=tuple(
            sorted(
                rates_by(rows, lambda c: provider_of(c.recipient)),
                key=lambda r: order.index(r.name) if r.name in order else len(order),
            )
        ),
        senders=tuple(rates_by(rows, lambda c: sender_of(c.route))),
        causes=causes,
    )
