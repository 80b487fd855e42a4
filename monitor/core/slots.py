"""Slot arithmetic: time cut into whole intervals since the epoch, one canary per slot.

A route × recipient sends at most once per slot (the store's claim is on the slot's start),
and the scheduler fires each route once per slot, at the route's phase in it plus a little
jitter, so phase + jitter stays inside the slot however long the daemon runs.
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime

PHASE_SPAN = 0.8  # of the interval; the jitter gets at most the next tenth


def slot_start(epoch: float, interval: float) -> float:
    """The start (epoch seconds) of the slot `epoch` falls in."""
    return math.floor(epoch / interval) * interval


def slot_for(moment: datetime, interval: float) -> datetime:
    """The start of the slot `moment` falls in, in `moment`'s time zone."""
    return datetime.fromtimestamp(slot_start(moment.timestamp(), interval), moment.tzinfo)


def phase(route_name: str, interval: float) -> float:
    """Seconds into each slot at which a route fires: spread over the first 80 % of the slot,
    so 1,000 routes with one interval do not all send in the same few seconds, and stable per
    route name, so instances sharing a database compete for a slot at the same moment."""
    digest = hashlib.blake2b(route_name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * PHASE_SPAN * interval


def jitter(interval: float) -> float:
    """Spreads runs a little around their phase without leaving their slot."""
    return min(interval / 10, 30.0)


def next_run(previous: float | None, now: float, interval: float, offset: float) -> float:
    """The next run (epoch seconds): in the slot after `previous`'s, or at the first run the
    current slot's offset (phase + this run's jitter) if it is still ahead."""
    if previous is not None:
        return slot_start(previous, interval) + interval + offset
    start = slot_start(now, interval)
    return start + offset if start + offset >= now else start + interval + offset
