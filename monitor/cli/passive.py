"""`mailcanary status --nagios`: a passive check that reads the daemon's record.

A Nagios/Icinga/Checkmk user who runs the daemon should not send a second canary per check.
This reads the newest verdict of every configured (route, recipient) and prints one plugin
line (see nagios.py): the worst verdict wins, perfdata carries each mailbox's delivery time,
and a mailbox whose newest verdict is older than two intervals plus the deadline is UNKNOWN:
the daemon or the route has stopped.

It runs before typer and rich load (entry.py), so it imports neither at the top: on SQLite
it reads the file with the standard library (adapters/quickread.py) without an event loop;
PostgreSQL goes through the Store, and a config's problems or warnings are printed the way
every command prints them (console.py): those paths load what they need when they need it.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from monitor.adapters.quickread import newest_verdicts, sqlite_path
from monitor.cli.argv import default_config_path
from monitor.cli.configured import checked_config
from monitor.cli.nagios import Canary, plugin_error, plugin_output, standing
from monitor.config.load import Config
from monitor.core.models import Verdict

Newest = dict[tuple[str, str], tuple[Canary, datetime]]


def stale_after(cfg: Config, interval: float) -> float:
    """Two missed rounds, plus the time a canary may take to be judged."""
    return 2 * interval + cfg.monitor.deadline


def nagios_status(cfg: Config, newest: Newest, now: datetime | None = None) -> tuple[str, int]:
    """The plugin line for `newest` (the record's newest verdict per pair) against `cfg`."""
    now = now or datetime.now(UTC)
    pairs = [(r.name, to, stale_after(cfg, r.interval)) for r in cfg.routes for to in r.recipients]
    return plugin_output(standing(newest, pairs, now))


def _from_sqlite(path: Path) -> Newest | tuple[str, int]:
    """The record in a SQLite file, or the plugin line saying why there is none."""
    if not path.exists():
        return plugin_error(f"no probes recorded yet: {path} does not exist")
    try:
        found = newest_verdicts(path)
    except sqlite3.Error as exc:
        return plugin_error(f"{path}: {exc}")
    if found is None:
        return plugin_error(f"no probes recorded yet in {path}")
    return {
        (n.route, n.recipient): (
            Canary(n.route, n.recipient, Verdict(n.verdict), n.delivery_seconds, n.failure),
            n.planned_at,
        )
        for n in found
    }


async def _from_store(cfg: Config) -> Newest:
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


def _with_store(cfg: Config, verbose: bool) -> Newest | tuple[str, int]:
    import typer

    from monitor.cli.common import log_level, run_async, state

    state.verbose = verbose
    log_level("ERROR")  # the Store's libraries log; the SQLite reader does not
    try:
        return run_async(lambda: _from_store(cfg))
    except typer.Exit:  # run_async said why on stderr; Nagios needs its own code
        return _unreadable()


def _explained(exc: BaseException) -> tuple[str, int]:
    """A failure of the SQLite read, said on stderr as every command says it (run_async)."""
    import typer

    from monitor.cli.common import explain

    try:
        explain(exc)
    except typer.Exit:
        return _unreadable()


def _unreadable() -> tuple[str, int]:
    return plugin_error("the record could not be read (see stderr)")


def passive_check(config_path: Path | None, *, verbose: bool = False) -> int:
    """The command: prints the plugin line; exit codes 0-3 only, whatever goes wrong
    (Nagios reads others as errors)."""
    line, code = _check(config_path or default_config_path(), verbose)
    print(line, flush=True)
    return code


def _check(path: Path, verbose: bool) -> tuple[str, int]:
    cfg = checked_config(path)
    if cfg is None:
        # Nagios reads exit codes above 3 as out of range: a broken config is UNKNOWN.
        return plugin_error("bad config (see stderr)")
    if not cfg.routes:
        return plugin_error("no routes configured")
    database = sqlite_path(cfg.monitor.database)
    if database is None:
        found = _with_store(cfg, verbose)
    else:
        try:
            found = _from_sqlite(database)
        except (KeyboardInterrupt, OSError) as exc:
            found = _explained(exc)
    if isinstance(found, tuple):
        return found
    return nagios_status(cfg, found)
