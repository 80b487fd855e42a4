"""`mailcanary diagnose ACCOUNT`: the steps with ✓/✗ and a remedy under each ✗, or JSON."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from monitor.cli.console import out as shared_console
from monitor.config.schema import Account
from monitor.diagnose.run import Diagnosis, diagnose, document


def render(diagnosis: Diagnosis, out: Console) -> None:
    out.print(
        f"[bold]mailcanary diagnose {escape(diagnosis.account)}[/]", highlight=False, markup=True
    )
    for s in diagnosis.steps:
        mark = "[green]✓[/]" if s.ok else "[dim]–[/]" if s.ok is None else "[red]✗[/]"
        if s.ok is False and not s.required:
            mark = "[yellow]✗[/]"
        line = f"{mark} {s.service} {s.step} [dim]{escape(s.target)}[/]  {escape(s.detail)}"
        out.print(line, highlight=False, markup=True)
        if s.ok is False and s.remedy:
            out.print(f"    [yellow]→[/] {escape(s.remedy)}", highlight=False, markup=True)
        for note in s.notes:
            out.print(f"      {escape(note)}", highlight=False, markup=True)
    for suggestion in diagnosis.suggestions:
        out.print(f"[bold]Suggestion:[/] {escape(suggestion)}", highlight=False, markup=True)
    verdicts = [
        "[green]all checks passed[/]",
        "[yellow]only optional checks failed[/]",
        "[red]the account as configured does not work[/]",
    ]
    out.print(verdicts[diagnosis.exit_code], markup=True)


async def run_diagnose(
    account: Account,
    *,
    as_json: bool,
    send_test: bool,
    wait: float,
    out: Console | None = None,
    state_dir: Path | None = None,
) -> int:
    """What the CLI calls: diagnose, print, and return the exit code."""
    result = await diagnose(account, send_test=send_test, wait=wait, state_dir=state_dir)
    out = out or shared_console
    if as_json:
        text = json.dumps(document(result), ensure_ascii=False, indent=2)
        out.out(text, highlight=False)  # plain: no markup, no wrapping
    else:
        render(result, out)
    return result.exit_code
