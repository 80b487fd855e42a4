"""The report's "what to fix": a few sentences derived from its numbers, worst first.

Each rule looks at one kind of trouble (nothing recorded, a silent mailbox, spam placement
with the DMARC results the receivers wrote, refusals, lost canaries, slow delivery, a drop
against the previous period, alerts still firing, DNS and blocklist findings) and says what
it saw and where to look. Thresholds keep single accidents out of the share-based rules (a
share and at least two canaries); a refusal that is not transient counts even once: a wrong
password seen once is still a wrong password.

Order: severity first, then size (canaries concerned), and only then the limit, so a rare
permanent failure is never pushed out by a frequent transient one. Refusals are grouped by
cause (verdict, failure, codes) and sending account, naming how many mailboxes they hit
rather than listing them.
"""

from __future__ import annotations

from collections import defaultdict

from monitor.core.durations import format_duration
from monitor.core.models import Verdict
from monitor.dnscheck.policy import FAIL, WARN
from monitor.reports.document import FailureGroup, Fix, PairReport, Report
from monitor.reports.model import Tally
from monitor.templates.filters import local_time, percent, plural

SEVERITIES = ("high", "medium", "low")
SPAM_SHARE = 0.02  # of a provider's canaries; from SPAM_HIGH on it is the first thing to fix
SPAM_HIGH = 0.05
LOST_SHARE = 0.05  # missing or late, of a mailbox's canaries
DROP = 0.05  # inbox placement fallen by this much (5 percentage points)
LIMIT = 10


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
    found += _dns(report)
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


def _spammed(tally: Tally) -> bool:
    rate = tally.rate(Verdict.SPAM)
    return tally.count(Verdict.SPAM) >= 2 and rate is not None and rate >= SPAM_SHARE


def _spam(report: Report) -> list[tuple[Fix, int]]:
    found = []
    for provider in report.providers:
        tally, failed = provider.summary.tally, provider.summary.dmarc_failed
        spam, rate = tally.count(Verdict.SPAM), tally.rate(Verdict.SPAM) or 0.0
        if _spammed(tally):
            text = f"{provider.provider} placed {percent(rate)} of {tally.total} canaries in spam"
            before = provider.summary.previous.rate(Verdict.SPAM)
            if before is not None:
                text += f" (was {percent(before)})"
            cause = report.auth.causes.get(provider.provider)
            if failed.get(Verdict.SPAM):
                text += f"; DMARC failed on {failed[Verdict.SPAM]} of these {spam}"
                remedy = (
                    "Make SPF or DKIM pass aligned with the From domain and check the DMARC "
                    "record (mailcanary dns ACCOUNT for the sending account)."
                )
            elif cause is not None:
                text += f"; {cause.text}"
                remedy = (
                    f"Make {cause.check.upper()} pass for the sending domain: "
                    "mailcanary dns ACCOUNT shows its records."
                )
            else:
                remedy = (
                    "Read the spam-filter headers of a recent canary (mailcanary history "
                    "--json) and the sender's DNS posture (mailcanary dns ACCOUNT)."
                )
            severity = "high" if rate >= SPAM_HIGH else "medium"
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
    """Refusals by cause and by whose they are, each summed over the mailboxes it hit: a
    send failure is the sending account's, a check failure the watched mailbox's."""
    groups: dict[tuple[object, ...], list[FailureGroup]] = defaultdict(list)
    for group in report.failures:
        f = group.failure
        sending = f.verdict is Verdict.SEND_FAILED
        whose = report.sender_of(f.route) if sending else f.recipient
        groups[(f.verdict, f.kind, f.code, f.enhanced, whose)].append(group)
    found = []
    for (verdict, kind, code, enhanced, whose), same in groups.items():
        count = sum(g.failure.count for g in same)
        transient = all(g.failure.transient for g in same)
        if transient and count < 2:
            continue  # one deferral is the mail system working as designed
        reply = " ".join(str(part) for part in (code, enhanced) if part) or kind
        if verdict is Verdict.SEND_FAILED:
            mailboxes = {g.failure.recipient for g in same}
            where = (
                f"{plural(len(mailboxes), 'mailbox')}" if len(mailboxes) > 1 else mailboxes.pop()
            )
            text = f"{plural(count, 'canary')} from {whose} could not be sent ({reply}) to {where}"
        else:
            text = f"{plural(count, 'canary')} could not be checked ({reply}) in mailbox {whose}"
        text += f": {same[0].explanation}"
        found.append((Fix("medium" if transient else "high", text, same[0].remedy), count))
    return found


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
        if _spammed(provider.summary.tally):
            continue  # the spam fix says it already, with its cause
        trend = provider.summary.trends()["inbox_rate"]
        if trend.delta is not None and trend.delta <= -DROP:
            text = (
                f"{provider.provider}: inbox placement fell from {percent(trend.before)} to "
                f"{percent(trend.now)} since the previous period."
            )
            remedy = "Look for what changed: DNS records, the sending IP, the canary's route."
            found.append((Fix("medium", text, remedy), provider.summary.tally.total))
    return found


def _firing(report: Report) -> list[tuple[Fix, int]]:
    found = []
    for incident in report.incidents or ():
        if incident.resolved_at is None:
            since = local_time(incident.fired_at, report.period.timezone)
            text = (
                f"Alert still firing: {incident.kind} on {incident.route} → "
                f"{incident.recipient} since {since}."
            )
            found.append((Fix("high", text, "mailcanary alerts shows its evidence."), 0))
    return found


def _dns(report: Report) -> list[tuple[Fix, int]]:
    """A failing DNS check or a blocklist listing is high; a warning low."""
    found = []
    for posture in report.dns or ():
        for finding in posture.findings:
            if finding.status not in (FAIL, WARN):
                continue
            severity = "high" if finding.status == FAIL else "low"
            text = f"{posture.account}: {finding.check} of {finding.target}: {finding.detail}."
            found.append((Fix(severity, text, finding.remedy or None), 0))
    return found
