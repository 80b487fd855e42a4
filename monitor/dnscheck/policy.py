"""What a sending domain's DNS says about it, judged: MX, SPF, DMARC, DKIM, PTR, DNSBL.

Pure: every function takes records already fetched (TXT strings joined per RFC 7208 §3.3,
names lower case without the final dot) and returns `Finding`s. SPF, which needs
lookups between steps, lives in `monitor.dnscheck.spf`.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    ERROR = "error"  # could not be looked up: nothing is known


OK, WARN, FAIL, ERROR = Status.OK, Status.WARN, Status.FAIL, Status.ERROR
_RANK = {OK: 0, WARN: 1, ERROR: 2, FAIL: 3}
Issue = tuple[Status, str, str]  # (status, detail, remedy)


@dataclass(frozen=True, slots=True)
class Finding:
    check: str  # mx, spf, spf_all, spf_lookups, dmarc, dkim, ptr, dnsbl, smtp_host, resolver
    target: str  # the name or address looked at
    status: Status
    detail: str
    remedy: str = ""


def finding_json(finding: Finding) -> dict[str, str]:
    """The stable fields of `mailcanary dns --json`, the report's JSON and the kept runs."""
    return {
        "check": finding.check,
        "target": finding.target,
        "status": str(finding.status),
        "detail": finding.detail,
        "remedy": finding.remedy,
    }


def exit_code(findings: Iterable[Finding]) -> int:
    """Nagios style: 2 any fail, else 3 any lookup impossible, else 1 any warning, else 0."""
    found = {f.status for f in findings}
    return next((code for s, code in ((FAIL, 2), (ERROR, 3), (WARN, 1)) if s in found), 0)


def judge(check: str, target: str, issues: list[Issue], fine: str, lead: str = "") -> Finding:
    """One finding from several issues: the worst status, every detail and remedy."""
    if not issues:
        return Finding(check, target, OK, fine)
    worst = max((status for status, _, _ in issues), key=_RANK.__getitem__)
    remedies = " ".join(dict.fromkeys(remedy for _, _, remedy in issues if remedy))
    return Finding(check, target, worst, lead + "; ".join(d for _, d, _ in issues), remedies)


# ---------------------------------------------------------------- MX


def evaluate_mx(domain: str, mx: list[tuple[int, str]], addresses: list[str]) -> Finding:
    publish = "publish MX records so that replies and bounces reach a mail server"
    if len(mx) == 1 and mx[0][1] in ("", "."):
        issue = (FAIL, "null MX: the domain says it receives no mail (RFC 7505)", publish)
    elif mx:
        return Finding("mx", domain, OK, ", ".join(f"{p} {host}" for p, host in sorted(mx)))
    elif addresses:
        issue = (WARN, "no MX; mail to the domain goes to its A/AAAA address", publish)
    else:
        issue = (FAIL, "no MX and no address: the domain cannot receive mail", publish)
    return Finding("mx", domain, *issue)


# ---------------------------------------------------------------- DMARC and DKIM


def parse_tags(text: str) -> dict[str, str]:
    """`k=v; k=v` (DMARC RFC 7489 §6.3, DKIM RFC 6376 §3.2): keys lower case, spaces trimmed."""
    tags: dict[str, str] = {}
    for part in text.split(";"):
        key, eq, value = part.partition("=")
        if eq and key.strip():
            tags.setdefault(key.strip().lower(), value.strip())
    return tags


def is_dmarc(text: str) -> bool:
    return re.match(r"v\s*=\s*DMARC1\s*(;|$)", text) is not None


def evaluate_dmarc(domain: str, at: str, txt: list[str]) -> Finding:
    """`txt` as found at `at`: `_dmarc.<domain>`, or `_dmarc.<parent>` when that has none."""
    records = [t for t in txt if is_dmarc(t)]
    if len(records) != 1:
        what = (
            f"{len(records)} DMARC records at {at}: all ignored"
            if records
            else f"no DMARC record at {at}"
        )
        return Finding(
            "dmarc", domain, FAIL, what,
            f'publish one TXT _dmarc.{domain} "v=DMARC1; p=none; rua=mailto:…", tighten p '
            "later; Gmail, Yahoo and Microsoft require DMARC of bulk senders",
        )  # fmt: skip
    tags = parse_tags(records[0])
    inherited = at != f"_dmarc.{domain}"
    key = "sp" if inherited and "sp" in tags else "p"  # a parent's sp= covers its subdomains
    policy = tags.get(key, "").lower()
    issues: list[Issue] = []
    if policy not in ("none", "quarantine", "reject"):
        issues.append((FAIL, f"{key}= missing or invalid", "set p=none, quarantine or reject"))
    elif policy == "none":
        issues.append((
            WARN, f"{key}=none: monitoring only, spoofed mail is still delivered",
            "read the rua reports, then move to p=quarantine and later p=reject",
        ))  # fmt: skip
    rua = [uri.strip() for uri in tags.get("rua", "").split(",") if uri.strip()]
    if not all(uri.lower().startswith("mailto:") for uri in rua) or not rua:
        issues.append((WARN, "no rua=mailto: no aggregate reports", "add rua=mailto:…"))
    if tags.get("pct", "100") != "100":
        issues.append((WARN, f"pct={tags['pct']}: policy covers part of the mail", "pct=100"))
    shown = ", ".join(f"{k}={tags[k]}" for k in ("p", "sp", "rua", "pct", "adkim") if k in tags)
    shown += f" (from {at})" if inherited else ""
    return judge("dmarc", domain, issues, shown, lead=f"{shown}: ")


def evaluate_dkim(domain: str, selector: str, txt: list[str]) -> Finding:
    name = f"{selector}._domainkey.{domain}"
    keys = [tags for tags in map(parse_tags, txt) if "p" in tags]
    if len(keys) != 1:
        what = f"{len(keys)} key records" if keys else "no DKIM key published"
        return Finding(
            "dkim", name, FAIL, what, "check the selector (s= in the DKIM-Signature of a sent "
            "mail) and publish exactly one key record for it",
        )  # fmt: skip
    tags = keys[0]
    kind = tags.get("k", "rsa").lower()
    key = re.sub(r"\s+", "", tags["p"])
    bits: int | None = None
    issues: list[Issue] = []
    if tags.get("v", "DKIM1") != "DKIM1":
        issues.append((FAIL, f"v={tags['v']}, not DKIM1", "start the record with v=DKIM1"))
    if not key:
        issues.append((FAIL, "key revoked (empty p=)", "sign with a selector that has a key"))
    elif kind not in ("rsa", "ed25519"):
        issues.append((FAIL, f"unknown key type k={kind}", "k=rsa or k=ed25519"))
    else:
        try:
            der = base64.b64decode(key, validate=True)
        except (binascii.Error, ValueError):
            der = b""
        bits = rsa_bits(der) if kind == "rsa" else (256 if len(der) == 32 else None)
        if bits is None:
            issues.append((FAIL, "p= is not a public key", "publish the key the server signs with"))
        elif kind == "rsa" and bits < 2048:
            status = FAIL if bits < 1024 else WARN  # receivers ignore keys below 1024 bits
            issues.append((status, f"{bits}-bit RSA key is weak", "rotate to a 2048-bit key"))
    if "y" in tags.get("t", "").lower().split(":"):
        issues.append((WARN, "t=y: testing mode", "drop t=y once signatures verify"))
    return judge("dkim", name, issues, f"k={kind}, {bits}-bit key")


def rsa_bits(der: bytes) -> int | None:
    """Modulus size of a DER SubjectPublicKeyInfo (or bare PKCS#1) RSA key; None if not one."""

    def item(at: int) -> tuple[int, int, int]:  # (tag, start of value, end of value)
        tag, length, at = der[at], der[at + 1], at + 2
        if length & 0x80:
            count = length & 0x7F
            length, at = int.from_bytes(der[at : at + count], "big"), at + count
        if at + length > len(der):
            raise IndexError("truncated")
        return tag, at, at + length

    try:
        tag, start, _ = item(0)
        tag_inner, inner, end = item(start) if tag == 0x30 else (0, 0, 0)
        if tag_inner == 0x30:  # SPKI: algorithm, then a BIT STRING holding the PKCS#1 key
            tag, bits_at, _ = item(end)
            tag, start, _ = item(bits_at + 1) if tag == 0x03 else (0, 0, 0)
            tag_inner, inner, end = item(start) if tag == 0x30 else (0, 0, 0)
        modulus = der[inner:end].lstrip(b"\0") if tag_inner == 0x02 else b""
    except IndexError:
        return None
    return (len(modulus) - 1) * 8 + modulus[0].bit_length() if modulus else None


# ---------------------------------------------------------------- PTR and DNSBL


def ptr_name(address: str) -> str:
    return ipaddress.ip_address(address).reverse_pointer


def reverse_name(address: str) -> str:
    """The address as DNSBLs want it: 2.0.0.127 for 127.0.0.2; 32 nibbles, reversed, for IPv6."""
    return ptr_name(address).rsplit(".", 2)[0]


def evaluate_ptr(address: str, names: list[str], forward: Mapping[str, list[str]]) -> Finding:
    """`forward`: the addresses each PTR name resolves to (same family as `address`)."""
    wanted = ipaddress.ip_address(address)
    for name in names:
        if any(ipaddress.ip_address(a) == wanted for a in forward.get(name, [])):
            return Finding("ptr", address, OK, f"{address} → {name} → {address}")
    if names:
        return Finding(
            "ptr", address, FAIL, f"PTR {', '.join(names)} does not resolve back to {address}",
            "give the PTR name an A/AAAA record for this address (forward-confirmed rDNS)",
        )  # fmt: skip
    return Finding(
        "ptr", address, FAIL, "no reverse DNS (PTR)",
        "ask whoever owns the address (hosting provider, ISP) to set its PTR to the server's "
        "name; Gmail and others refuse mail without one (4.7.23, 5.7.25)",
    )  # fmt: skip


# What the answer of a listing means, per zone, from the lists' own documentation.
_RETURN_CODES = {
    "zen.spamhaus.org": {
        "127.0.0.2": "SBL, spam source",
        "127.0.0.3": "SBL CSS, snowshoe spam",
        "127.0.0.4": "XBL, exploited or infected host",
        "127.0.0.9": "DROP, hijacked network",
        "127.0.0.10": "PBL, end-user range per its ISP: should not send directly",
        "127.0.0.11": "PBL, end-user range: should not send directly",
    },
}
_REFUSALS = {
    "127.255.255.252": "typing error in the DNSBL name",
    "127.255.255.254": "queries through public or open resolvers are refused",
    "127.255.255.255": "too many queries (over the free limit)",
}
_LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
_REFUSED = ipaddress.ip_network("127.255.255.0/24")


def evaluate_dnsbl(address: str, zone: str, answers: list[str], reason: str = "") -> Finding:
    """`answers`: the A records at <reverse_name>.<zone> ([] for NXDOMAIN: not listed);
    `reason`: its TXT, if any. 127.255.255.x is the list refusing to answer, not a listing."""
    target = f"{address} on {zone}"
    codes = [ipaddress.ip_address(a) for a in answers]
    refused = [str(c) for c in codes if c in _REFUSED]
    if not codes:
        return Finding("dnsbl", target, OK, "not listed")
    if refused:
        return Finding(
            "dnsbl", target, WARN, f"not known: query refused ({refused[0]}: "
            f"{_REFUSALS.get(refused[0], 'refused')}); this is not a listing",
            "query DNSBLs through your own recursive resolver ([dns] nameservers): public "
            "resolvers such as 8.8.8.8 or 1.1.1.1 are refused",
        )  # fmt: skip
    if not all(c in _LOOPBACK for c in codes) or "127.0.0.1" in answers:
        return Finding(
            "dnsbl", target, ERROR, f"answer {', '.join(answers)} is not a DNSBL code",
            "the zone is gone or the resolver rewrites NXDOMAIN: drop it from dns.dnsbl_zones",
        )  # fmt: skip
    meanings = _RETURN_CODES.get(zone.lower(), {})
    codes_text = ", ".join(f"{a} ({meanings[a]})" if a in meanings else a for a in answers)
    return Finding(
        "dnsbl", target, FAIL, f"listed: {codes_text}" + (f": {reason}" if reason else ""),
        f"find the cause (compromised account, open relay, infected host), fix it, then "
        f"request delisting from {zone}",
    )  # fmt: skip
