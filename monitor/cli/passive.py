"""`mailcanary status --nagios`: a passive check that reads the daemon's record.

A Nagios/Icinga/Checkmk user who runs the daemon should not send a second canary per check.
This reads the newest verdict of every configured (route, recipient) and prints one plugin
line (see nagios.py): the worst verdict wins, perfdata carries each mailbox's delivery time,
and a mailbox whose newest verdict is older than two intervals plus the deadline is UNKNOWN:
the daemon or the route has stopped. On SQLite it reads the file with the standard library
(adapters/quickread.py) so a check stays cheap; PostgreSQL goes through the Store.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import typer

from monitor.adapters.quickread import newest_verdicts, sqlite_path
from monitor.cli.common import config, log_level, run_async
from monitor.cli.nagios import Canary, plugin_error, plugin_output, standing
from monitor.config.load import Config
from monitor.core.models import Verdict


def stale_after(cfg: Config, interval: float) -> float:
    """Two missed rounds, plus the time a canary may take to be judged."""
    return 2 * interval + cfg.monitor.deadline


async def nagios_status(cfg: Config, now: datetime | None = None) -> tuple[str, int]:
    now = now or datetime.now(UTC)
    pairs = [(r.name, to, stale_after(cfg, r.interval)) for r in cfg.routes for to in r.recipients]
    if not pairs:
        return plugin_error("no routes configured")
    path = sqlite_path(cfg.monitor.database)
    if path is not None:
        if not path.exists():
            return plugin_error(f"no probes recorded yet: {path} does not exist")
        try:
            found = newest_verdicts(path)
        except sqlite3.Error as exc:
            return plugin_error(f"{path}: {exc}")
        if found is None:
            return plugin_error(f"no probes recorded yet in {path}")
        newest = {
            (n.route, n.recipient): (
                Canary(n.route, n.recipient, Verdict(n.verdict), n.delivery_seconds, n.failure),
                n.planned_at,
            )
            for n in found
        }
    else:
        newest = await _from_store(cfg)
    return plugin_output(standing(newest, pairs, now))


async def _from_store(cfg: Config) -> dict[tuple[str, str], tuple[Canary, datetime]]:
    from monitor.adapters.store import Store
    from monitor.cli.nagios import canaries

    store = await Store.open(cfg.monitor.database)
    try:
        if not await store.has_table("probes"):
            return {}
        latest = await store.latest_per_pair()
    finally:
        await store.close()
    return {
        (p.route, p.recipient): (canaries([p.last])[0], p.last.planned.planned_at)
        for p in latest
        if p.last is not None
    }


def passive_check() -> int:
    """The command: exit codes 0-3 only, whatever goes wrong (Nagios reads others as errors)."""
    try:
        cfg = config()
    except typer.Exit:
        # Nagios reads exit codes above 3 as out of range: a broken config is UNKNOWN.
        line, code = plugin_error("bad config (see stderr)")
        typer.echo(line)
        return code
    if sqlite_path(cfg.monitor.database) is None:
        log_level("ERROR")  # the Store's libraries log; the SQLite reader does not
    try:
        line, code = run_async(lambda: nagios_status(cfg))
    except typer.Exit:  # run_async said why on stderr; Nagios needs its own code
        line, code = plugin_error("the record could not be read (see stderr)")
    typer.echo(line)
    return code
