"""`mailcanary status`: where each configured mailbox stands, read from the database.

Safe beside a running daemon: one read-only SELECT (`Store.latest_per_pair`) in one short
transaction, and no migration; SQLite's WAL mode lets this reader in while the daemon writes.
Only the (route, recipient) pairs of the config are shown, in config order; a pair with no
decided probe yet shows as "never". Pairs dropped from the config stay in `history`.

With --json, one object per (route, recipient) per line; these field names are a stable
interface (times are ISO 8601 in UTC, null when there is none):

    route             the route's name
    to                the recipient account's name
    last_verdict      verdict of the newest decided probe (newest by planned time);
                      null: never decided
    last_at           when that probe was planned (as in `history`)
    last_success_at   when the newest probe whose verdict is `inbox` was planned. Planned
                      rather than arrival time: every probe has one and it is how probes are
                      ordered. Spam and late are not successes: the canary did not land where
                      and when it should have.
    delivery_seconds  hand-off to arrival of the newest decided probe; null when it did not
                      arrive (missing, send_failed, check_failed) or had no hand-off
    arrival_window_seconds  how wide that probe's arrival window is: the true arrival lies
                      between the last look that missed the canary (or the hand-off) and
                      the first sign of it, so this bounds the error of delivery_seconds;
                      null when unknown (probes recorded before this field, no arrival)
    failure           that probe's failure kind (rejected, auth_failed, connect_failed, …)
    in_flight         probes planned, sending or sent and not decided yet
    open_alerts       the pair's firing alerts: [{kind, since, fired_at}] (see
                      `mailcanary alerts` for the details)
    watched_by        PostgreSQL only: the instance holding the recipient mailbox's lease
                      (the one watching it); null while nobody holds it
    heartbeat_at      PostgreSQL only: that instance's last heartbeat; null likewise

Without --json, a PostgreSQL database adds a table of the instances: live or not, last
heartbeat, and the mailboxes each watches (`monitor.lease` decides who counts as live).

The exit code follows `probe`: the worst of the last verdicts (0 inbox, 1 spam/late,
2 missing/send_failed, 3 check_failed); pairs never decided do not count.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.table import Table

from monitor.adapters.leases import Fleet
from monitor.adapters.store import PairLatest, Store, missing_file
from monitor.alerts.query import load_alerts
from monitor.alerts.state import AlertState
from monitor.cli import tables as render
from monitor.cli.console import out
from monitor.config.load import Config
from monitor.core.models import Decision
from monitor.probe import verdict


async def show_status(cfg: Config, *, as_json: bool) -> int:
    database = missing_file(cfg.monitor.database)
    missing = database is not None
    # Opening a missing SQLite file would create it: a status query must not leave one behind.
    found, fleet = ([], None) if missing else await _latest(cfg)
    latest = {(p.route, p.recipient): p for p in found}
    firing: dict[tuple[str, str], list[AlertState]] = {}
    for state, _ in [] if missing else await load_alerts(cfg, include_all=False):
        firing.setdefault((state.route, state.recipient), []).append(state)
    pairs = [
        latest.get((route.name, to)) or PairLatest(route.name, to, None, None, 0)
        for route in cfg.routes
        for to in route.recipients
    ]
    if as_json:
        for pair in pairs:
            alerts = firing.get((pair.route, pair.recipient), [])
            line = status_dict(pair, alerts)
            if fleet is not None:  # PostgreSQL only: SQLite's lines stay as they were
                line |= watcher_dict(fleet, pair.recipient)
            sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
    else:
        rows = [
            (
                p.route,
                p.recipient,
                p.last,
                p.last_inbox_at,
                p.in_flight,
                sorted(a.kind.value for a in firing.get((p.route, p.recipient), [])),
            )
            for p in pairs
        ]
        caption = f"no probes recorded yet: {database} does not exist" if missing else None
        out.print(render.status_table(rows, title="mailcanary status", caption=caption))
        if fleet is not None and fleet.instances:
            out.print(instances_table(fleet))
    decided = [p.last.decision.verdict for p in pairs if p.last and p.last.decision]
    return verdict.exit_code(decided)


def status_dict(pair: PairLatest, open_alerts: list[AlertState] | None = None) -> dict[str, Any]:
    last = pair.last
    decision = last.decision if last else None
    failure = render.failure_of(last) if last else None
    return {
        "route": pair.route,
        "to": pair.recipient,
        "last_verdict": decision.verdict.value if decision else None,
        "last_at": last.planned.planned_at.isoformat() if last else None,
        "last_success_at": pair.last_inbox_at.isoformat() if pair.last_inbox_at else None,
        "delivery_seconds": decision.delivery_seconds if decision else None,
        "arrival_window_seconds": _window(decision),
        "failure": failure.kind if failure else None,
        "in_flight": pair.in_flight,
        "open_alerts": [
            {
                "kind": a.kind.value,
                "since": a.since.isoformat() if a.since else None,
                "fired_at": a.fired_at.isoformat() if a.fired_at else None,
            }
            for a in sorted(open_alerts or [], key=lambda a: a.kind.value)
        ],
    }


def watcher_dict(fleet: Fleet | None, mailbox: str) -> dict[str, Any]:
    owner = fleet.watcher_of(mailbox) if fleet is not None else None
    beat = (
        next((i.heartbeat_at for i in fleet.instances if i.name == owner), None) if fleet else None
    )
    return {"watched_by": owner, "heartbeat_at": beat.isoformat() if beat else None}


def instances_table(fleet: Fleet) -> Table:
    table = Table(title="instances", header_style="bold", expand=False)
    for column in ("instance", "state", "last heartbeat", "mailboxes"):
        table.add_column(column, no_wrap=column != "mailboxes")
    for instance in sorted(fleet.instances, key=lambda i: i.name):
        if instance.stopped_at is not None:
            state = "stopped"
        elif not instance.live:
            state = "silent"  # no heartbeat for a lease time: presumed dead
        else:
            state = "stopping" if instance.stopping else "live"
        ago = (fleet.now - instance.heartbeat_at).total_seconds()
        boxes = ", ".join(instance.mailboxes)
        beat = f"{ago:.0f} s ago"
        if instance.host is not None:
            beat += f" ({instance.host} pid {instance.pid})"
        table.add_row(instance.name, state, beat, f"{len(instance.mailboxes)}: {boxes}")
    return table


def _window(decision: Decision | None) -> float | None:
    if decision is None or decision.arrived_after is None or decision.arrived_before is None:
        return None
    return (decision.arrived_before - decision.arrived_after).total_seconds()


async def _latest(cfg: Config) -> tuple[list[PairLatest], Fleet | None]:
    store = await Store.open(cfg.monitor.database)
    try:
        # Before the daemon's first start there is no table yet; that is "never", not an error.
        if not await store.has_table("probes"):
            return [], None
        return await store.latest_per_pair(), await store.fleet(cfg.monitor.lease)
    finally:
        await store.close()
