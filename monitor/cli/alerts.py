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

from rich.table import Table
from rich.text import Text
from sqlalchemy import inspect

from monitor.adapters.alertstore import AlertStore, Delivery, evidence_json
from monitor.adapters.store import Store
from monitor.alerts.dispatch import send_test_alerts
from monitor.alerts.message import investigate
from monitor.alerts.state import AlertState, Status, transition_id
from monitor.config.load import Config
from monitor.probe.oneshot import out

STYLE = {Status.FIRING: "bold red", Status.PENDING: "yellow", Status.RESOLVED: "green"}


async def load_alerts(cfg: Config, *, include_all: bool) -> list[tuple[AlertState, list[Delivery]]]:
    """Alerts newest first with the deliveries of their latest transition."""
    from monitor.cli.status import _sqlite_file  # late: status imports this module

    database = _sqlite_file(cfg.monitor.database)
    if database is not None and not database.exists():
        return []  # opening it would create it
    store = await Store.open(cfg.monitor.database)
    try:
        async with store.engine.connect() as connection:
            if not await connection.run_sync(lambda c: inspect(c).has_table("alerts")):
                return []
        alerts = AlertStore(store.engine)
        wanted = (
            [Status.PENDING, Status.FIRING, Status.RESOLVED] if include_all else [Status.FIRING]
        )
        states = [s.state for s in (await alerts.load(statuses=wanted)).values()]
        if not include_all:
            pairs = {(r.name, to) for r in cfg.routes for to in r.recipients}
            states = [s for s in states if (s.route, s.recipient) in pairs]
        ids = {transition_id(s): s for s in states}
        found = await alerts.deliveries(transition_ids=ids, limit=10_000) if ids else []
    finally:
        await store.close()
    by_transition: dict[str, list[Delivery]] = {}
    for delivery in reversed(found):
        by_transition.setdefault(delivery.transition_id, []).append(delivery)
    states.sort(
        key=lambda s: s.fired_at or s.since or s.last_bad_at or s.last_seen_at, reverse=True
    )
    return [(s, by_transition.get(transition_id(s), [])) for s in states]


def alert_dict(state: AlertState, deliveries: list[Delivery]) -> dict[str, Any]:
    evidence = evidence_json(state.evidence)
    failure = evidence.pop("failure") if evidence else None
    if evidence is not None:
        evidence.pop("sender")
    return {
        "route": state.route,
        "to": state.recipient,
        "kind": state.kind.value,
        "status": state.status.value,
        "since": _iso(state.since),
        "fired_at": _iso(state.fired_at),
        "resolved_at": _iso(state.resolved_at),
        "last_good_at": _iso(state.last_good_at),
        "consecutive_failures": state.bad_streak,
        "canary": evidence,
        "failure": None
        if failure is None
        else {k: failure[k] for k in ("kind", "phase", "code", "enhanced", "message")},
        "investigate": investigate(state.route),
        "deliveries": [
            {
                "channel": d.channel,
                "target": d.target or None,
                "event": d.event,
                "status": d.status,
                "attempts": d.attempts,
                "last_error": d.last_error,
                "sent_at": _iso(d.sent_at),
            }
            for d in deliveries
        ],
    }


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
            out.print(f"[green]sent[/]    {where}", highlight=False)
        else:
            out.print(f"[red]failed[/]  {where}: {error}", highlight=False)
    return 0 if all(error is None for _, _, error in results) else 1


def _detail(alert: dict[str, Any]) -> str:
    failure, canary = alert["failure"], alert["canary"]
    if failure is not None:
        code = " ".join(str(p) for p in (failure["code"], failure["enhanced"]) if p)
        return f"{failure['kind']} {code}: {failure['message']}"[:100]
    if canary is not None and canary["folder"]:
        return f'{canary["verdict"]} in "{canary["folder"]}"'
    return canary["verdict"] if canary else ""


def _iso(moment: Any) -> str | None:
    return moment.isoformat() if moment else None


def _local(moment: Any) -> str:
    return moment.astimezone().strftime("%m-%d %H:%M") if moment else ""
