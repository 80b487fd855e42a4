"""Sending one alert: by email through an account's SMTP, or as a signed webhook POST.

Both return None on success or a one-line error that names no secret: not the password,
not the signing secret, not the webhook URL (Slack-style URLs are themselves secrets).

Delivery is at least once: a crash after the receiver accepted but before the outbox row is
marked sent resends it. Each resend carries the same id, so receivers can dedupe:
- webhooks: header `X-Mailcanary-Delivery: <id>`; the body is signed with HMAC-SHA256 over
  its exact bytes when the channel has a secret: `X-Mailcanary-Signature: sha256=<hex>`.
- email: a Message-ID derived from the same id, which mail systems dedupe on.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor.adapters import smtp
from monitor.adapters.credentials import credentials
from monitor.adapters.tls import client_context
from monitor.alerts import message as alertmsg
from monitor.config.schema import Account
from monitor.core.models import utcnow

if TYPE_CHECKING:  # imported by the first webhook posted: a daemon without one never loads it
    import httpx

SIGNATURE_HEADER = "X-Mailcanary-Signature"
DELIVERY_HEADER = "X-Mailcanary-Delivery"
EVENT_HEADER = "X-Mailcanary-Event"
USER_AGENT = "mailcanary-alerts/1"


def signature(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def message_id(delivery_id: str, sender: str) -> str:
    digest = hashlib.sha256(delivery_id.encode()).hexdigest()[:32]
    domain = sender.rpartition("@")[2] or "mailcanary.invalid"
    return f"<alert.{digest}@{domain}>"


def email_message(
    alert: dict[str, Any], *, sender: str, to: str, delivery_id: str, timezone: str = "UTC"
) -> EmailMessage:
    """`timezone`: the one times are shown in (with UTC beside them)."""
    message = EmailMessage(policy=SMTP)
    message["From"] = formataddr(("mailcanary", sender))
    message["To"] = to
    message["Subject"] = alertmsg.subject(alert)
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = message_id(delivery_id, sender)
    # RFC 3834: tells auto-responders and vacation replies to stay quiet.
    message["Auto-Submitted"] = "auto-generated"
    message[DELIVERY_HEADER] = delivery_id
    message.set_content(alertmsg.text_body(alert, timezone))
    message.add_alternative(alertmsg.html_body(alert, timezone), subtype="html")
    return message


async def send_email(
    account: Account,
    to: str,
    alert: dict[str, Any],
    *,
    delivery_id: str,
    state_dir: Path | None,
    timezone: str = "UTC",
) -> str | None:
    message = email_message(
        alert, sender=account.email, to=to, delivery_id=delivery_id, timezone=timezone
    )
    return await send_mail(account, to, message, state_dir=state_dir)


async def send_mail(
    account: Account, to: str, message: EmailMessage, *, state_dir: Path | None
) -> str | None:
    """Send `message` through `account`'s SMTP, logged in as its probes are (an xoauth2
    account's token store is in `state_dir`); None on success, else one line (kind, phase,
    codes) naming no secret."""
    if account.smtp is None:
        return f"account {account.name} has no smtp"
    login = credentials(account, state_dir)
    if login.unusable:
        return login.unusable
    outcome = await smtp.send_message(
        account.smtp,
        login=login,
        message=message.as_bytes(),
        mail_from=account.email,
        rcpt_to=to,
        ssl_context=client_context(account.ca_files),
    )
    failure = outcome.failure
    if failure is None:
        return None
    return alertmsg.failure_line(
        {
            "kind": failure.kind,
            "phase": failure.phase.value,
            "code": failure.code,
            "enhanced": failure.enhanced,
            "message": failure.message,
        }
    )


@dataclass(frozen=True, slots=True)
class Webhook:
    name: str
    url: str  # never logged or put in an error: it may be the secret itself
    format: str
    secret: bytes | None
    timeout: float


def webhook_request(
    channel: Webhook,
    alert: dict[str, Any],
    *,
    delivery_id: str,
    remind_every: float,
    timezone: str = "UTC",
) -> tuple[bytes, dict[str, str]]:
    """The exact body and headers to POST (separate so tests can check the signing)."""
    value = alertmsg.webhook_body(
        alert, channel.format, remind_every=remind_every, timezone=timezone
    )
    body = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        DELIVERY_HEADER: delivery_id,
        EVENT_HEADER: str(alert["event"]),
    }
    if channel.secret is not None:
        headers[SIGNATURE_HEADER] = signature(channel.secret, body)
    return body, headers


async def post_webhook(
    client: httpx.AsyncClient,
    channel: Webhook,
    alert: dict[str, Any],
    *,
    delivery_id: str,
    remind_every: float,
    timezone: str = "UTC",
) -> str | None:
    import httpx

    body, headers = webhook_request(
        channel, alert, delivery_id=delivery_id, remind_every=remind_every, timezone=timezone
    )
    try:
        response = await client.post(
            channel.url, content=body, headers=headers, timeout=channel.timeout
        )
    except httpx.TimeoutException:
        return f"no answer within {channel.timeout:g}s"
    except httpx.HTTPError as exc:
        # httpx names the URL in some messages; the URL may be a secret.
        reason = str(exc).replace(channel.url, channel.name) or type(exc).__name__
        return f"{type(exc).__name__}: {reason}"
    if 200 <= response.status_code < 300:
        return None
    return f"HTTP {response.status_code} {response.reason_phrase}".strip()
