"""The `mailcanary` console script (and `python -m monitor.cli`).

`status --nagios` is a passive check a monitoring system runs every few minutes on every
host, with a budget of 0.2 CPU seconds (issue #17): it is answered here, before typer and
rich load (a third of its cost), and so is `probe --nagios` (nagios_probe.py). So is `run`
(serve.py): a daemon keeps whatever it imported for as long as it runs, and it never uses
typer or rich. Every other command, and these with options beyond the global ones, goes
through typer (app.py), which runs the same code for them.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import NoReturn

from monitor.cli.argv import global_options, hoist_global_options


def main() -> None:
    # mailcanary uses no pydantic plugin; looking for one reads the metadata of every
    # installed package on the first model (pydantic's documented switch; a user's own
    # setting wins).
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    args = hoist_global_options(sys.argv[1:])
    found = global_options(args)
    if found is not None and found[2] in (["run"], ["status", "--nagios"], ["probe", "--nagios"]):
        config_path, verbose, (command, *_) = found
        try:
            code = _untyped(command, config_path, verbose)
        except Exception as exc:  # a bug: said as app.main says it, never a traceback
            from monitor.cli.common import internal_error

            internal_error(exc)
        if command == "run":
            sys.exit(code)  # a daemon that ran for months ends as any process does
        _exit_now(code)
    from monitor.cli.app import main as with_typer

    with_typer(args)


def _untyped(command: str, config_path: Path | None, verbose: bool) -> int:
    if command == "run":
        from monitor.cli.serve import serve

        return serve(config_path, verbose=verbose)
    if command == "status":
        from monitor.cli.passive import passive_check

        return passive_check(config_path, verbose=verbose)
    from monitor.cli.nagios_probe import probe_check

    return probe_check(config_path, verbose=verbose)


def _exit_now(code: int) -> NoReturn:
    """End a check without the interpreter's teardown (freeing every module and object: ~6%
    of a check's CPU, issue #17). Nothing is left to finish by then: the store is closed, the
    event loop and its threads are gone; the two streams are flushed here."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError):  # a closed pipe: the exit code still counts
            stream.flush()
    os._exit(code)
