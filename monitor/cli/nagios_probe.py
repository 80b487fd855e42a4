"""`mailcanary probe --nagios` as the console script runs it, before typer loads (entry.py):
one canary per (route, recipient) now, one plugin line (nagios.py).

What the typer command does for `probe --nagios` without other options, without its
command-line framework and live table: the same config checks (configured.checked_config), the
same probes (probe_once), the same line; a failure says what run_async says, with its code
(untyped.py).
A probe still loads SQLAlchemy, structlog, the mail libraries and TLS; typer was ~0.07 CPU-s
of it (issue #17).
"""

from __future__ import annotations

from pathlib import Path

from monitor.cli.argv import default_config_path
from monitor.cli.configured import checked_config
from monitor.cli.nagios import canaries, plugin_error, plugin_output


def probe_check(config_path: Path | None, *, verbose: bool = False) -> int:
    cfg = checked_config(config_path or default_config_path(), routes=True)
    if cfg is None:
        # Nagios reads exit codes above 3 as out of range: a broken config is UNKNOWN.
        line, code = plugin_error("bad config (see stderr)")
        print(line, flush=True)
        return code
    import asyncio

    from monitor import logs
    from monitor.probe.oneshot import probe_once

    # The plugin line says why a mailbox could not be watched; -v shows the retries.
    logs.configure("INFO" if verbose else "ERROR")
    try:
        records = asyncio.run(probe_once(cfg, cfg.routes, deadline=cfg.monitor.deadline))
    except (KeyboardInterrupt, Exception) as exc:
        from monitor.cli.untyped import explained

        return explained(exc)
    line, code = plugin_output(canaries(records))
    print(line, flush=True)
    return code
