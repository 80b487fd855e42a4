"""Slot coverage for bench/scale.py: a canary per route in every slot the daemon ran through,
the one it started in included (monitor.core.slots.first_run says when that one has room).

The run is stopped late in a slot, after every regular run of it has fired (they all fire by
LATEST of it), so the last slot counts whole too.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from monitor.core.slots import LATEST, first_run, jitter, slot_start
from monitor.daemon.main import FIRST_RUNS_PER_SECOND

STOP_AT = LATEST + 0.04  # of the slot: past its last run and the schedule lag, before its end


def stop_moment(earliest: float, interval: float) -> float:
    """The first moment from `earliest` at STOP_AT of a slot."""
    at = slot_start(earliest, interval) + STOP_AT * interval
    return at if at >= earliest else at + interval


def scheduler_started(log: Path) -> float | None:
    """When the daemon's scheduler started running (its 'mailcanary running' line)."""
    for line in log.read_text(errors="replace").splitlines():
        if '"event": "mailcanary running"' in line:
            return datetime.fromisoformat(json.loads(line)["timestamp"]).timestamp()
    return None


def coverage(
    claims: set[tuple[str, float]],
    routes: set[str],
    started: float,
    stopped: float,
    interval: float,
) -> dict[str, Any]:
    """(route, slot start) claims against every route in every slot from the first one all
    the daemon's first runs fit in to the one it was stopped in; and how many routes took the
    slot it started in when not all of them fit."""
    span = 1 + (len(routes) - 1) / FIRST_RUNS_PER_SECOND + min(jitter(interval), 5)
    first = slot_start(first_run(started, interval, span, span), interval)
    began = slot_start(started, interval)
    last = slot_start(stopped, interval)
    slots = round((last - first) / interval) + 1
    covered = {(route, slot) for route, slot in claims if route in routes and first <= slot <= last}
    return {
        "slots_planned": len(covered),
        "slots_expected": len(routes) * slots,
        "slots_covered": slots,
        "start_into_slot": round(started - began, 1),
        "first_slot_kept": first == began,
        "first_slot_routes": len({route for route, slot in claims if slot == began}),
    }
