"""The report as an email: text and HTML alternatives, the charts inline.

    multipart/alternative
      text/plain                 the text report
      multipart/related
        text/html                <img src="cid:…">
        image/png (Content-ID)   one per chart

Mail clients show the images in place without loading anything from the network. The
Message-ID is derived from the period and recipient, so a resend after a crash carries the
same one and mail systems can drop the duplicate.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr
from pathlib import Path

from monitor.adapters import notifiers
from monitor.config.schema import Account
from monitor.core.models import Verdict, utcnow
from monitor.reports.document import Report
from monitor.reports.html import render_html
from monitor.reports.model import Period
from monitor.reports.text import render_text
from monitor.templates.filters import percent, trend_text

REPORT_HEADER = "X-Mailcanary-Report"


def message_id(period: Period, recipient: str, sender: str) -> str:
    key = f"{period.start.isoformat()}/{period.end.isoformat()}/{recipient}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return f"<report.{digest}@{sender.rpartition('@')[2] or 'mailcanary.invalid'}>"


def content_id(name: str, message: str) -> str:
    """<placement.<digest>@mailcanary>, unique per message."""
    return f"<{name}.{hashlib.sha256(message.encode()).hexdigest()[:16]}@mailcanary>"


def subject(report: Report) -> str:
    total = report.total
    rate = total.tally.rate(Verdict.INBOX)
    if rate is None:
        return f"mailcanary report {report.period.label}: no canaries"
    trend = trend_text(total.trends()["inbox_rate"])
    return f"mailcanary report {report.period.label}: inbox {percent(rate)}" + (
        f" ({trend})" if trend else ""
    )


def report_message(
    report: Report,
    images: Mapping[str, bytes],
    *,
    sender: str,
    to: str,
    message_id: str,
    public_url: str | None = None,
) -> EmailMessage:
    cids = {name: content_id(name, message_id) for name in images}
    message = EmailMessage(policy=SMTP)
    message["From"] = formataddr(("mailcanary", sender))
    message["To"] = to
    message["Subject"] = subject(report)
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = message_id
    # RFC 3834: no vacation replies to a robot.
    message["Auto-Submitted"] = "auto-generated"
    message[REPORT_HEADER] = f"{report.period.start.isoformat()}/{report.period.end.isoformat()}"
    live = f"\nLive: {public_url}/\n" if public_url else ""
    message.set_content(render_text(report) + live)
    sources = {name: f"cid:{cid[1:-1]}" for name, cid in cids.items()}
    message.add_alternative(render_html(report, sources, page=public_url), subtype="html")
    html = message.get_payload()[1]  # type: ignore[index]
    for name, png in images.items():
        html.add_related(png, "image", "png", cid=cids[name], filename=f"{name}.png")
    return message


async def send_report(
    account: Account, to: str, message: EmailMessage, *, state_dir: Path | None = None
) -> str | None:
    """Through `account`'s SMTP; None on success, else one line that names no secret.

    An auth = "xoauth2" account logs in with an access token from its token store, which
    lives in `state_dir`.
    """
    return await notifiers.send_mail(account, to, message, state_dir=state_dir)
