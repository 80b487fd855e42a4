"""Sending one alert through one channel (a webhook, or mail through an account), and the
test alerts `mailcanary alerts test` sends; the alerting loop (dispatch.py) calls these.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from monitor import logs
from monitor.adapters import notifiers
from monitor.alerts import message as alertmsg
from monitor.config.alert_settings import EmailChannel, WebhookChannel
from monitor.config.load import Config
from monitor.core.models import utcnow

if TYPE_CHECKING:  # httpx is imported by the first webhook sent (memory: issue #17)
    import httpx

SEND_TIMEOUT = 120.0  # well inside the lease: a row is never sent twice at once

Channel = EmailChannel | WebhookChannel


async def send(
    cfg: Config,
    channel: Channel,
    target: str,
    alert: dict[str, Any],
    delivery_id: str,
    client: httpx.AsyncClient | None = None,
) -> str | None:
    """Send one alert through one channel now; None on success, else the error line."""
    if isinstance(channel, WebhookChannel):
        import httpx

        own = client or httpx.AsyncClient(follow_redirects=False)
        try:
            return await notifiers.post_webhook(
                own,
                webhook(channel),
                alert,
                delivery_id=delivery_id,
                remind_every=cfg.alerts.remind_every,
                timezone=cfg.reports.timezone,
            )
        finally:
            if own is not client:
                await own.aclose()
    try:
        account = cfg.account(channel.account)
    except KeyError:
        return f"account {channel.account} is no longer in the config"
    return await notifiers.send_email(
        account,
        target,
        alert,
        delivery_id=delivery_id,
        state_dir=cfg.monitor.state_dir,
        timezone=cfg.reports.timezone,  # the one timezone the config has: [reports]
    )


async def send_test_alerts(cfg: Config) -> list[tuple[str, str, str | None]]:
    """One test message through every channel and target now: (channel, target, error)."""
    hide_urls(cfg)
    at = utcnow()
    targets = [(c, to) for c in cfg.alerts.email for to in c.to]
    targets += [(c, "") for c in cfg.alerts.webhook]

    async def one(channel: Channel, target: str) -> tuple[str, str, str | None]:
        alert = alertmsg.describe_test(instance=cfg.monitor.instance, at=at, channel=channel.name)
        delivery_id = f"{alert['id']}#{channel.name}" + (f"/{target}" if target else "")
        try:
            async with asyncio.timeout(SEND_TIMEOUT):
                error = await send(cfg, channel, target, alert, delivery_id)
        except TimeoutError:
            error = f"not sent within {SEND_TIMEOUT:g}s"
        return channel.name, target, error

    return list(await asyncio.gather(*(one(c, t) for c, t in targets)))


def hide_urls(cfg: Config) -> None:
    """Webhook URLs (and their paths, where Slack and Teams keep the token) never reach a log."""
    for channel in cfg.alerts.webhook:
        parts = urlsplit(channel.url)
        logs.hide(channel.url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        if len(path) >= 16:  # a token's length; "/mailcanary" would hide file paths too
            logs.hide(path)


def webhook(channel: WebhookChannel) -> notifiers.Webhook:
    secret = channel.secret.get_secret_value().encode() if channel.secret else None
    return notifiers.Webhook(channel.name, channel.url, channel.format, secret, channel.timeout)
