"""Loading the config for a command: one way for every command, typer's or not.

A leaf without typer or rich at the top: the Nagios checks (entry.py) load the config before
either is imported, and common.config wraps this for the typer commands.
"""

from __future__ import annotations

from pathlib import Path

from monitor.config.load import Config, ConfigError, load_config


def checked_config(path: Path, *, routes: bool = False) -> Config | None:
    """The config, or None once its problems are on stderr; warnings go there too (console.py:
    rich, loaded only when there is something to print). `routes`: a command that sends needs
    one; with none it would check nothing and say all is well."""
    try:
        cfg = load_config(path)
        if routes:
            cfg.require_routes()
    except ConfigError as exc:
        from monitor.cli.console import show_problems

        show_problems(exc.problems)
        return None
    if cfg.warnings:
        from monitor.cli.console import show_warnings

        show_warnings(cfg.warnings)
    return cfg
