"""`mailcanary report`: build a period's report from the store (and the sending accounts'
DNS posture, when asked). Its renderings: text.py, html.py, export.py (JSON, CSV)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from monitor.adapters import posture_log
from monitor.adapters.reportstore import ReportStore
from monitor.adapters.store import Store
from monitor.config.presets import PRESETS
from monitor.config.schema import Account, Config
from monitor.content.judge import REMEDY, Pairing, judge, pairings, sentence
from monitor.core.models import Verdict
from monitor.dnscheck.history import DnsPosture, changes
from monitor.dnscheck.policy import ERROR, Finding
from monitor.dnscheck.run import check_account, sending_domain
from monitor.reports.build import build
from monitor.reports.content import rules_text
from monitor.reports.document import Fix, Mailbox, Pair, Report
from monitor.reports.model import Period


def mailboxes_of(cfg: Config) -> dict[str, Mailbox]:
    """How each account appears in reports: its provider's title, else its mail domain."""
    shown = {}
    for account in cfg.accounts:
        preset = PRESETS.get(account.provider or "")
        provider = preset.title if preset else account.email.rpartition("@")[2].lower()
        shown[account.name] = Mailbox(provider, account.email)
    return shown


def configured_of(cfg: Config) -> list[Pair]:
    return [(route.name, recipient) for route in cfg.routes for recipient in route.recipients]


class UnknownInstance(ValueError):
    """An instance the report was limited to recorded no canaries in either period."""


async def build_report(
    store: Store,
    period: Period,
    *,
    mailboxes: Mapping[str, Mailbox],
    configured: Iterable[Pair],
    now: datetime,
    slow_after: float = 300.0,
    instances: Sequence[str] = (),
    by_instance: bool = False,
    senders: Mapping[str, str] | None = None,
    dns: Sequence[DnsPosture] | None = None,
) -> Report:
    """`instances`: only the canaries these sent (empty: the whole fleet); `by_instance`:
    split each mailbox's line per instance; `senders`: route → sending account."""
    rollup = ReportStore(store.engine)
    only = tuple(dict.fromkeys(instances))
    aggregates = await rollup.aggregates(period, only)
    if only:
        counted = {row.instance for row in aggregates.hours}
        if missing := [name for name in only if name not in counted]:
            known = await rollup.instances(period.previous().start, period.end)
            raise UnknownInstance(
                f"no canaries of {', '.join(missing)} in {period.label} or the period before; "
                f"instances with canaries then: {', '.join(known) or 'none'}"
            )
        # Each slot goes to the instance that claims it first: a configured mailbox these
        # instances did not send to may well have had its canaries from another one.
        configured = ()
    return build(
        period,
        aggregates,
        mailboxes=mailboxes,
        configured=configured,
        now=now,
        slow_after=slow_after,
        split=by_instance,
        only=only,
        senders=senders,
        dns=dns,
    )


async def report_for(
    cfg: Config,
    store: Store,
    period: Period,
    now: datetime,
    *,
    instances: Sequence[str] = (),
    by_instance: bool = False,
    check_dns: bool = False,
) -> Report:
    """The report of `period`, mailboxes named as in `cfg`. The weekly email asks for
    neither `instances` nor `by_instance`: it is the whole fleet's report, the same whichever
    instance claims the week's send. `check_dns`: run `mailcanary dns` for the sending
    accounts now (see dns_posture)."""
    report = await build_report(
        store,
        period,
        mailboxes=mailboxes_of(cfg),
        configured=configured_of(cfg),
        now=now,
        slow_after=cfg.alerts.slow_after,
        instances=instances,
        by_instance=by_instance,
        senders={route.name: route.sender for route in cfg.routes},
        dns=await dns_posture(cfg, period, now) if check_dns else None,
    )
    return with_content_judgement(report, pairings(cfg.routes))


def with_content_judgement(report: Report, pairs: Sequence[Pairing]) -> Report:
    """A plain canary beside a real-message route says whether spam is the content's fault or
    the sender's (#16): said first among the fixes, as the most actionable line, with the
    receiver's top rules on the message when it is the content; both routes' content-filter
    lines carry the judgement and come first in their section, where the reader sees why."""
    spam = {
        (line.route, line.recipient): line.summary.tally.rate(Verdict.SPAM) for line in report.pairs
    }
    found = []
    judged: dict[Pair, tuple[str, str, str]] = {}
    for pair in pairs:
        plain = spam.get((pair.plain_route, pair.recipient))
        message = spam.get((pair.message_route, pair.recipient))
        if (verdict := judge(plain, message)) is None:
            continue
        judged[(pair.message_route, pair.recipient)] = (verdict, "message", pair.plain_route)
        judged[(pair.plain_route, pair.recipient)] = (verdict, "plain", pair.message_route)
        text = sentence(pair, verdict)
        rules = report.content.of(pair.message_route, pair.recipient)
        if verdict == "content" and rules is not None and rules.rules:
            text += f"; its filter's top rules there: {rules_text(rules.rules[:3])}"
        found.append(Fix("high", text, REMEDY[verdict]))
    if not found:
        return report
    lines = []
    for line in report.content.mailboxes:
        if (key := (line.route, line.recipient)) in judged:
            verdict, role, other = judged[key]
            line = replace(line, judgement=verdict, role=role, compared_with=other)
        lines.append(line)
    content = replace(report.content, mailboxes=tuple(sorted(lines, key=lambda m: not m.judgement)))
    return replace(report, fixes=(*found, *report.fixes), content=content)


DNS_TIMEOUT = 60.0


async def dns_posture(cfg: Config, period: Period, now: datetime) -> tuple[DnsPosture, ...]:
    """The sending accounts' DNS and blocklist findings, checked now.

    Run when the report is built rather than read from the daemon's weekly `dns posture`
    log events: those go to the journal, which the report cannot read back reliably (and
    `mailcanary report` runs on machines without the daemon's journal), and the state at
    send time is what the reader can act on. What changed during the period comes from
    the runs kept in the state directory (adapters.posture_log: the daemon's weekly check
    and earlier reports): this run against the newest one from before `period` began.
    Accounts are checked concurrently; one that does not finish within DNS_TIMEOUT gets a
    single `error` finding instead of holding the report up.
    """
    accounts = [cfg.account(name) for name in dict.fromkeys(r.sender for r in cfg.routes)]

    async def one(account: Account) -> DnsPosture:
        try:
            async with asyncio.timeout(DNS_TIMEOUT):
                findings = await check_account(account, cfg.dns)
        except TimeoutError:
            findings = [Finding("resolver", "dns", ERROR, f"no answer within {DNS_TIMEOUT:g}s")]
        except Exception as exc:  # the report matters more than its DNS section
            said = (str(exc).splitlines() or [type(exc).__name__])[0]
            findings = [Finding("resolver", "dns", ERROR, f"not checked: {said}")]
        return DnsPosture(account.name, sending_domain(account), tuple(findings))

    checked = await asyncio.gather(*(one(a) for a in accounts))
    state_dir = cfg.monitor.state_dir
    earlier = await asyncio.to_thread(posture_log.last_before, state_dir, period.start)
    runs = {p.account: p.findings for p in checked if p.findings[0].check != "resolver"}
    await asyncio.to_thread(posture_log.record, state_dir, now, runs)
    return tuple(
        replace(
            p,
            compared_with=earlier[p.account][0],
            changes=changes(earlier[p.account][1], p.findings),
        )
        if p.account in earlier
        else p
        for p in checked
    )
