"""The exit codes every `mailcanary` command shares.

Probe follows Nagios (0 inbox, 1 spam/late, 2 missing/send_failed, 3 check_failed); 78 bad
config (EX_CONFIG); 74 database or state trouble (EX_IOERR); 69 the demo's mail stack is
unavailable (EX_UNAVAILABLE); 70 an internal error; 75 `run` found its instance name held by
another running daemon (EX_TEMPFAIL). A leaf: the commands entry.py answers before typer
loads need them too.
"""

from __future__ import annotations

EX_CONFIG, EX_IOERR, EX_UNAVAILABLE, EX_SOFTWARE = 78, 74, 69, 70
EX_TEMPFAIL = 75  # `run`: another daemon runs this instance name (core.sharing.TAKEN_EXIT)
