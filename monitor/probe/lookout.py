"""When a watcher looks at its folders again while canaries are on their way.

Servers delay their IDLE pushes: Dovecot coalesces changes for a fixed 0.5 s, and big providers
have delays of their own (not measured here). Waiting for the push alone would add that delay
to every verdict and to every measured delivery time. A watcher that knows a canary was just
handed off looks for itself: soon after the hand-off, then ever less often (a quarter of the
canary's age), and not at all once the canary is older than `WINDOW` — by then it is late,
and the push (or polling) serves. A mailbox with nothing on its way is never looked at
outside IDLE: no busy polling.
"""

from __future__ import annotations

from collections.abc import Iterable

FIRST_LOOK = 0.1  # seconds: a local server delivers in ~0.1-0.3 s
MAX_GAP = 15.0
WINDOW = 120.0


def gap(age: float) -> float:
    """Seconds between looks for a canary handed off `age` seconds ago."""
    return min(max(FIRST_LOOK, age / 4), MAX_GAP)


def pause_before_look(ages: Iterable[float], since_look: float) -> float | None:
    """Seconds to wait before the next look at a folder, given the ages of the canaries on
    their way to it and the seconds since it was last looked at; None: wait for the server.

    A hand-off counts as a look for its own canary: it cannot have arrived before it left.
    """
    due = [gap(age) - min(age, since_look) for age in ages if 0 <= age < WINDOW]
    if not due:
        return None
    return max(min(due), 0.0)
