"""`mailcanary run`: the daemon, as the console script starts it before typer loads
(entry.py) and as the typer command starts it with options (app.py).

A daemon lives for months on what it imported at start: typer, rich and the commands' own
modules (~2 MB resident with the rest of the daemon loaded; issue #17) belong to the commands
that print, and the daemon prints nothing; it logs. A failure a user can cause is still said
as every command says it (untyped.py), loading them only then.
"""

from __future__ import annotations

from pathlib import Path

from monitor.cli.argv import default_config_path
from monitor.cli.configured import checked_config
from monitor.cli.exits import EX_CONFIG


def serve(config_path: Path | None, *, verbose: bool = False) -> int:
    """Run the daemon until SIGTERM or SIGINT; its exit code."""
    cfg = checked_config(config_path or default_config_path(), routes=True)
    if cfg is None:
        return EX_CONFIG
    import asyncio

    from monitor import logs
    from monitor.daemon.main import Daemon

    logs.configure("DEBUG" if verbose else "INFO")
    try:
        return asyncio.run(Daemon(cfg).run())
    except (KeyboardInterrupt, Exception) as exc:
        from monitor.cli.untyped import explained

        return explained(exc)
