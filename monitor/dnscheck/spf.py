"""SPF judged: parse a record, say what to look up next, judge the whole walk.

The walk needs lookups between steps, so it is split: `parse_spf` and `spf_lookups` tell the
fetcher what to look up next, `evaluate_spf` judges everything fetched (`SpfFacts`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from monitor.dnscheck.policy import ERROR, FAIL, OK, WARN, Finding, Issue, judge

SPF_LOOKUP_LIMIT = 10  # RFC 7208 §4.6.4: more is a permerror
SPF_VOID_LIMIT = 2

_MECHANISMS = {"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"}
_LOOKUP_TERMS = ("include", "a", "mx", "ptr", "exists")
_MODIFIER = re.compile(r"([A-Za-z][A-Za-z0-9_.-]*)=(.*)")
_TERM = re.compile(r"([+~?-]?)([A-Za-z0-9]+)(?:([:/])(.*))?")
_DOMAIN_CIDR = re.compile(r"([^/]*)(?:/\d+)?(?://\d+)?")


class SpfSyntaxError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class SpfTerm:
    qualifier: str  # + - ~ ?
    name: str  # mechanism, lower case
    value: str  # domain-spec or network, "/24" for a bare CIDR; "" when absent


@dataclass(frozen=True, slots=True)
class SpfRecord:
    terms: tuple[SpfTerm, ...]
    redirect: str | None = None

    @property
    def all(self) -> SpfTerm | None:
        return next((t for t in self.terms if t.name == "all"), None)


def is_spf(text: str) -> bool:
    return text.lower() == "v=spf1" or text.lower().startswith("v=spf1 ")


def parse_spf(text: str) -> SpfRecord:
    if not is_spf(text):
        raise SpfSyntaxError("does not start with v=spf1")
    terms: list[SpfTerm] = []
    redirect: str | None = None
    for word in text.split()[1:]:
        if modifier := _MODIFIER.fullmatch(word):
            if modifier[1].lower() == "redirect":
                if redirect is not None:
                    raise SpfSyntaxError("redirect= given twice")
                redirect = modifier[2]
            continue  # exp= and unknown modifiers do not change the verdicts here
        parts = _TERM.fullmatch(word)
        name = parts[2].lower() if parts else ""
        if parts is None or name not in _MECHANISMS:
            raise SpfSyntaxError(f'unknown mechanism "{word}"')
        value = parts[4] if parts[3] == ":" else f"/{parts[4]}" if parts[3] else ""
        if name in ("include", "exists") and not value:
            raise SpfSyntaxError(f'"{word}" needs a domain')
        if name in ("a", "mx") and not _DOMAIN_CIDR.fullmatch(value):
            raise SpfSyntaxError(f'"{word}": bad domain or prefix length')
        if name == "all" and value:
            raise SpfSyntaxError(f'"{word}": all takes no value')
        if name in ("ip4", "ip6"):
            try:
                network = ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise SpfSyntaxError(f'"{word}": not an address or network') from None
            if network.version != int(name[2]):
                raise SpfSyntaxError(f'"{word}": wrong address family')
        terms.append(SpfTerm(parts[1] or "+", name, value))
    return SpfRecord(tuple(terms), redirect)


def spf_lookups(record: SpfRecord, domain: str) -> list[tuple[str, str]]:
    """(term, target domain) of every term that costs a DNS lookup, in evaluation order.
    A redirect counts only when there is no `all` (RFC 7208 §6.1)."""
    found = []
    for term in record.terms:
        if term.name in _LOOKUP_TERMS:
            spec = _DOMAIN_CIDR.fullmatch(term.value) if term.name in ("a", "mx") else None
            found.append((term.name, (spec[1] if spec else term.value) or domain))
    if record.redirect and record.all is None:
        found.append(("redirect", record.redirect))
    return [(name, target.lower().rstrip(".")) for name, target in found]


def has_macro(target: str) -> bool:
    return "%" in target  # expanded per sender at receive time: cannot be followed here


@dataclass(frozen=True)
class SpfFacts:
    """What the fetcher found: TXT strings by domain, failed lookups (name → reason), and the
    "a:x" / "mx:x" / "exists:x" terms whose lookup answered nothing (void lookups)."""

    txt: Mapping[str, list[str]] = field(default_factory=dict)
    failed: Mapping[str, str] = field(default_factory=dict)
    void: frozenset[str] = frozenset()


@dataclass
class _Walk:
    facts: SpfFacts
    lookups: int = 0
    crossed_at: str = ""
    final_all: SpfTerm | None = None  # the `all` ending evaluation (own, or via redirect)
    voids: list[str] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)  # for the spf finding
    loops: list[Issue] = field(default_factory=list)  # for spf_lookups


_BROKEN = "fix the record: receivers treat a broken SPF record as a permanent error"


def _visit(walk: _Walk, domain: str, chain: tuple[str, ...], via: str, top: bool) -> bool:
    """Count `domain`'s lookups and walk into its includes; `top`: its `all` decides."""
    if domain in chain:
        path = " → ".join((*chain, domain))
        walk.loops.append((FAIL, f"include loop {path}", "remove the include that loops back"))
        return False
    if domain in walk.facts.failed:
        walk.issues.append((ERROR, f"{via}: {walk.facts.failed[domain]}", ""))
        return False
    if domain not in walk.facts.txt:
        return False  # not fetched: past the fetcher's bound, which is past the limit
    records = [t for t in walk.facts.txt[domain] if is_spf(t)]
    try:
        if len(records) != 1:
            raise SpfSyntaxError(f"{len(records) or 'no'} SPF records")
        record = parse_spf(records[0])
    except SpfSyntaxError as exc:
        remedy = _BROKEN if chain else "publish exactly one valid TXT record starting v=spf1"
        walk.issues.append((FAIL, f"{via}: {exc}", remedy))
        return False
    if top:
        walk.final_all = record.all
    for term, target in spf_lookups(record, domain):
        walk.lookups += 1
        if walk.lookups == SPF_LOOKUP_LIMIT + 1:
            walk.crossed_at = f"{term}:{target} in {domain}"
        if term == "ptr":
            walk.issues.append((WARN, f"{domain}: ptr mechanism", "drop ptr (RFC 7208 §5.5)"))
        if has_macro(target):
            continue
        if term in ("include", "redirect"):
            _visit(walk, target, (*chain, domain), f"{term}:{target}", top and term == "redirect")
        elif f"{term}:{target}" in walk.facts.void:
            walk.voids.append(f"{term}:{target}")
    return True


_ALL = {
    "-": (OK, "-all: mail from servers not listed fails SPF", ""),
    "~": (OK, "~all: mail from servers not listed soft-fails SPF", ""),
    "?": (WARN, "?all: neutral, says nothing about servers not listed",
          "end the record with -all (or ~all while you still collect senders)"),
    "+": (FAIL, "+all: every server on the internet passes SPF for this domain",
          "replace +all with -all (or ~all): +all makes SPF worthless"),
    "": (WARN, "no all: servers not listed get neutral, as with ?all",
         "end the record with -all (or ~all)"),
}  # fmt: skip


def evaluate_spf(domain: str, facts: SpfFacts) -> list[Finding]:
    """Findings spf (record present and sound), spf_all, spf_lookups (limit, loops, voids);
    only spf when the domain's own record is missing or broken."""
    walk = _Walk(facts)
    found = _visit(walk, domain, (), domain, top=True)
    findings = [judge("spf", domain, walk.issues, "one valid v=spf1 record")]
    if not found:
        return findings
    qualifier = walk.final_all.qualifier if walk.final_all else ""
    findings.append(Finding("spf_all", domain, *_ALL[qualifier]))
    issues = list(walk.loops)
    if walk.lookups > SPF_LOOKUP_LIMIT:
        issues.append((
            FAIL, f"{walk.lookups} DNS lookups, over the limit of {SPF_LOOKUP_LIMIT} (crossed "
            f"at {walk.crossed_at}): receivers return permerror",
            "flatten nested includes (replace some with ip4:/ip6:) or drop unused senders",
        ))  # fmt: skip
    if walk.voids:
        status = FAIL if len(walk.voids) > SPF_VOID_LIMIT else WARN
        detail = f"{len(walk.voids)} lookups answered nothing ({', '.join(walk.voids)})"
        more = f", over {SPF_VOID_LIMIT}: permerror" if status is FAIL else ""
        issues.append((status, detail + more, "remove terms naming domains without records"))
    fine = f"{walk.lookups} of {SPF_LOOKUP_LIMIT} DNS lookups"
    return [*findings, judge("spf_lookups", domain, issues, fine)]
