"""The DNS posture runs, kept in the state directory so a report can say what changed.

`dns-posture.json` holds the newest KEEP runs: {"at": ISO UTC, "account": name,
"findings": [{"check", "target", "status", "detail", "remedy"}]}. The daemon's weekly check
and every report that checks DNS append to it; a report compares its own run with the
newest earlier one from before its period began. A file rather than a table: it is a
cache of what can be checked again at any time, losing it only loses the comparison, and
it needs no migration. Written to a temporary file and renamed, so a reader never sees half
a file; an unreadable or unwritable file is treated as empty (the report goes on).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from monitor.dnscheck.policy import Finding, Status, finding_json

FILE = "dns-posture.json"
KEEP = 200  # runs of one account each: years of weekly checks for a few sending accounts


def _load(state_dir: Path) -> list[dict[str, Any]]:
    try:
        runs = json.loads((state_dir / FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return runs if isinstance(runs, list) else []


def record(state_dir: Path, at: datetime, runs: Mapping[str, Sequence[Finding]]) -> bool:
    """Append one run per account; False when the file could not be written."""
    kept = _load(state_dir)
    for account, findings in runs.items():
        kept.append(
            {
                "at": at.isoformat(),
                "account": account,
                "findings": [finding_json(f) for f in findings],
            }
        )
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=state_dir, prefix=".dns-posture.")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(kept[-KEEP:], out)
        os.replace(name, state_dir / FILE)
    except OSError:
        return False
    return True


def last_before(state_dir: Path, moment: datetime) -> dict[str, tuple[datetime, list[Finding]]]:
    """Each account's newest run at or before `moment`."""
    found: dict[str, tuple[datetime, list[Finding]]] = {}
    for run in _load(state_dir):
        try:
            at = datetime.fromisoformat(run["at"])
            findings = [
                Finding(f["check"], f["target"], Status(f["status"]), f["detail"], f["remedy"])
                for f in run["findings"]
            ]
        except (KeyError, TypeError, ValueError):
            continue  # a run written by another version: skip it rather than fail
        account = str(run.get("account"))
        if at <= moment and (account not in found or found[account][0] < at):
            found[account] = (at, findings)
    return found
