"""What the commands entry.py answers before typer loads share: a failure a user can cause,
said on stderr as run_async says it for every command, turned into its exit code.

typer (and the rich console the line is printed with) load only then, when something failed.
"""

from __future__ import annotations


def explained(exc: BaseException) -> int:
    """The line common.explain prints for `exc`, and its exit code; a bug is raised again."""
    import typer

    from monitor.cli.common import explain

    try:
        explain(exc)
    except typer.Exit as said:
        return said.exit_code
