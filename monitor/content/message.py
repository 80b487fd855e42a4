"""A route's real message: the user's own .eml file or Jinja2 template, sent as a canary.

The message goes out as the user wrote it; only what a probe must own changes: the recipient
headers (To; Cc and Bcc removed), a fresh Message-ID and Date, and the signed token in
headers only (X-Mailcanary-Token, X-Mailcanary-Route), so a content filter judges the user's
real content and the watcher still finds the canary by its token header. Headers left by an
earlier delivery of an exported file (Received, Return-Path, Delivered-To,
Authentication-Results, ARC-*, X-Spam-*) and DKIM signatures (broken by the new To/Date/
Message-ID; the sending server signs again) are removed too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.errors import MessageDefect
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, getaddresses
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from monitor.core.canary import ROUTE_HEADER, TOKEN_HEADER, Token, build_message

if TYPE_CHECKING:
    from jinja2 import Environment

MAX_BYTES = 10 * 1024 * 1024  # receivers commonly refuse more; the limit

_DROPPED = frozenset(
    {
        "to",
        "cc",
        "bcc",
        "message-id",
        "date",
        "received",
        "return-path",
        "delivered-to",
        "authentication-results",
        "dkim-signature",
        TOKEN_HEADER.lower(),
        ROUTE_HEADER.lower(),
    }
)
_DROPPED_PREFIXES = ("arc-", "x-spam-")
_HEADER_NAME = re.compile(rb"^([!-9;-~]+):")
_SPLIT = re.compile(rb"\r?\n\r?\n")


class MessageFileError(ValueError):
    """A message file or template that cannot be used; the text is one line for the user."""


class OversizedError(MessageFileError):
    """Over MAX_BYTES: refused before reading."""


@dataclass(frozen=True, slots=True)
class RouteContent:
    """What a route sends instead of the plain canary (one of `message`, `template`)."""

    message: Path | None = None
    template: Path | None = None
    subject: str | None = None


# ------------------------------------------------------------------- reading and checking


def read_file(path: Path) -> bytes:
    """The file's bytes; an mbox "From " separator line some programs export is dropped."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise OversizedError(f"{path} is {size / 1048576:.1f} MB, over the 10 MB limit")
        raw = path.read_bytes()
    except OSError as exc:
        raise MessageFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    if raw.startswith(b"From "):
        raw = raw.partition(b"\n")[2]
    return raw


def parse(raw: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def structure_problem(raw: bytes) -> str | None:
    """Why `raw` is not an RFC 5322/MIME message we can send, or None."""
    if b"\x00" in raw:
        return "not an RFC 5322 message (binary data)"
    head = _SPLIT.split(raw, 1)[0]
    if not head.strip() or not all(
        _HEADER_NAME.match(line) or line[:1] in (b" ", b"\t") for line in head.splitlines()
    ):
        return "not an RFC 5322 message (no header block before the first empty line)"
    message = parse(raw)
    if not message.get("From"):
        return "not an RFC 5322 message (no From header)"
    defects = [d for part in message.walk() for d in part.defects]
    if defects:
        return f"broken MIME: {_defect_text(defects[0])}"
    return None


def _defect_text(defect: MessageDefect) -> str:
    name = re.sub(r"(?<!^)(?=[A-Z])", " ", type(defect).__name__).lower()
    return name.removesuffix(" defect")


def from_problem(raw: bytes, account_email: str) -> str | None:
    """Why the message's From may not be sent by this account, or None."""
    addresses = [a for _, a in getaddresses(parse(raw).get_all("From") or []) if a]
    if len(addresses) != 1:
        return f"From must name exactly one address, found {len(addresses)}"
    sender = addresses[0].lower()
    account = account_email.lower()
    if sender == account or sender.rpartition("@")[2] == account.rpartition("@")[2]:
        return None
    return (
        f"From <{sender}> is neither the sending account's address <{account}> nor in its "
        "domain: the server may refuse it and DMARC alignment fails"
    )


def route_problems(content: RouteContent, account_email: str | None) -> list[str]:
    """What is wrong with a route's message or template, one line each (no location)."""
    try:
        if content.message is not None:
            raw = read_file(content.message)
            problem = structure_problem(raw)
            if problem is None and account_email is not None:
                problem = from_problem(raw, account_email)
            return [] if problem is None else [f"{content.message}: {problem}"]
        if content.template is not None:
            _render(content, "recipient@example.invalid", datetime.now().astimezone())
    except MessageFileError as exc:
        return [str(exc)]
    return []


# ------------------------------------------------------------------- building


def _environment(autoescape: bool) -> Environment:
    # Jinja2 is imported here, not at the top: every command loads the config (routes.py
    # checks messages with this module) and only a template route needs it (issue #17).
    from jinja2 import Environment, StrictUndefined

    return Environment(autoescape=autoescape, undefined=StrictUndefined, keep_trailing_newline=True)


def _render(content: RouteContent, recipient: str, date: datetime) -> tuple[str, str, str | None]:
    """(subject, html, text or None) of a template route; a `.txt` file beside the template,
    when there is one, is its plain-text alternative."""
    assert content.template is not None
    from jinja2 import TemplateError

    values = {"recipient": recipient, "date": date}
    text_path = content.template.with_suffix(".txt")
    try:
        html = _environment(True).from_string(_text(content.template)).render(values)
        text = None
        if text_path.is_file():
            text = _environment(False).from_string(_text(text_path)).render(values)
        subject = _environment(False).from_string(content.subject or "").render(values)
    except TemplateError as exc:
        where = f" line {exc.lineno}" if getattr(exc, "lineno", None) else ""
        raise MessageFileError(f"{content.template}{where}: template error: {exc}") from None
    return " ".join(subject.split()), html, text


def _text(path: Path) -> str:
    try:
        return read_file(path).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MessageFileError(f"{path}: not UTF-8 text ({exc.reason})") from None


def from_template(
    content: RouteContent, *, sender: str, sender_name: str, recipient: str, date: datetime
) -> bytes:
    subject, html, text = _render(content, recipient, date)
    msg = EmailMessage(policy=policy.SMTP)
    local, _, domain = sender.rpartition("@")
    msg["From"] = Address(display_name=sender_name, username=local, domain=domain)
    msg["To"] = recipient
    msg["Subject"] = subject
    msg["MIME-Version"] = "1.0"
    if text is None:
        msg.set_content(html, subtype="html", charset="utf-8")
    else:
        msg.set_content(text, charset="utf-8")
        msg.add_alternative(html, subtype="html", charset="utf-8")
    return msg.as_bytes()


def stamp(
    raw: bytes, *, recipient: str, message_id: str, date: datetime, token: str, route: str
) -> bytes:
    """`raw` with a probe's own recipient, Message-ID, Date and token headers; every other
    header and the body byte for byte as given (line ends made CRLF, as SMTP wants)."""
    parts = _SPLIT.split(raw, 1)
    head, body = parts[0], parts[1] if len(parts) > 1 else b""
    kept: list[bytes] = []
    keep = False
    for line in head.splitlines():
        if line[:1] in (b" ", b"\t"):
            if keep:
                kept.append(line)
            continue
        match = _HEADER_NAME.match(line)
        name = match.group(1).decode("ascii").lower() if match else ""
        keep = bool(match) and name not in _DROPPED and not name.startswith(_DROPPED_PREFIXES)
        if keep:
            kept.append(line)
    ours = [
        f"{TOKEN_HEADER}: {token}",
        f"{ROUTE_HEADER}: {route}",
        f"Message-ID: {message_id}",
        f"Date: {format_datetime(date)}",
        f"To: {recipient}",
    ]
    lines = [line.encode() for line in ours] + kept
    body = b"\r\n".join(body.splitlines()) + (b"\r\n" if body else b"")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def build(
    content: RouteContent,
    *,
    sender: str,
    sender_name: str,
    recipient: str,
    message_id: str,
    date: datetime,
    token: str,
    route: str,
) -> bytes:
    """The wire bytes a real-message probe sends; MessageFileError if the file went bad."""
    if content.message is not None:
        raw = read_file(content.message)
        problem = structure_problem(raw)
        if problem is not None:
            raise MessageFileError(f"{content.message}: {problem}")
    else:
        raw = from_template(
            content, sender=sender, sender_name=sender_name, recipient=recipient, date=date
        )
    return stamp(
        raw, recipient=recipient, message_id=message_id, date=date, token=token, route=route
    )


class HasContent(Protocol):
    """A configured route (monitor.config.schema.Route), as far as its message goes."""

    name: str
    message: Path | None
    message_template: Path | None
    subject: str | None


def wire(
    route: HasContent,
    *,
    token: Token,
    sender: str,
    sender_name: str,
    recipient: str,
    recipient_name: str,
    message_id: str,
) -> bytes:
    """What a probe of this route sends: its real message, or the plain canary."""
    if route.message is None and route.message_template is None:
        return build_message(
            token=token,
            route=route.name,
            sender=sender,
            recipient=recipient,
            message_id=message_id,
            sender_name=sender_name,
            recipient_name=recipient_name,
        )
    content = RouteContent(route.message, route.message_template, route.subject)
    return build(
        content,
        sender=sender,
        sender_name=sender_name,
        recipient=recipient,
        message_id=message_id,
        date=token.sent_at,
        token=str(token),
        route=route.name,
    )
