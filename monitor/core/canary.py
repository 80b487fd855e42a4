"""The canary: a small signed message whose token proves it is ours.

The token is `<id>.<unix-seconds>.<mac>`; the MAC covers id, route and send time, so a
look-alike (a forwarded copy with another route, a forged header) never verifies and is
therefore never counted and never deleted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

TOKEN_HEADER = "X-Mailcanary-Token"
ROUTE_HEADER = "X-Mailcanary-Route"
SUBJECT_PREFIX = "mailcanary delivery check"
KEY_BYTES = 32

_TOKEN = re.compile(r"^([a-z2-7]{20})\.(\d{9,11})\.([0-9a-f]{32})$")


@dataclass(frozen=True, slots=True)
class Token:
    id: str
    sent_at: datetime
    mac: str

    def __str__(self) -> str:
        return f"{self.id}.{int(self.sent_at.timestamp())}.{self.mac}"


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def _mac(key: bytes, canary_id: str, route: str, unix: int) -> str:
    data = f"{canary_id}|{route}|{unix}".encode()
    return hmac.new(key, data, hashlib.sha256).hexdigest()[:32]


def new_token(key: bytes, route: str, now: datetime) -> Token:
    canary_id = base64.b32encode(secrets.token_bytes(13)).decode().lower()[:20]
    unix = int(now.timestamp())
    return Token(canary_id, datetime.fromtimestamp(unix, UTC), _mac(key, canary_id, route, unix))


def parse_token(text: str) -> Token | None:
    match = _TOKEN.match(text.strip())
    if not match:
        return None
    canary_id, unix, mac = match.groups()
    return Token(canary_id, datetime.fromtimestamp(int(unix), UTC), mac)


def verify(key: bytes, token_text: str, route: str) -> Token | None:
    """The parsed token when its MAC matches `route`, else None."""
    token = parse_token(token_text)
    if token is None:
        return None
    expected = _mac(key, token.id, route, int(token.sent_at.timestamp()))
    return token if hmac.compare_digest(expected, token.mac) else None


def _header_text(value: object) -> str:
    # Headers arrive either decoded (policy.default) or RFC 2047-encoded (compat32).
    return str(make_header(decode_header(str(value)))).strip()


def verify_message(key: bytes, headers: Message) -> str | None:
    """The token of a genuine canary of ours, judged from its headers alone."""
    token_value, route_value = headers.get(TOKEN_HEADER), headers.get(ROUTE_HEADER)
    if token_value is None or route_value is None:
        return None
    token = verify(key, _header_text(token_value), _header_text(route_value))
    return str(token) if token else None


def build_message(
    *,
    token: Token,
    route: str,
    sender: str,
    recipient: str,
    message_id: str,
    sender_name: str,
    recipient_name: str,
) -> bytes:
    """The canary as wire bytes: plain text, CRLF line ends, our own Message-ID."""
    # Unfolded headers keep the token on one line for IMAP SEARCH and for humans.
    msg = EmailMessage(policy=SMTP.clone(max_line_length=998))
    msg["From"] = sender
    msg["To"] = recipient
    msg["Subject"] = f"{SUBJECT_PREFIX} {token}"
    msg["Date"] = format_datetime(token.sent_at)
    msg["Message-ID"] = message_id
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to a robot
    msg[TOKEN_HEADER] = str(token)
    msg[ROUTE_HEADER] = route
    msg.set_content(
        "This is a delivery check sent by mailcanary.\n"
        "\n"
        f"Route:     {route}\n"
        f"From:      {sender_name} <{sender}>\n"
        f"To:        {recipient_name} <{recipient}>\n"
        f"Sent:      {token.sent_at.isoformat()}\n"
        f"Token:     {token}\n"
        "\n"
        "It proves that mail from this sender reaches this mailbox, and whether it\n"
        "lands in the inbox or the spam folder. The monitor deletes it once it has\n"
        "been seen; nothing needs to be done with it.\n",
        charset="utf-8",
        cte="quoted-printable",
    )
    return msg.as_bytes()


def new_message_id(sender_email: str) -> str:
    domain = sender_email.rpartition("@")[2] or "mailcanary.invalid"
    return make_msgid(idstring="mailcanary", domain=domain)
