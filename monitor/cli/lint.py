"""`mailcanary lint-message FILE`: the content checks of a message before it is sent."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from monitor.cli.common import config, fail, known_account


def lint_command(
    file: Path, account: str | None, *, bulk: bool | None, spamd: str | None, as_json: bool
) -> int:
    from monitor.content.lint import lint_file

    email = known_account(config(), account).email if account else None
    host, _, port = (spamd or "").rpartition(":")
    if spamd is not None and not (host and port.isdigit()):
        fail(f'--spamd: expected HOST:PORT, got "{spamd}"', 64)
    address = (host, int(port)) if spamd else None
    lines, shape, code = lint_file(file, account_email=email, bulk=bulk, spamd=address)
    typer.echo(json.dumps(shape, ensure_ascii=False) if as_json else "\n".join(lines))
    return code
