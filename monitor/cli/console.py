"""The one terminal every command writes to."""

from __future__ import annotations

from rich.console import Console

out = Console()
if not out.is_terminal:
    out = Console(width=200)  # piped to a file or a pager: do not wrap at 80 columns
