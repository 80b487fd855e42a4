"""The one terminal every command writes to, and its stderr."""

from __future__ import annotations

from rich.console import Console

# markup=False: data (SMTP replies, folder names, config keys like [[alerts.email]]) is
# printed as it is; a call that styles its text says markup=True and escapes what it inserts.
out = Console(markup=False)
if not out.is_terminal:
    out = Console(markup=False, width=200)  # piped: do not wrap at 80 columns
err = Console(stderr=True, markup=False)


def show_problems(problems: list[str]) -> None:
    """A config's problems on stderr, one line each, as every command prints them."""
    for line in problems:
        err.print(line, highlight=False, soft_wrap=True, markup=False)


def show_warnings(warnings: list[str]) -> None:
    for warning in warnings:
        err.print(f"warning: {warning}", highlight=False, markup=False)
