"""`mailcanary dns ACCOUNT` and the weekly run: the DNS posture of an account's sending domain.

The sending domain is the part of `account.email` after the @. Checked: MX; SPF (walked
through include/redirect, ≤10 lookups, loops, void lookups); DMARC at _dmarc.<domain>, else
at _dmarc.<parent> (the parent stands in for the organizational domain: without a public
suffix list offline, only "drop the first label" is done, and never down to a TLD); DKIM at
<selector>._domainkey.<domain> for each configured selector; and for every address of the
SMTP server: forward-confirmed PTR and a listing on each configured DNSBL zone.

`--json` prints one object per finding and line, with the stable fields
account, domain, check, target, status (ok|warn|fail|error), detail, remedy.
Exit code: 2 any fail, else 3 any lookup impossible, else 1 any warning, else 0.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from monitor.adapters.dns import Dns, DnsError
from monitor.config.load import Config
from monitor.config.schema import Account, DnsSettings
from monitor.dnscheck.policy import (
    ERROR,
    FAIL,
    WARN,
    Finding,
    evaluate_dkim,
    evaluate_dmarc,
    evaluate_dnsbl,
    evaluate_mx,
    evaluate_ptr,
    exit_code,
    is_dmarc,
    ptr_name,
    reverse_name,
)
from monitor.dnscheck.spf import (
    SpfFacts,
    SpfSyntaxError,
    evaluate_spf,
    has_macro,
    is_spf,
    parse_spf,
    spf_lookups,
)

log = structlog.get_logger(__name__)

# Lookups the SPF walk may spend. Each fetched name past the root is one counted lookup, so
# the limit of 10 is crossed long before this bound stops the walk.
SPF_WALK_BUDGET = 30


def sending_domain(account: Account) -> str:
    return account.email.rpartition("@")[2].lower().rstrip(".")


async def check_account(account: Account, dns_settings: DnsSettings) -> list[Finding]:
    """Every finding for the account's domain and SMTP server. When the very first lookup
    shows the resolver itself is unreachable, the single finding `resolver` (error) instead."""
    dns = Dns(dns_settings.nameservers, dns_settings.timeout)
    domain = sending_domain(account)
    try:
        findings = await _mx(dns, domain)
    except DnsError as exc:
        if exc.resolver_down:
            remedy = "check that the resolver runs and answers ([dns] nameservers, timeout)"
            detail = f"cannot look anything up: {exc}"
            return [Finding("resolver", dns.describe(), ERROR, detail, remedy)]
        findings = [_error("mx", domain, exc)]
    parts = [
        _guarded("spf", domain, _spf(dns, domain)),
        _guarded("dmarc", domain, _dmarc(dns, domain)),
        *(
            _guarded("dkim", f"{s}._domainkey.{domain}", _dkim(dns, domain, s))
            for s in account.dkim_selectors
        ),
    ]
    if not account.dkim_selectors:
        parts.append(_no_selectors(domain))
    if account.smtp is not None:
        parts.append(_guarded("smtp_host", account.smtp.host, _server(dns, account, dns_settings)))
    for found in await asyncio.gather(*parts):
        findings += found
    return findings


async def _no_selectors(domain: str) -> list[Finding]:
    remedy = (
        'set dkim_selectors = ["…"] on this account: the s= value of the DKIM-Signature '
        "header in a mail it sent"
    )
    return [Finding("dkim", domain, WARN, "no selectors configured", remedy)]


def _error(check: str, target: str, exc: DnsError) -> Finding:
    return Finding(check, target, ERROR, f"lookup failed: {exc}", "run the check again later")


async def _guarded(check: str, target: str, work: Awaitable[list[Finding]]) -> list[Finding]:
    try:
        return await work
    except DnsError as exc:
        return [_error(check, target, exc)]


async def _mx(dns: Dns, domain: str) -> list[Finding]:
    mx = await dns.mx(domain)
    return [evaluate_mx(domain, mx, [] if mx else await dns.addresses(domain))]


async def fetch_spf(dns: Dns, domain: str) -> SpfFacts:
    """Fetch what `evaluate_spf` needs: the TXT of the domain and of every include/redirect
    target, and whether each a/mx/exists target answers at all."""
    txt: dict[str, list[str]] = {}
    failed: dict[str, str] = {}
    void: set[str] = set()
    probed: set[str] = set()
    queue, budget = [domain], SPF_WALK_BUDGET
    while queue and budget > 0:
        name = queue.pop(0)
        budget -= 1
        try:
            txt[name] = await dns.txt(name)
        except DnsError as exc:
            failed[name] = str(exc)
            continue
        records = [t for t in txt[name] if is_spf(t)]
        try:
            record = parse_spf(records[0]) if len(records) == 1 else None
        except SpfSyntaxError:
            record = None
        for term, target in spf_lookups(record, name) if record else []:
            key = f"{term}:{target}"
            if has_macro(target) or key in probed or term == "ptr" or budget <= 0:
                continue
            probed.add(key)
            if term in ("include", "redirect"):
                queue.append(target)
                continue
            budget -= 1
            lookup: Callable[[str], Awaitable[list[Any]]]
            lookup = {"mx": dns.mx, "a": dns.addresses}.get(term, dns.a)
            try:
                if not await lookup(target):
                    void.add(key)
            except DnsError:
                pass  # unknown is not void; the record itself was found
    return SpfFacts(txt, failed, frozenset(void))


async def _spf(dns: Dns, domain: str) -> list[Finding]:
    return evaluate_spf(domain, await fetch_spf(dns, domain))


async def _dmarc(dns: Dns, domain: str) -> list[Finding]:
    at = f"_dmarc.{domain}"
    txt = await dns.txt(at)
    if not any(map(is_dmarc, txt)) and domain.count(".") >= 2:
        parent = f"_dmarc.{domain.split('.', 1)[1]}"
        inherited = await dns.txt(parent)
        if any(map(is_dmarc, inherited)):
            at, txt = parent, inherited
    return [evaluate_dmarc(domain, at, txt)]


async def _dkim(dns: Dns, domain: str, selector: str) -> list[Finding]:
    return [evaluate_dkim(domain, selector, await dns.txt(f"{selector}._domainkey.{domain}"))]


async def _server(dns: Dns, account: Account, settings: DnsSettings) -> list[Finding]:
    assert account.smtp is not None
    host = account.smtp.host
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        found = {ipaddress.ip_address(a) for a in await dns.addresses(host)}
        addresses = [str(a) for a in sorted(found, key=lambda a: (a.version, a))]
    if not addresses:
        return [Finding("smtp_host", host, FAIL, "no A/AAAA record", "check smtp.host")]
    parts = []
    for address in addresses:
        parts.append(_guarded("ptr", address, _ptr(dns, address)))
        for zone in settings.dnsbl_zones:
            parts.append(_guarded("dnsbl", f"{address} on {zone}", _dnsbl(dns, address, zone)))
    return [finding for found in await asyncio.gather(*parts) for finding in found]


async def _ptr(dns: Dns, address: str) -> list[Finding]:
    names = await dns.ptr(ptr_name(address))
    forward = dns.a if ipaddress.ip_address(address).version == 4 else dns.aaaa
    return [evaluate_ptr(address, names, {name: await forward(name) for name in names})]


async def _dnsbl(dns: Dns, address: str, zone: str) -> list[Finding]:
    name = f"{reverse_name(address)}.{zone}"
    answers = await dns.a(name)
    reason = ""
    if answers:
        try:
            reason = " ".join(await dns.txt(name))
        except DnsError:
            pass  # the listing stands without its explanation
    return [evaluate_dnsbl(address, zone, answers, reason)]


# ---------------------------------------------------------------- what the CLI and the daemon show


def finding_dict(account: Account, finding: Finding) -> dict[str, str]:
    return {
        "account": account.name,
        "domain": sending_domain(account),
        "check": finding.check,
        "target": finding.target,
        "status": str(finding.status),
        "detail": finding.detail,
        "remedy": finding.remedy,
    }


async def log_posture(cfg: Config) -> dict[str, list[Finding]]:
    """The weekly run: every sending account's findings, logged one event each (warn/fail as
    warnings, error as errors, ok as info) and returned by account for the status page."""
    senders = [cfg.account(name) for name in dict.fromkeys(r.sender for r in cfg.routes)]
    posture: dict[str, list[Finding]] = {}
    for account in senders:
        findings = posture[account.name] = await check_account(account, cfg.dns)
        for finding in findings:
            level = {"ok": log.info, "error": log.error}.get(finding.status, log.warning)
            level("dns posture", **finding_dict(account, finding))
        log.info("dns posture checked", account=account.name, exit_code=exit_code(findings))
    return posture
