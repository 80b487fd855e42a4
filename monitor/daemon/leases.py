"""The lease loop: on PostgreSQL, this instance's share of the seed mailboxes.

Every third of `monitor.lease` one round: renew the heartbeat, read the fleet, compute the
fair assignment (monitor.core.sharing), hand over what a ready successor waits for, renew and
take leases, start and stop watchers to match, offer ourselves for mailboxes we wait for once
our sessions are up, and adopt the unfinished probes of dead instances to our mailboxes.
A round that cannot reach the database changes nothing; once our leases must have expired
(no renewal for a whole lease time) we stop watching, since someone else may have taken over.

SIGTERM: `stopping()` marks us as draining, so the others take our mailboxes make-before-break
while in-flight probes finish; `close()` then frees what is left and marks us stopped, so our
unfinished probes are adopted at once instead of after the lease time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace

import structlog
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from monitor.adapters.leases import Fleet, SharedWork
from monitor.core import sharing
from monitor.core.sharing import InstanceTaken
from monitor.probe.runner import ProbeRunner

log = structlog.get_logger(__name__)

FAST_ROUNDS = 0.5  # seconds between rounds while handing over at a stop


class LeaseLoop:
    def __init__(
        self, runner: ProbeRunner, work: SharedWork, mailboxes: Callable[[], Iterable[str]]
    ) -> None:
        self.runner = runner
        self.work = work
        self.me = runner.cfg.monitor.instance
        self.lease = runner.cfg.monitor.lease
        self.mailboxes = mailboxes  # the seed mailboxes of the current config
        self.owned: set[str] = set()
        self.fleet: Fleet | None = None
        self._stopping = False
        self._first = True
        self._last_live: set[str] = set()
        self._last_ok = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        self.lost: InstanceTaken | None = None  # another process took our name: we stop
        self.on_lost: Callable[[], None] = lambda: None

    @property
    def watching(self) -> set[str]:
        return set(self.runner.watchers)

    async def claim(self) -> None:
        """Take our instance name before anything acts as it, or raise InstanceTaken.

        A silent name (its process crashed) or a stopped one is taken at once. A name
        heartbeated less than a lease ago is watched: its holder renewing shows it runs (we
        refuse); silence until the lease is over shows it died (we take it, which is how a
        restart right after a crash proceeds). A draining holder is waited for.
        """
        work = self.work
        while not await work.claim(self.me, first=True):
            found = await work.holder(self.me)
            if found is None:
                continue  # the row went away: claim again
            first = found[1]
            log.warning(
                "instance name in use: waiting for its holder to renew it or go silent",
                instance=self.me,
                host=first.host,
                pid=first.pid,
            )
            while True:
                await asyncio.sleep(self.lease / 6)
                if await work.claim(self.me, first=True):
                    self._first = False
                    return
                if (found := await work.holder(self.me)) is not None:
                    now, latest = found
                    if sharing.renewed(first, latest):
                        raise InstanceTaken(sharing.taken_message(self.me, latest, now))
        self._first = False

    async def start(self, ready_timeout: float) -> None:
        """The first round, its watchers given time to log in, then a round every lease/3."""
        await self.round()
        await self.runner.wait_watchers_ready(ready_timeout)
        self._task = asyncio.ensure_future(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(FAST_ROUNDS if self._stopping else self.lease / 3)
            await self.round()

    async def round(self) -> None:
        if self.lost is not None:
            return
        try:
            await self._round()
            self._last_ok = time.monotonic()
        except InstanceTaken as exc:
            # Our heartbeat lapsed and another process took the name: it acts as this
            # instance now, so we stop watching at once and leave its leases and row alone.
            log.error(str(exc) + "; stopping this daemon")
            self.lost = exc
            await self.runner.stop_watchers(list(self.runner.watchers))
            self.owned = set()
            self.on_lost()
        except Exception as exc:  # the database may be away; the next round tries again
            log.error("lease round failed", error=str(exc).splitlines()[0])
            if time.monotonic() - self._last_ok > self.lease and self.runner.watchers:
                log.warning("leases lapsed: no longer watching", mailboxes=len(self.watching))
                await self.runner.stop_watchers(list(self.runner.watchers))
                self.owned = set()

    async def _round(self) -> None:
        fleet = await self.work.heartbeat(self.me, stopping=self._stopping, first=self._first)
        self._first = False
        live = fleet.live
        assignment = sharing.assign(self.mailboxes(), live)
        plan = sharing.plan(self.me, fleet.now, assignment, fleet.leases, live)
        if live != self._last_live:
            # Instances starting together see each other one round apart and compute
            # different assignments: start no new watcher until the fleet looks the same
            # twice, or three may watch one mailbox for a round.
            plan = replace(plan, wait=plan.wait & set(self.runner.watchers))
            self._last_live = live
        for mailbox, successor in plan.hand_over.items():
            # Make-before-break: the successor's sessions are up; ours go, then the lease.
            await self.runner.stop_watchers([mailbox])
            if await self.work.hand_over(self.me, mailbox, successor):
                log.info("mailbox handed over", mailbox=mailbox, to=successor)
        if plan.drop:
            await self.runner.stop_watchers(plan.drop)
            await self.work.release(self.me, plan.drop)
        keep = plan.renew - plan.hand_over.keys() - plan.drop
        owned = await self.work.acquire(self.me, plan.take, keep)
        taken = owned - keep
        for mailbox in sorted(taken):
            holder = fleet.leases.get(mailbox)
            log.info("mailbox taken", mailbox=mailbox, after=holder.owner if holder else None)
        watch = owned | plan.wait
        await self.runner.stop_watchers(set(self.runner.watchers) - watch)
        new = watch - set(self.runner.watchers)
        await self.runner.start_watchers(watch)
        # Offer ourselves this round, not the next, so the hand-over is short: give new
        # sessions up to a third of the lease to log in.
        waiting = [w for m, w in self.runner.watchers.items() if m in new & plan.wait]
        if waiting:
            await asyncio.gather(*(w.wait_ready(self.lease / 3) for w in waiting))
        ready = {m for m in plan.wait if (w := self.runner.watchers.get(m)) and w.connected}
        await self.work.offer(self.me, ready)
        self.owned, self.fleet = owned, fleet
        relay = self.runner.relay
        for mailbox in sorted(taken) if relay is not None else ():
            # Taken, not handed over: canaries may have landed while nobody watched.
            if (watcher := self.runner.watchers.get(mailbox)) is not None:
                self.runner.spawn(relay.catch_up(mailbox, watcher))
        if not self._stopping:
            adopted = await self.work.adopt(self.me, owned)
            if adopted:
                log.info("adopting unfinished probes of a dead instance", count=len(adopted))
                await self.runner.recover(adopted)

    def stopping(self) -> None:
        """SIGTERM: let the others take our mailboxes from the next round on."""
        self._stopping = True

    async def hand_over(self, timeout: float) -> None:  # noqa: ASYNC109 - a bounded wait
        """Wait (at most `timeout`) until our mailboxes have gone to live peers."""
        end = time.monotonic() + timeout
        await self.round()
        while self.owned and time.monotonic() < end:
            if self.fleet is not None and not (self.fleet.live - {self.me}):
                return  # nobody to hand over to: close() frees them
            await asyncio.sleep(FAST_ROUNDS)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.runner.stop_watchers(list(self.runner.watchers))
        if self.lost is not None:
            return  # the name's leases and row are the other process's now
        try:
            await self.work.leave(self.me)
        except Exception as exc:  # unreachable: the leases expire on their own
            log.error("could not free the leases", error=str(exc).splitlines()[0])


class FleetCollector(Collector):
    """`mailcanary_mailbox_watcher_info{account,instance}` (1 per mailbox with a live lease)
    and `mailcanary_instance_heartbeat_timestamp_seconds{instance}`, as of the last round."""

    def __init__(self, loop: LeaseLoop) -> None:
        self.loop = loop

    def collect(self) -> Iterator[GaugeMetricFamily]:
        watcher = GaugeMetricFamily(
            "mailcanary_mailbox_watcher_info",
            "1 for the instance holding the lease on a seed mailbox (it watches it).",
            labels=("account", "instance"),
        )
        heartbeat = GaugeMetricFamily(
            "mailcanary_instance_heartbeat_timestamp_seconds",
            "Unix time of each instance's last heartbeat in the shared database.",
            labels=("instance",),
        )
        fleet = self.loop.fleet
        if fleet is not None:
            for mailbox in sorted(fleet.leases):
                if (owner := fleet.watcher_of(mailbox)) is not None:
                    watcher.add_metric((mailbox, owner), 1)
            for instance in fleet.instances:
                heartbeat.add_metric((instance.name,), instance.heartbeat_at.timestamp())
        yield watcher
        yield heartbeat
