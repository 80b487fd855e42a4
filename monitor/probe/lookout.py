"""When a watcher looks at its folders again while canaries are on their way.

Servers delay their IDLE pushes: Dovecot coalesces changes for a fixed 0.5 s, and big providers
have delays of their own (not measured here). Waiting for the push alone would add that delay
to every verdict and to every measured delivery time. A watcher that knows a canary was just
handed off looks for itself: soon after the hand-off, then ever less often (a quarter of the
canary's age), and not at all once the canary is older than `WINDOW` — by then it is late,
and the push (or polling) serves. A mailbox with nothing on its way gets no looks: INBOX
waits in IDLE, left only every poll interval for one STATUS of the spam folder.

A held delivery (a queue, a filter, greylisting's retry) lands between two looks, and the
verdict can only say it landed after the last look that missed it and before the first that
saw it. So while a canary is younger than `Cadence.fine_for`, looks come at least every
`Cadence.resolution` (less the last look's own round trip): that window stays that narrow.
One look serves every canary on its way to the mailbox (both folders, from its one session:
probe/onesession.py), and however many there are, looks never start less than `MIN_SPACING`
apart. The ceiling: 10 looks a second per mailbox, each a NOOP (INBOX) and a STATUS (the spam
folder), so 20 IMAP commands a second, plus the commands that read mail which did arrive (a
UID FETCH in INBOX; EXAMINE, UID FETCH and SELECT INBOX for the spam folder).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

FIRST_LOOK = 0.1  # seconds: a local server delivers in ~0.1-0.3 s
MIN_SPACING = 0.1  # the ceiling: one look (2 commands) per mailbox per 0.1 s, whatever comes
MAX_GAP = 15.0
WINDOW = 120.0
# A pause this short is waited out without IDLE: entering and leaving IDLE would cost a
# command and a round trip per look, and the push (0.5 s late on Dovecot) cannot beat a look.
IDLE_AT_LEAST = 1.0
# The event loop wakes a few milliseconds after the pause it was given.
WAKE_SLACK = 0.01


@dataclass(frozen=True, slots=True)
class Cadence:
    """How narrow the arrival window is kept (`resolution`, seconds) and for how long after
    the hand-off (`fine_for`, seconds; 0: never, only the backing-off looks)."""

    resolution: float = 0.2
    fine_for: float = 30.0


def gap(age: float, cadence: Cadence | None = None, look_takes: float = 0.0) -> float:
    """Seconds between the starts of two looks for a canary handed off `age` seconds ago,
    when one look takes `look_takes` seconds to answer."""
    backing_off = min(max(FIRST_LOOK, age / 4), MAX_GAP)
    if cadence is None or age >= cadence.fine_for:
        return backing_off
    # The window runs from the start of the look that missed the canary to the answer of the
    # look that saw it: the gap plus one round trip (and the loop's late wake-up).
    fine = max(cadence.resolution - look_takes - WAKE_SLACK, MIN_SPACING)
    return min(backing_off, fine)


def pause_before_look(
    ages: Iterable[float],
    since_look: float,
    cadence: Cadence | None = None,
    look_takes: float = 0.0,
) -> float | None:
    """Seconds to wait before the next look at a folder, given the ages of the canaries on
    their way to it and the seconds since its last look began; None: wait for the server.

    A hand-off counts as a look for its own canary: it cannot have arrived before it left.
    """
    due = [
        gap(age, cadence, look_takes) - min(age, since_look) for age in ages if 0 <= age < WINDOW
    ]
    if not due:
        return None
    return max(min(due), MIN_SPACING - since_look, 0.0)


def worth_idling(pause: float | None) -> bool:
    """Whether to IDLE until the next look (or until the server speaks, when None)."""
    return pause is None or pause >= IDLE_AT_LEAST
