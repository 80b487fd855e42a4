"""The report's "what to fix": a few sentences derived from its numbers, worst first.

Each rule looks at one kind of trouble (nothing recorded, a silent mailbox, spam placement
with the DMARC results the receivers wrote, refusals, lost canaries, slow delivery, a drop
against the previous period, alerts still firing) and says what it saw and where to look.
Thresholds keep single accidents out: a rule needs a share and at least two canaries.
"""

from __future__ import annotations

from collections import defaultdict

from monitor.core.durations import format_duration
from monitor.core.models import Verdict
from monitor.reports.document import FailureGroup, Fix, PairReport, Report

SEVERITIES = ("high", "medium", "low")
SPAM_SHARE = 0.10  # of a provider's canaries
LOST_SHARE = 0.05  # missing or late, of a mailbox's canaries
DROP = 0.05  # inbox placement fallen by this much (5 percentage points)
LIMIT = 8


def pct(rate: float | None) -> str:
    return "–" if rate is None else f"{rate * 100:.0f}%"


def what_to_fix(report: Report, *, slow_after: float, limit: int = LIMIT) -> list[Fix]:
    if report.total.tally.total == 0:
        sent_by = f" sent by {', '.join(report.only)}" if report.only else ""
        return [
            Fix(
                "high",
                f"No canaries{sent_by} were recorded in {report.period.label}.",
                "Check that the daemon runs and has routes: mailcanary status.",
            )
        ]
    found: list[tuple[Fix, int]] = []  # with a weight: more canaries concerned, earlier
    found += _silent(report)
    found += _spam(report)
    found += _failures(report)
    for pair in report.pairs:
        found += _lost(pair) + _slow(pair, slow_after)
    found += _drops(report)
    found += _firing(report)
    found.sort(key=lambda item: (SEVERITIES.index(item[0].severity), -item[1]))
    return [fix for fix, _ in found[:limit]]


def _name(pair: PairReport) -> str:
    return f"{pair.route} → {pair.mailbox.address or pair.recipient}"


def _silent(report: Report) -> list[tuple[Fix, int]]:
    return [
        (
            Fix(
                "medium",
                f"{_name(pair)}: no canaries in this period.",
                "If the route is not new, see its last canary in mailcanary status.",
            ),
            0,
        )
        for pair in report.pairs
        if pair.configured and pair.summary.tally.total == 0
    ]


def _spam(report: Report) -> list[tuple[Fix, int]]:
    found = []
    for provider in report.providers:
        tally, failed = provider.summary.tally, provider.summary.dmarc_failed
        spam, rate = tally.count(Verdict.SPAM), tally.rate(Verdict.SPAM)
        if spam >= 2 and rate is not None and rate >= SPAM_SHARE:
            text = f"{provider.provider} placed {pct(rate)} of {tally.total} canaries in spam"
            if failed.get(Verdict.SPAM):
                text += f"; DMARC failed on {failed[Verdict.SPAM]} of these {spam}"
                remedy = (
                    "Make SPF or DKIM pass aligned with the From domain and check the DMARC "
                    "record (mailcanary dns ACCOUNT for the sending account)."
                )
            else:
                remedy = (
                    "Read the spam-filter headers of a recent canary (mailcanary history "
                    "--json) and the sender's DNS posture (mailcanary dns ACCOUNT)."
                )
            severity = "high" if rate >= 0.3 else "medium"
            found.append((Fix(severity, text + ".", remedy), spam))
        inbox_failed = failed.get(Verdict.INBOX, 0)
        if inbox_failed >= 2:
            text = (
                f"DMARC failed on {inbox_failed} canaries {provider.provider} still put in "
                "the inbox; a stricter policy or filter will move them to spam."
            )
            found.append((Fix("low", text, "Align SPF or DKIM with the From domain."), 0))
    return found


def _failures(report: Report) -> list[tuple[Fix, int]]:
    """The three biggest refusals, each summed over the mailboxes it hit."""
    groups: dict[tuple[object, ...], list[FailureGroup]] = defaultdict(list)
    for group in report.failures:
        f = group.failure
        groups[(f.verdict, f.kind, f.code, f.enhanced)].append(group)
    found = []
    for same in groups.values():
        first = same[0].failure
        count = sum(g.failure.count for g in same)
        what = (
            "could not be sent" if first.verdict is Verdict.SEND_FAILED else "could not be checked"
        )
        reply = " ".join(str(part) for part in (first.code, first.enhanced) if part)
        where = _some(sorted({f"{g.failure.route} → {g.failure.recipient}" for g in same}))
        text = f"{count} canaries {what} ({reply or first.kind}) on {where}: {same[0].explanation}"
        severity = "medium" if first.transient else "high"
        found.append((Fix(severity, text, same[0].remedy), count))
    found.sort(key=lambda item: -item[1])
    return found[:3]


def _some(names: list[str], shown: int = 3) -> str:
    if len(names) <= shown + 1:
        return ", ".join(names)
    return f"{', '.join(names[:shown])} and {len(names) - shown} more"


def _lost(pair: PairReport) -> list[tuple[Fix, int]]:
    tally = pair.summary.tally
    lost = tally.count(Verdict.MISSING, Verdict.LATE)
    rate = tally.rate(Verdict.MISSING, Verdict.LATE)
    if lost < 2 or rate is None or rate < LOST_SHARE:
        return []
    late = tally.count(Verdict.LATE)
    text = f"{_name(pair)}: {lost} of {tally.total} canaries did not arrive in time"
    text += f" ({late} came late)." if late else "."
    remedy = (
        "Check the mailbox's filters, quarantine and forwarding rules and the sender's "
        f"outgoing queue; mailcanary history --route {pair.route}."
    )
    return [(Fix("high" if rate >= 0.2 else "medium", text, remedy), lost)]


def _slow(pair: PairReport, slow_after: float) -> list[tuple[Fix, int]]:
    delivery = pair.summary.delivery
    p95, p50 = delivery.percentile(0.95), delivery.percentile(0.5)
    if delivery.n < 2 or p95 is None or p50 is None or p95 <= slow_after:
        return []
    text = (
        f"Delivery to {_name(pair)} is slow: p95 {format_duration(p95)} "
        f"(p50 {format_duration(p50)})."
    )
    remedy = (
        "Greylisting, a throttled sender or a queue backlog: compare the Received hops of a "
        "slow canary (mailcanary history --json)."
    )
    return [(Fix("medium", text, remedy), delivery.n)]


def _drops(report: Report) -> list[tuple[Fix, int]]:
    found = []
    for provider in report.providers:
        trend = provider.summary.trends()["inbox_rate"]
        if trend.delta is not None and trend.delta <= -DROP:
            text = (
                f"{provider.provider}: inbox placement fell from {pct(trend.before)} to "
                f"{pct(trend.now)} since the previous period."
            )
            remedy = "Look for what changed: DNS records, the sending IP, the canary's route."
            found.append((Fix("medium", text, remedy), provider.summary.tally.total))
    return found


def _firing(report: Report) -> list[tuple[Fix, int]]:
    found = []
    for incident in report.incidents or ():
        if incident.resolved_at is None:
            since = incident.fired_at.astimezone(report.period.zone)
            text = (
                f"Alert still firing: {incident.kind} on {incident.route} → "
                f"{incident.recipient} since {since:%a %d %b %H:%M}."
            )
            found.append((Fix("high", text, "mailcanary alerts shows its evidence."), 0))
    return found
