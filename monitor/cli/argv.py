"""The command line as the console script first sees it, before any CLI framework loads:
global options moved in front of the command, and which config file is meant.

A leaf (standard library only): `entry.py` reads the arguments with it to send
`status --nagios` past typer, and `common.py` gives it to every other command.
"""

from __future__ import annotations

import os
from pathlib import Path

# The global options, and whether each takes a value.
GLOBAL_OPTIONS = {"--config": True, "-c": True, "--verbose": False, "-v": False}


def hoist_global_options(args: list[str]) -> list[str]:
    """`mailcanary check-config --config X` means what `mailcanary --config X check-config`
    does: global options given after the command move in front of it."""
    front: list[str] = []
    rest: list[str] = []
    seen_command = False
    i = 0
    while i < len(args):
        arg = args[i]
        name = arg.split("=", 1)[0]
        if arg == "--":
            rest.extend(args[i:])
            break
        if name in GLOBAL_OPTIONS:
            takes_value = GLOBAL_OPTIONS[name] and "=" not in arg
            taken = args[i : i + 2] if takes_value else [arg]
            (front if seen_command else rest).extend(taken)
            i += len(taken)
            continue
        if not arg.startswith("-"):
            seen_command = True
        rest.append(arg)
        i += 1
    return front + rest


def global_options(args: list[str]) -> tuple[Path | None, bool, list[str]] | None:
    """(--config, --verbose, the rest) when `args` (hoisted) begin with nothing but global
    options; None when anything there needs the full parser (an option it would refuse, a
    missing value, a repeated option, --help)."""
    config: Path | None = None
    verbose = False
    seen: set[str] = set()
    i = 0
    while i < len(args) and args[i].startswith("-"):
        name, has_value, value = args[i].partition("=")
        # Only --config takes "=VALUE": for click, -c=x means the file "=x".
        if name not in GLOBAL_OPTIONS or (has_value and name != "--config"):
            return None
        canonical = {"-c": "--config", "-v": "--verbose"}.get(name, name)
        if canonical in seen:
            return None
        seen.add(canonical)
        if not GLOBAL_OPTIONS[name]:
            verbose = True
            i += 1
            continue
        if not has_value:
            if i + 1 == len(args):
                return None
            value = args[i + 1]
            i += 1
        if not value:
            return None
        config = Path(value)
        i += 1
    return config, verbose, args[i:]


def default_config_path() -> Path:
    env = os.environ
    if env.get("MAILCANARY_CONFIG"):
        return Path(env["MAILCANARY_CONFIG"])
    for base in filter(None, (env.get("CONFIGURATION_DIRECTORY"), "/etc/mailcanary")):
        candidate = Path(base) / "mailcanary.toml"
        if candidate.exists():
            return candidate
    return Path("mailcanary.toml")
