"""Which instance watches which seed mailbox: the pure rules behind the leases.

Every instance computes the same `assign` from the same inputs (the mailboxes of the config
and the live instances read from the database), so they agree without talking to each other.
Rendezvous hashing ranks the instances per mailbox; a bound of ceil(M/K) mailboxes per
instance keeps the shares fair (plain rendezvous only balances on average: with 3 instances
and 10 mailboxes one may get 6). A new instance takes over the mailboxes that rank it first
and, through the bound, a few more; a leaving one gives up its own and nobody else's moves
beyond the bound's reshuffle.

`plan` turns the assignment and the leases as they stand into what this instance does this
round. A mailbox changes hands make-before-break: the new owner starts watching and offers
itself as successor once its sessions are up; the old owner then stops and hands the lease
over. So a mailbox has two watchers only during a hand-over, and none only after a crash.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Lease:
    """One mailbox's lease as stored: its owner until `expires_at`, and a ready successor."""

    mailbox: str
    owner: str
    expires_at: datetime
    successor: str | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """One round for one instance. Mailbox names only; the adapter and the loop act on them."""

    renew: frozenset[str]  # ours, kept (including those waiting for their successor)
    take: frozenset[str]  # assigned to us and free: no lease, or its lease expired
    wait: frozenset[str]  # assigned to us, still leased by a live owner: watch, offer ourselves
    hand_over: Mapping[str, str]  # ours, assigned elsewhere, successor ready: mailbox -> it
    drop: frozenset[str] = frozenset()  # ours, but no longer any instance's to watch

    @property
    def watch(self) -> frozenset[str]:
        """The mailboxes whose watcher runs here after this round."""
        return (self.renew - self.hand_over.keys() - self.drop) | self.take | self.wait


def fair_share(mailboxes: int, instances: int) -> int:
    """The most mailboxes one instance is assigned: ceil(M/K)."""
    return math.ceil(mailboxes / instances) if instances else 0


def score(mailbox: str, instance: str) -> int:
    """Rendezvous weight: a stable hash of the pair, the same on every machine."""
    digest = hashlib.blake2b(f"{mailbox}\0{instance}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def assign(mailboxes: Iterable[str], instances: Iterable[str]) -> dict[str, str]:
    """mailbox -> instance: each mailbox to its best-ranked instance that still has room."""
    boxes = sorted(set(mailboxes))
    live = sorted(set(instances))
    if not live:
        return {}
    room = dict.fromkeys(live, fair_share(len(boxes), len(live)))
    chosen: dict[str, str] = {}
    # Total room is K * ceil(M/K) >= M, so every mailbox finds an instance with room.
    for mailbox in boxes:
        ranked = sorted(live, key=lambda instance: (-score(mailbox, instance), instance))
        owner = next(instance for instance in ranked if room[instance] > 0)
        room[owner] -= 1
        chosen[mailbox] = owner
    return chosen


def plan(
    me: str,
    now: datetime,
    assignment: Mapping[str, str],
    leases: Mapping[str, Lease],
    live: Iterable[str],
) -> Plan:
    """What `me` does with each mailbox of the assignment this round.

    A lease counts while it has not expired; a successor counts only while it is live and is
    the mailbox's assigned owner (one that died or lost the assignment is ignored).
    """
    alive = set(live)
    renew, take, wait, drop = set(), set(), set(), set()
    hand_over: dict[str, str] = {}
    for mailbox in sorted(set(assignment) | set(leases)):
        lease = leases.get(mailbox)
        held = lease is not None and lease.expires_at > now
        assigned = assignment.get(mailbox)
        if held and lease is not None and lease.owner == me:
            if assigned is None:
                drop.add(mailbox)  # gone from the config: nobody is to watch it
                continue
            renew.add(mailbox)
            successor = lease.successor
            if assigned not in (None, me) and successor == assigned and successor in alive:
                hand_over[mailbox] = successor
        elif assigned == me:
            (wait if held else take).add(mailbox)
    return Plan(frozenset(renew), frozenset(take), frozenset(wait), hand_over, frozenset(drop))


# -- one process per instance name ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Holder:
    """The process that heartbeats an instance name, as the name's row says (`owner` is a
    random token per process start; rows written before migration 0009 have none)."""

    owner: str | None
    host: str | None
    pid: int | None
    heartbeat_at: datetime
    stopping: bool


# EX_TEMPFAIL: not a bad config file (78) but a clash with what runs now; it ends when the
# other daemon stops, and a start that finds the name silent proceeds.
TAKEN_EXIT = 75


class InstanceTaken(Exception):
    """Another process runs this instance name: one line naming it, for the user."""


def renewed(first: Holder, latest: Holder) -> bool:
    """Whether the name's holder showed it is alive since we first found it: a new heartbeat
    while not draining, or another process took the name. A crashed holder never renews: we
    wait for its heartbeat to go stale instead (the normal restart after a crash). A draining
    one (SIGTERM) is waited for too: it frees the name when its drain ends."""
    if latest.owner != first.owner:
        return True
    return latest.heartbeat_at > first.heartbeat_at and not latest.stopping


def taken_message(name: str, holder: Holder, now: datetime) -> str:
    age = max(0.0, (now - holder.heartbeat_at).total_seconds())
    host = holder.host or "unknown"
    pid = holder.pid if holder.pid is not None else "unknown"
    return (
        f'monitor.instance: "{name}" is already running (heartbeat {age:.0f} s ago from host'
        f" {host} pid {pid}); give each daemon its own instance name"
    )
