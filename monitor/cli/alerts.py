"""`mailcanary alerts` and `mailcanary test-alert`.

`alerts` reads the database (safe beside a running daemon, like `status`). Without --all it
shows the alerts firing now on configured routes; with --all also pending and resolved ones,
and those of routes no longer configured. With --json, one object per alert per line; these
field names are a stable interface (times ISO 8601 UTC, null when there is none):

    route, to, kind     what the alert is about (kind: send_failed | check_failed |
                        missing | spam | slow)
    status              pending | firing | resolved
    since               planned time of the first bad canary of the episode
    fired_at, resolved_at, last_good_at
    consecutive_failures  bad canaries in a row (0 once resolved)
    canary              the newest bad canary: {probe_id, planned_at, verdict, folder,
                        delivery_seconds}
    failure             its {kind, phase, code, enhanced, message}, or null
    investigate         mailcanary history --route …
    deliveries          of the latest message about it: [{channel, target, event, status
                        (pending | sent | failed), attempts, last_error, sent_at}]
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from monitor.alerts.channels import send_test_alerts
from monitor.alerts.query import alert_dict, load_alerts
from monitor.alerts.state import Status
from monitor.cli.console import out
from monitor.cli.tables import shorten
from monitor.config.load import Config

STYLE = {Status.FIRING: "bold red", Status.PENDING: "yellow", Status.RESOLVED: "green"}


async def show_alerts(cfg: Config, *, include_all: bool, as_json: bool) -> int:
    alerts = await load_alerts(cfg, include_all=include_all)
    if as_json:
        for state, deliveries in alerts:
            sys.stdout.write(json.dumps(alert_dict(state, deliveries), ensure_ascii=False) + "\n")
        return 0
    caption = None if alerts else ("no alerts recorded" if include_all else "no alert firing")
    table = Table(title="mailcanary alerts", caption=caption, header_style="bold")
    for column in ("status", "kind", "route", "to", "since", "last good", "deliveries"):
        table.add_column(column, no_wrap=column not in ("route", "to", "deliveries"))
    table.add_column("detail", overflow="fold", min_width=24)
    for state, deliveries in alerts:
        alert = alert_dict(state, deliveries)
        table.add_row(
            Text(state.status.value, style=STYLE.get(state.status, "")),
            state.kind.value,
            state.route,
            state.recipient,
            _local(state.since),
            _local(state.last_good_at) or "never",
            ", ".join(f"{d['channel']}: {d['status']}" for d in alert["deliveries"]),
            _detail(alert),
        )
    out.print(table)
    return 0


async def run_test_alert(cfg: Config) -> int:
    """One test through every channel; exit 0 when all went out, 1 otherwise."""
    if not cfg.alerts.channels:
        out.print("no alert channels configured ([[alerts.email]], [[alerts.webhook]])")
        return 1
    results = await send_test_alerts(cfg)
    for channel, target, error in results:
        where = f"{channel} → {target}" if target else channel
        if error is None:
            out.print(f"[green]sent[/]    {escape(str(where))}", highlight=False, markup=True)
        else:
            out.print(
                f"[red]failed[/]  {escape(str(where))}: {escape(str(error))}",
                highlight=False,
                markup=True,
            )
    return 0 if all(error is None for _, _, error in results) else 1


def _detail(alert: dict[str, Any]) -> str:
    failure, canary = alert["failure"], alert["canary"]
    if failure is not None:
        code = " ".join(str(p) for p in (failure["code"], failure["enhanced"]) if p)
        return shorten(f"{failure['kind']} {code}: {failure['message']}", 100)
    if canary is not None and canary["folder"]:
        return f'{canary["verdict"]} in "{canary["folder"]}"'
    return canary["verdict"] if canary else ""


def _local(moment: Any) -> str:
    return moment.astimezone().strftime("%m-%d %H:%M") if moment else ""
