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
from email import quoprimime
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
    body = _body(token, route, sender, recipient, sender_name, recipient_name)
    if not _plain(route, sender, recipient, message_id):
        return _with_policy(token, route, sender, recipient, message_id, body)
    # The bytes email.message would produce for these plain ASCII values, at a tenth of the
    # CPU (a daemon builds one per probe); anything else goes through email.message.
    lines = body.encode("utf-8").splitlines()
    encoded = quoprimime.body_encode((b"\n".join(lines) + b"\n").decode("latin-1"), _MAX_LINE)
    head = (
        f"From: {sender}\r\n"
        f"To: {recipient}\r\n"
        f"Subject: {SUBJECT_PREFIX} {token}\r\n"
        f"Date: {format_datetime(token.sent_at)}\r\n"
        f"Message-ID: {message_id}\r\n"
        "Auto-Submitted: auto-generated\r\n"
        f"{TOKEN_HEADER}: {token}\r\n"
        f"{ROUTE_HEADER}: {route}\r\n"
        'Content-Type: text/plain; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n"
        "MIME-Version: 1.0\r\n"
        "\r\n"
    )
    return (head + encoded.replace("\n", "\r\n")).encode("ascii")


# Values email.message would write unchanged: dot-atom addresses, a plain msg-id, and a
# route without whitespace or what could start an RFC 2047 encoded word ("=?").
_ADDRESS = re.compile(r"[A-Za-z0-9_%+-]+(\.[A-Za-z0-9_%+-]+)*@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*")
_MESSAGE_ID = re.compile(r"<[A-Za-z0-9_%+-]+(\.[A-Za-z0-9_%+-]+)*@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*>")
_ROUTE = re.compile(r"[!-<>@-~]{1,200}")
_MAX_LINE = 998  # unfolded headers keep the token on one line for IMAP SEARCH and humans


def _plain(route: str, sender: str, recipient: str, message_id: str) -> bool:
    return bool(
        _ADDRESS.fullmatch(sender)
        and _ADDRESS.fullmatch(recipient)
        and _MESSAGE_ID.fullmatch(message_id)
        and _ROUTE.fullmatch(route)
    )


def _body(
    token: Token, route: str, sender: str, recipient: str, sender_name: str, recipient_name: str
) -> str:
    return (
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
        "been seen; nothing needs to be done with it.\n"
    )


def _with_policy(
    token: Token, route: str, sender: str, recipient: str, message_id: str, body: str
) -> bytes:
    """The canary through email.message: any value, encoded and folded as RFC 5322 wants."""
    msg = EmailMessage(policy=SMTP.clone(max_line_length=_MAX_LINE))
    msg["From"] = sender
    msg["To"] = recipient
    msg["Subject"] = f"{SUBJECT_PREFIX} {token}"
    msg["Date"] = format_datetime(token.sent_at)
    msg["Message-ID"] = message_id
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to a robot
    msg[TOKEN_HEADER] = str(token)
    msg[ROUTE_HEADER] = route
    msg.set_content(body, charset="utf-8", cte="quoted-printable")
    return msg.as_bytes()


def new_message_id(sender_email: str) -> str:
    domain = sender_email.rpartition("@")[2] or "mailcanary.invalid"
    return make_msgid(idstring="mailcanary", domain=domain)
