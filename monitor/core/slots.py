"""Slot arithmetic: time cut into whole intervals since the epoch, one canary per slot.

A route × recipient sends at most once per slot (the store's claim is on the slot's start),
and the scheduler fires each route once per slot, at the route's phase in it plus a little
jitter, so phase + jitter stays inside the slot however long the daemon runs. A first run
(a start, a restart, a reload) takes the slot it starts in while that has room, whatever the
route's phase: the claim keeps it to one canary if an earlier run already sent that slot's.
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime

PHASE_SPAN = 0.8  # of the interval; the jitter gets at most the next tenth
LATEST = 0.9  # of the interval: no run fires later in its slot (phase + jitter stays below)
MAX_SQUEEZE = 4.0  # first runs squeezed into what is left of a slot: at most this much faster


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


def next_run(previous: float, interval: float, offset: float) -> float:
    """The run after `previous` (epoch seconds): in the following slot, at `offset` into it
    (phase + this run's jitter)."""
    return slot_start(previous, interval) + interval + offset


def first_run(now: float, interval: float, soon: float, span: float) -> float:
    """A route's first run (epoch seconds) after a start, or a reload that adds or changes it.

    The daemon paces first runs (`soon` seconds from now for this route, `span` for its last
    one) so a start does not send to every mailbox at once. They go in the current slot
    whatever the routes' phases, so a start late in a slot loses it for no route: by `LATEST`
    of the slot, the same bound regular runs keep, so each run's claim lands in the slot it
    was placed in and the next slot's runs come after. A pacing that would overrun that bound
    is squeezed into the room left, in the same order, but never more than `MAX_SQUEEZE` times
    faster, so a start near the end of a slot is no burst. When even that cannot fit them all,
    none of them take the slot (a slot some routes had and others lacked would be a gap in
    the record of the others): they all go from the next slot's start, which is then their
    first, squeezed into it the same way if need be.
    """
    room = max(slot_start(now, interval) + LATEST * interval - now, 0.0)
    if room == 0 or span > room * MAX_SQUEEZE:
        now, room = slot_start(now, interval) + interval, LATEST * interval
    squeeze = 1.0 if span <= room else max(room / span, 1 / MAX_SQUEEZE)
    return now + min(soon, span) * squeeze
