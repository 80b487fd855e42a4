"""The one terminal every command writes to."""

from __future__ import annotations

from rich.console import Console

# markup=False: data (SMTP replies, folder names, config keys like [[alerts.email]]) is
# printed as it is; a call that styles its text says markup=True and escapes what it inserts.
out = Console(markup=False)
if not out.is_terminal:
    out = Console(markup=False, width=200)  # piped: do not wrap at 80 columns
