"""The `Received` chain as hops: who handed the message to whom, when, and over TLS or not.

Each server on the way prepends one `Received` header (RFC 5321 §4.4), so the chain is read
bottom-up: hop 0 is the first server that took the message, the last hop is the recipient's.

- Delay: a hop's timestamp minus the previous timestamped hop's. Every server stamps with its
  own clock, so a negative difference proves a clock is wrong, not that mail travelled back in
  time: such a hop gets `clock_skew` and no delay.
- TLS: stated in a comment (Postfix `using TLSv1.3`, Gmail and Microsoft `version=TLS1_3`, Exim
  `(TLS1.3)`) or by the protocol name (RFC 3848: ESMTPS/ESMTPSA mean TLS, ESMTP/SMTP/LMTP do
  not); `tls` is None when the hop says neither.
- External: a hop whose sending IP, as the receiving server noted it, is globally routable.
  A host name alone proves nothing (it is what the client claimed), so a hop without an IP
  never counts. The first external hop is where the message crossed the public internet.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.message import Message
from email.utils import parsedate_to_datetime
from typing import Any

_KEYWORDS = frozenset({"from", "by", "via", "with", "id", "for"})
_TLS_IN_COMMENT = (
    re.compile(r"\busing (TLSv?\d(?:\.\d)?)\b", re.IGNORECASE),
    re.compile(r"\bversion=(TLS\w*?\d[._]\d)", re.IGNORECASE),
    re.compile(r"\b(TLSv?1[._]\d)\b", re.IGNORECASE),
)
_TLS_PROTOCOLS = frozenset(
    {"ESMTPS", "ESMTPSA", "UTF8SMTPS", "UTF8SMTPSA", "LMTPS", "SMTPS", "HTTPS"}
)
_PLAIN_PROTOCOLS = frozenset({"ESMTP", "ESMTPA", "SMTP", "UTF8SMTP", "UTF8SMTPA", "LMTP", "HTTP"})
_IP_CANDIDATE = re.compile(r"(?:IPv6:)?([0-9A-Fa-f]*[:.][0-9A-Fa-f:.]+)")


@dataclass(frozen=True, slots=True)
class Hop:
    from_host: str | None = None
    from_ip: str | None = None
    by_host: str | None = None
    protocol: str | None = None  # the `with` clause: ESMTPS, LMTP, Microsoft SMTP Server…
    tls: bool | None = None
    tls_version: str | None = None  # "TLSv1.3"
    queue_id: str | None = None
    at: datetime | None = None
    delay_seconds: float | None = None
    clock_skew: bool = False
    external: bool = False


def parse_hops(received: Iterable[str]) -> tuple[Hop, ...]:
    """Hops oldest first from `Received` header values as they appear (newest first)."""
    hops = [_hop(value) for value in reversed(list(received))]
    dated: list[Hop] = []
    previous: datetime | None = None
    for hop in hops:
        if hop.at is not None and previous is not None:
            seconds = (hop.at - previous).total_seconds()
            skewed = seconds < 0
            hop = replace(hop, delay_seconds=None if skewed else seconds, clock_skew=skewed)
        previous = hop.at or previous
        dated.append(hop)
    return tuple(dated)


_PIECES = re.compile(r"[()]|[^()\s]+|\s+")


def _tokens(text: str) -> list[tuple[str, bool]]:
    """Words and (possibly nested) comments, each as (text, is_comment)."""
    # Piece by piece, not character by character: a sighting's headers are read for every
    # canary, and a loop over each character was most of that.
    tokens: list[tuple[str, bool]] = []
    word: list[str] = []
    comment: list[str] = []
    depth = 0
    for piece in _PIECES.findall(text):
        if depth:
            depth += 1 if piece == "(" else -1 if piece == ")" else 0
            if depth:
                comment.append(piece)
            else:
                tokens.append(("".join(comment), True))
                comment = []
        elif piece == "(":
            if word:
                tokens.append(("".join(word), False))
                word = []
            depth = 1
        elif piece.isspace():
            if word:
                tokens.append(("".join(word), False))
                word = []
        else:
            word.append(piece)  # a stray ")" stays part of its word
    if word:
        tokens.append(("".join(word), False))
    if comment:
        tokens.append(("".join(comment), True))
    return tokens


def _clauses(text: str) -> dict[str, tuple[list[str], list[str]]]:
    """keyword -> (its words, the comments that follow them); first occurrence wins."""
    clauses: dict[str, tuple[list[str], list[str]]] = {}
    current: tuple[list[str], list[str]] | None = None
    for token, is_comment in _tokens(text):
        if is_comment:
            if current is not None:
                current[1].append(token)
        elif token.lower() in _KEYWORDS and (current is None or current[0]):
            current = ([], [])
            clauses.setdefault(token.lower(), current)
        elif current is not None:
            current[0].append(token)
    return clauses


def stamped_at(value: str) -> datetime | None:
    """The date a server wrote after the last ";" of one Received value, in UTC."""
    stamp, _, date = value.rpartition(";")
    return _date(date) if stamp else None  # no ";": no date either


def _hop(value: str) -> Hop:
    stamp = value.rpartition(";")[0] or value
    clauses = _clauses(stamp)
    words = {key: words for key, (words, _) in clauses.items()}
    from_words, from_comments = clauses.get("from", ([], []))
    protocol = " ".join(words.get("with", [])) or None
    version = _tls_version(" ".join(c for _, cs in clauses.values() for c in cs))
    from_ip = _ip([*from_words[:1], *from_comments])
    return Hop(
        from_host=_first(from_words),
        from_ip=str(from_ip) if from_ip else None,
        by_host=_first(words.get("by", [])),
        protocol=protocol,
        tls=True if version else _tls_by_protocol(protocol),
        tls_version=version,
        queue_id=_first(words.get("id", [])),
        at=stamped_at(value),
        external=bool(from_ip and from_ip.is_global),
    )


def _first(words: list[str]) -> str | None:
    return (words[0].strip("<>;,") or None) if words else None


def _ip(texts: list[str]) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    for text in texts:
        for candidate in _IP_CANDIDATE.findall(text):
            try:
                return ipaddress.ip_address(candidate.rstrip("."))
            except ValueError:
                continue
    return None


def _tls_version(comments: str) -> str | None:
    for shape in _TLS_IN_COMMENT:
        match = shape.search(comments)
        if match:
            digits = re.sub(r"^TLSv?", "", match.group(1), flags=re.IGNORECASE)
            return "TLSv" + digits.replace("_", ".")
    return None


def _tls_by_protocol(protocol: str | None) -> bool | None:
    name = protocol.split()[0].upper() if protocol else ""
    if name in _TLS_PROTOCOLS:
        return True
    if name in _PLAIN_PROTOCOLS:
        return False
    return None


def _date(text: str) -> datetime | None:
    text = " ".join(text.split())
    if not text:
        return None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


# ------------------------------------------------------------ JSON shape (store and --json)


def hops_json(hops: Iterable[Hop]) -> list[dict[str, Any]]:
    return [
        {
            "from": hop.from_host,
            "from_ip": hop.from_ip,
            "by": hop.by_host,
            "with": hop.protocol,
            "tls": hop.tls,
            "tls_version": hop.tls_version,
            "id": hop.queue_id,
            "at": hop.at.isoformat() if hop.at else None,
            "delay_seconds": hop.delay_seconds,
            "clock_skew": hop.clock_skew,
            "external": hop.external,
        }
        for hop in hops
    ]


def hops_from_json(shapes: Iterable[Mapping[str, Any]]) -> tuple[Hop, ...]:
    return tuple(
        Hop(
            from_host=shape.get("from"),
            from_ip=shape.get("from_ip"),
            by_host=shape.get("by"),
            protocol=shape.get("with"),
            tls=shape.get("tls"),
            tls_version=shape.get("tls_version"),
            queue_id=shape.get("id"),
            at=datetime.fromisoformat(shape["at"]) if shape.get("at") else None,
            delay_seconds=shape.get("delay_seconds"),
            clock_skew=bool(shape.get("clock_skew")),
            external=bool(shape.get("external")),
        )
        for shape in shapes
    )


def top_received_at(headers: Message) -> datetime | None:
    """The date of the top Received header (the last hop: the recipient's own server)."""
    received = headers.get_all("Received") or []
    return stamped_at(str(received[0])) if received else None


def message_id_of(headers: Message) -> str | None:
    """The Message-ID with its folded white space undone."""
    value = headers.get("Message-ID")
    if value is None:
        return None
    return " ".join(str(value).split()) or None
