"""Pure parsing of IMAP FETCH, SELECT and STATUS responses as the adapter receives them."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import parsedate_to_datetime
from typing import Any

_BATCH = 100  # UIDs per FETCH/STORE: keeps command lines and responses small
_HEADER_PARSER = BytesHeaderParser(policy=policy.compat32)
_INTERNALDATE = re.compile(rb'INTERNALDATE "\s?(\d{1,2})-(\w{3})-(\d{4} [\d:]{8} [+-]\d{4})"')
_FETCH_START = re.compile(rb"\d+ FETCH \(")
_UID = re.compile(rb"UID (\d+)")


@dataclass(frozen=True, slots=True)
class FetchedHeader:
    uid: int
    headers: Message
    internal_date: datetime | None


def _internal_date(meta: bytes) -> datetime | None:
    match = _INTERNALDATE.search(meta)
    if match is None:
        return None
    try:  # "17-Jul-1996 02:44:25 -0700" is an RFC 5322 date once the dashes go
        when = parsedate_to_datetime(b" ".join(match.groups()).decode())
    except (TypeError, ValueError):
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def parse_fetch(lines: list[Any]) -> list[FetchedHeader]:
    """FETCH responses as aioimaplib hands them over: a `n FETCH (` line, the header literal
    (a bytearray), then the rest; items may come in any order around the literal."""
    records: list[list[Any]] = []
    for item in lines[:-1]:  # the last line is the tagged status text
        if isinstance(item, bytes) and _FETCH_START.match(item):
            records.append([item])
        elif records:
            records[-1].append(item)
    fetched = []
    for record in records:
        meta = b" ".join(x for x in record if isinstance(x, bytes))
        literal = next((x for x in record if isinstance(x, bytearray)), None)
        uid = _UID.search(meta)
        if uid is None or literal is None:  # e.g. an unsolicited FLAGS update
            continue
        headers = _HEADER_PARSER.parsebytes(bytes(literal))
        fetched.append(FetchedHeader(int(uid.group(1)), headers, _internal_date(meta)))
    return fetched


def uid_batches(uids: Iterable[int]) -> list[str]:
    ordered = sorted(set(uids))
    return [",".join(map(str, ordered[i : i + _BATCH])) for i in range(0, len(ordered), _BATCH)]


_EXISTS = re.compile(rb"^(\d+) EXISTS", re.MULTILINE)
_OPENED_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_OPENED_UIDNEXT = re.compile(rb"\[UIDNEXT (\d+)\]")
_STATUS_UIDVALIDITY = re.compile(rb"UIDVALIDITY (\d+)")
_STATUS_UIDNEXT = re.compile(rb"UIDNEXT (\d+)")


def _number(pattern: re.Pattern[bytes], text: bytes) -> int | None:
    found = pattern.search(text)
    return int(found.group(1)) if found else None


def parse_opened(lines: list[Any]) -> tuple[int, int | None, int | None]:
    """A SELECT's or EXAMINE's answer: (messages, UIDVALIDITY, UIDNEXT), None where absent."""
    text = b"\n".join(bytes(line) for line in lines)
    exists = _number(_EXISTS, text)
    uidvalidity = _number(_OPENED_UIDVALIDITY, text)
    return exists or 0, uidvalidity, _number(_OPENED_UIDNEXT, text)


def parse_status(lines: list[Any]) -> tuple[int, int] | None:
    """A `STATUS (UIDNEXT UIDVALIDITY)` answer's untagged lines: (UIDVALIDITY, UIDNEXT)."""
    text = b" ".join(bytes(line) for line in lines)
    uidvalidity, uidnext = _number(_STATUS_UIDVALIDITY, text), _number(_STATUS_UIDNEXT, text)
    return None if uidvalidity is None or uidnext is None else (uidvalidity, uidnext)
