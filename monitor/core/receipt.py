"""What the receiving side thought of a canary, read from the headers it added.

`parse_receipt(headers)` gathers three things:
- the verdicts in `Authentication-Results` (RFC 8601): SPF, DKIM, DMARC and ARC with the
  domains they concern, from the topmost header and others of its authserv-id. The topmost is
  the recipient's own server's (receivers remove incoming copies carrying their own name; other
  names may be forged by anyone on the way, so they are ignored);
- the `Received` chain as hops, oldest first (see `monitor.core.received`);
- spam-filter verdict headers (SpamAssassin, rspamd, Microsoft), as the first copy of each.

Header values are whatever the outside world sent: nothing here raises on odd input; what
cannot be read is left out. The JSON shapes (`*_json`, `receipt_from_json`) are what the store
keeps and what `--json` shows, so both say the same.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.message import Message
from typing import Any

import authres

from monitor.core.received import Hop, hops_from_json, hops_json, parse_hops

AUTH_HEADER = "Authentication-Results"
_SPAM_EXACT = frozenset(
    {
        "x-ms-exchange-organization-scl",
        "x-forefront-antispam-report",
        "x-microsoft-antispam",
        "x-spamd-result",
        "x-spamd-bar",
        "x-yahoofilteredbulk",
    }
)
_SPAM_PREFIXES = ("x-spam-", "x-rspamd-")
_SPAM_VALUE_LIMIT = 2000  # a full X-Spam-Report is pages long; the verdict comes first
_COMMENT = re.compile(r"\([^()]*\)")


@dataclass(frozen=True, slots=True)
class Check:
    """One method's verdict: `result` as the receiver wrote it (pass, fail, softfail, none…)."""

    result: str
    domain: str | None = None
    selector: str | None = None  # DKIM only


@dataclass(frozen=True, slots=True)
class AuthResults:
    authserv_id: str | None
    spf: Check | None = None
    dkim: tuple[Check, ...] = ()
    dmarc: Check | None = None
    arc: Check | None = None
    other: tuple[tuple[str, str], ...] = ()  # further methods: (method, result), e.g. compauth


@dataclass(frozen=True, slots=True)
class Receipt:
    auth: AuthResults | None = None
    hops: tuple[Hop, ...] = ()
    spam_headers: tuple[tuple[str, str], ...] = ()

    @property
    def first_external(self) -> Hop | None:
        return next((hop for hop in self.hops if hop.external), None)


def parse_receipt(headers: Message) -> Receipt:
    return Receipt(
        auth=parse_auth(_values(headers, AUTH_HEADER)),
        hops=parse_hops(_values(headers, "Received")),
        spam_headers=_spam_headers(headers),
    )


def _values(headers: Message, name: str) -> list[str]:
    return [" ".join(str(value).split()) for value in headers.get_all(name) or ()]


def _spam_headers(headers: Message) -> tuple[tuple[str, str], ...]:
    found: dict[str, tuple[str, str]] = {}
    for name, value in headers.items():
        key = name.lower()
        if key in found or not (key in _SPAM_EXACT or key.startswith(_SPAM_PREFIXES)):
            continue
        found[key] = (name, " ".join(str(value).split())[:_SPAM_VALUE_LIMIT])
    return tuple(found.values())


# ------------------------------------------------------------ Authentication-Results

Result = tuple[str, str, dict[str, str]]  # method, result, {"ptype.property": value}


def parse_auth(values: Iterable[str]) -> AuthResults | None:
    """The verdicts of the recipient's server from `Authentication-Results` values, topmost
    first: the first value that says anything, merged with later ones of the same authserv-id
    (Postfix sites get one header each from their SPF, DKIM and DMARC filters). A value naming
    no authserv-id (Microsoft's) stands alone. None when no value says anything."""
    authserv_id: str | None = None
    merged: list[Result] = []
    for value in values:
        parsed = _strict(value) or _lenient(value)
        if parsed is None or not parsed[1]:
            continue
        if not merged:
            authserv_id, merged = parsed[0], list(parsed[1])
            if authserv_id is None:
                break
        elif parsed[0] is not None and parsed[0].lower() == authserv_id.lower():
            merged.extend(parsed[1])
    return _summary(authserv_id, merged) if merged else None


def _strict(value: str) -> tuple[str | None, list[Result]] | None:
    # authres wants the header name, and refuses the trailing ";" some providers write.
    text = f"{AUTH_HEADER}: {value.strip().rstrip(';')}"
    try:
        header = authres.AuthenticationResultsHeader.parse(text)
    except Exception:  # authres raises its own SyntaxError and others on odd input
        return None
    results = [
        (
            str(r.method).lower(),
            str(r.result).lower(),
            {f"{p.type}.{p.name}".lower(): str(p.value) for p in r.properties},
        )
        for r in header.results
    ]
    return header.authserv_id, results


def _lenient(value: str) -> tuple[str | None, list[Result]] | None:
    """For what authres refuses: Microsoft's header without an authserv-id, ARC's `i=1;`,
    properties without a type (`action=none`)."""
    text = value
    while _COMMENT.search(text):  # innermost comments first, so nesting goes too
        text = _COMMENT.sub(" ", text)
    authserv_id: str | None = None
    results: list[Result] = []
    for part in (p.strip() for p in text.split(";")):
        words = part.split()
        if not words:
            continue
        if "=" not in words[0]:
            if not results and authserv_id is None:
                authserv_id = words[0]
            continue
        method, _, result = words[0].partition("=")
        if method.lower() == "i" and result.isdigit():  # ARC instance tag
            continue
        props = dict(w.split("=", 1) for w in words[1:] if "=" in w)
        results.append((method.lower(), result.lower().strip('"'), _lower_keys(props)))
    return (authserv_id, results) if results else None


def _lower_keys(props: Mapping[str, str]) -> dict[str, str]:
    return {key.lower(): value.strip('"') for key, value in props.items()}


def _domain(value: str | None) -> str | None:
    if not value:
        return None
    return value.rsplit("@", 1)[-1].strip("<>.").lower() or None


def _summary(authserv_id: str | None, results: list[Result]) -> AuthResults:
    spf = dmarc = arc = None
    dkim: list[Check] = []
    other: list[tuple[str, str]] = []
    for method, result, props in results:
        if method == "spf" and spf is None:
            where = props.get("smtp.mailfrom") or props.get("smtp.helo")
            spf = Check(result, _domain(where))
        elif method == "dkim":
            where = props.get("header.d") or props.get("header.i")
            dkim.append(Check(result, _domain(where), props.get("header.s")))
        elif method == "dmarc" and dmarc is None:
            dmarc = Check(result, _domain(props.get("header.from")))
        elif method == "arc" and arc is None:
            arc = Check(result)
        elif method not in ("spf", "dmarc", "arc"):
            other.append((method, result))
    return AuthResults(authserv_id, spf, tuple(dkim), dmarc, arc, tuple(other))


# ------------------------------------------------------------ JSON shapes (store and --json)


def _check_json(check: Check | None) -> dict[str, Any] | None:
    if check is None:
        return None
    shape: dict[str, Any] = {"result": check.result, "domain": check.domain}
    if check.selector is not None:
        shape["selector"] = check.selector
    return shape


def auth_json(auth: AuthResults | None) -> dict[str, Any] | None:
    if auth is None:
        return None
    return {
        "authserv_id": auth.authserv_id,
        "spf": _check_json(auth.spf),
        "dkim": [_check_json(c) for c in auth.dkim],
        "dmarc": _check_json(auth.dmarc),
        "arc": _check_json(auth.arc),
        "other": dict(auth.other),
    }


def auth_verdicts(auth: AuthResults | None) -> dict[str, str]:
    """{"spf": …, "dkim": …, "dmarc": …} as the receiver wrote them, the checks it wrote
    only. DKIM is "pass" when any signature passed (what DMARC looks at), else the first."""
    if auth is None:
        return {}
    found = {}
    if auth.spf is not None:
        found["spf"] = auth.spf.result.lower()
    signatures = [c.result.lower() for c in auth.dkim]
    if signatures:
        found["dkim"] = "pass" if "pass" in signatures else signatures[0]
    if auth.dmarc is not None:
        found["dmarc"] = auth.dmarc.result.lower()
    return found


def spam_json(receipt: Receipt) -> dict[str, str] | None:
    return dict(receipt.spam_headers) or None


def _check(shape: Mapping[str, Any] | None) -> Check | None:
    if not shape:
        return None
    return Check(shape["result"], shape.get("domain"), shape.get("selector"))


def receipt_from_json(
    auth: Mapping[str, Any] | None,
    hops: list[Mapping[str, Any]] | None,
    spam: Mapping[str, str] | None,
) -> Receipt | None:
    """The receipt again from its stored shapes; None when nothing was stored."""
    if auth is None and hops is None and spam is None:
        return None
    summary = None
    if auth is not None:
        summary = AuthResults(
            authserv_id=auth.get("authserv_id"),
            spf=_check(auth.get("spf")),
            dkim=tuple(c for c in map(_check, auth.get("dkim") or ()) if c is not None),
            dmarc=_check(auth.get("dmarc")),
            arc=_check(auth.get("arc")),
            other=tuple((auth.get("other") or {}).items()),
        )
    return Receipt(summary, hops_from_json(hops or ()), tuple((spam or {}).items()))


__all__ = [
    "AuthResults",
    "Check",
    "Hop",
    "Receipt",
    "auth_json",
    "hops_json",
    "parse_auth",
    "parse_receipt",
    "receipt_from_json",
    "spam_json",
]
