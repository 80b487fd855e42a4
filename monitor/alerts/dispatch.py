"""The alerting loop: verdicts in, state changes and deliveries out, never in the probes' way.

`on_progress` is a `ProbeRunner` progress callback: it only puts the final record on a
bounded queue and returns. One task turns records into state changes (`monitor.alerts.state`)
and writes each change together with its outbox rows in one transaction; another sends what
is due, with exponential backoff (5 s doubling to 10 min, given up after a day) and a lease
per row; a third ticks reminders. A dead webhook or SMTP server only ever delays its own
outbox rows. At start, leases this instance held when it died are freed (those rows go out
again, with the same delivery id), probes finished while alerting was not looking are
replayed (the state machine ignores what it has already seen), and reminders that fell due
meanwhile are sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import structlog

from monitor.adapters.alertstore import AlertStore, Conflict, Delivery, Outgoing, StoredAlert
from monitor.adapters.store import Store
from monitor.alerts import message as alertmsg
from monitor.alerts.channels import SEND_TIMEOUT, Channel, hide_urls, send
from monitor.alerts.state import AlertState, Key, Observation, Transition, observe, step
from monitor.config.alert_settings import WebhookChannel
from monitor.config.load import Config
from monitor.core.models import PlannedProbe, ProbeRecord, utcnow

if TYPE_CHECKING:  # httpx is imported by the first webhook sent (memory: issue #17)
    import httpx

log = structlog.get_logger(__name__)

QUEUE_SIZE = 1000
OBSERVE_BATCH = 200  # verdicts evaluated and written together when they queue up
# How long the first verdict waits for others to share its write. Probes spread over their
# slot finish one by one (1,000 mailboxes a minute: ~17 a second), so without it every
# verdict paid a transaction of its own; an alert leaves at most this much later.
OBSERVE_LINGER = 0.5
LEASE_SECONDS = 300.0
IDLE_POLL = 30.0  # look for due rows (e.g. another instance's) at least this often
REMIND_TICK = 30.0
CATCH_UP_LIMIT = timedelta(days=2)


class Alerting:
    def __init__(
        self,
        cfg: Config,
        store: Store,
        *,
        backoff: tuple[float, float] = (5.0, 600.0),
        give_up_after: float = 86400.0,
    ) -> None:
        self.cfg = cfg
        hide_urls(cfg)
        self.store = AlertStore(store.engine, store.transaction)
        self.owner = cfg.monitor.instance
        self.backoff = backoff
        self.give_up_after = timedelta(seconds=give_up_after)
        self._queue: asyncio.Queue[ProbeRecord] = asyncio.Queue(QUEUE_SIZE)
        self._states: dict[Key, StoredAlert] = {}
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None
        # (channel, "sent" | "failed" | "given_up") after each attempt, e.g. for /metrics.
        self.on_delivery: Callable[[str, str], None] | None = None

    # -- the face towards the runner and the daemon ------------------------------------------

    def on_progress(self, planned: PlannedProbe, stage: str, record: ProbeRecord | None) -> None:
        """A progress callback: O(1), never blocks, never raises."""
        # "late" revisions are left out on purpose: see monitor.alerts.state.
        if stage != "final" or record is None or record.decision is None:
            return
        try:
            self._queue.put_nowait(record)
        except asyncio.QueueFull:
            log.warning("alert queue full; verdict not evaluated", route=planned.route)

    async def start(self, probes: Store | None = None) -> None:
        """Free stale leases, load states, replay missed verdicts, start the loops."""
        freed = await self.store.release(self.owner)
        if freed:
            log.info("resending alert deliveries a stop interrupted", count=freed)
        self._states = await self.store.load()
        if probes is not None:
            await self._catch_up(probes)
        # Reminders that fell due while we were down go out now, not a tick later: a daemon
        # restarted more often than REMIND_TICK would otherwise never send one.
        await self._remind_safely()
        self._tasks = [
            self._spawn(self._observe_loop()),
            self._spawn(self._deliver_loop()),
            self._spawn(self._remind_loop()),
        ]

    async def stop(self, drain: float = 5.0) -> None:
        """Evaluate what is queued (for at most `drain` seconds), then stop the loops."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(drain):
                await self._queue.join()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def reconfigure(self, cfg: Config) -> None:
        self.cfg = cfg
        hide_urls(cfg)
        self._wake.set()

    def states(self) -> list[AlertState]:
        """Known states of configured routes and watched kinds (for /metrics and status)."""
        pairs = {(r.name, to) for r in self.cfg.routes for to in r.recipients}
        watched = set(self.cfg.alerts.on)
        return [
            s.state
            for s in self._states.values()
            if (s.state.route, s.state.recipient) in pairs and s.state.kind in watched
        ]

    def open_alerts(self) -> list[AlertState]:
        return [state for state in self.states() if state.open]

    async def idle(self) -> None:
        """Wait until every queued verdict is evaluated (tests, shutdown)."""
        await self._queue.join()

    # -- verdicts → states --------------------------------------------------------------------

    async def observe(self, *records: ProbeRecord) -> list[Transition]:
        """Step the states by these final probes, in order, and write the changes in one
        transaction (the loop hands over all that queued up: one write for many probes)."""
        policy = self.cfg.alerts.policy()
        inputs: list[tuple[Key, Observation | None]] = []
        for record in records:
            key = (record.planned.route, record.planned.recipient)
            inputs += [((*key, o.kind), o) for o in observe(record, policy)]
        return await self._advance(inputs)

    async def remind(self) -> list[Transition]:
        firing = [key for key, stored in self._states.items() if stored.state.open]
        return await self._advance([(key, None) for key in firing])

    async def _advance(self, inputs: list[tuple[Key, Observation | None]]) -> list[Transition]:
        if not inputs:
            return []
        async with self._lock:
            for _ in range(3):
                now = utcnow()
                policy = self.cfg.alerts.policy()
                transitions: list[Transition] = []
                stepped: dict[Key, AlertState] = {}  # a key observed twice steps on
                for key, observation in inputs:
                    stored = self._states.get(key)
                    state = stepped.get(key) or (stored.state if stored else AlertState(*key))
                    stepped[key], moved = step(state, observation, policy, now)
                    transitions += moved
                changes: list[tuple[int | None, AlertState]] = []
                for key, new in stepped.items():
                    stored = self._states.get(key)
                    if new != (stored.state if stored else AlertState(*key)):
                        changes.append((stored.version if stored else None, new))
                if not changes:
                    return []
                outgoing = [item for t in transitions for item in self._outgoing(t)]
                try:
                    versions = await self.store.commit(changes, outgoing, now)
                except Conflict:
                    # Another instance moved these states: take its view and step again.
                    self._states = await self.store.load()
                    continue
                for _, state in changes:
                    self._states[state.key] = StoredAlert(state, versions[state.key])
                for transition in transitions:
                    route, recipient, kind = transition.state.key
                    log.info(
                        f"alert {transition.event.value}",
                        route=route,
                        recipient=recipient,
                        kind=kind.value,
                        deliveries=len(outgoing),
                    )
                if outgoing:
                    self._wake.set()
                return transitions
        log.error("alert states kept changing under us; verdict not evaluated")
        return []

    def _outgoing(self, transition: Transition) -> list[Outgoing]:
        route, recipient, kind = transition.state.key
        try:
            mailbox: str | None = self.cfg.account(recipient).email
        except KeyError:
            mailbox = None
        alert = alertmsg.describe(
            transition,
            mailbox=mailbox,
            instance=self.cfg.monitor.instance,
            public_url=self.cfg.monitor.public_url,
        )
        common = {
            "transition_id": transition.id,
            "event": transition.event.value,
            "payload": alert,
            "route": route,
            "recipient": recipient,
            "kind": kind.value,
        }
        items = [
            Outgoing(channel=c.name, target=to, **common)
            for c in self.cfg.alerts.email
            for to in c.to
        ]
        return items + [
            Outgoing(channel=c.name, target="", **common) for c in self.cfg.alerts.webhook
        ]

    async def _catch_up(self, probes: Store) -> None:
        seen = [s.state.last_seen_at for s in self._states.values() if s.state.last_seen_at]
        if not seen:
            return  # never ran before: alerting starts from now, not from old history
        since = max(min(seen), utcnow() - CATCH_UP_LIMIT)
        records = await probes.history(since=since, limit=5000)
        # Oldest first, as they happened.
        await self.observe(*(r for r in reversed(records) if r.state == "final"))

    # -- the loops ------------------------------------------------------------------------------

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        return asyncio.ensure_future(work)

    async def _observe_loop(self) -> None:
        while True:
            records = [await self._queue.get()]
            await asyncio.sleep(OBSERVE_LINGER)
            while len(records) < OBSERVE_BATCH and not self._queue.empty():
                records.append(self._queue.get_nowait())
            try:
                await self.observe(*records)
            except Exception as exc:  # a database hiccup must not end alerting
                log.error("alert evaluation failed", error=_first_line(exc))
            finally:
                for _ in records:
                    self._queue.task_done()

    async def _remind_loop(self) -> None:
        while True:
            await asyncio.sleep(REMIND_TICK)
            await self._remind_safely()

    async def _remind_safely(self) -> None:
        try:
            await self.remind()
        except Exception as exc:  # a database hiccup must not end alerting
            log.error("alert reminders failed", error=_first_line(exc))

    async def _deliver_loop(self) -> None:
        while True:
            self._wake.clear()
            wait = IDLE_POLL
            try:
                batch = await self.store.claim(self.owner, utcnow(), lease=LEASE_SECONDS)
                if batch:
                    results = await asyncio.gather(
                        *(self._deliver(d) for d in batch), return_exceptions=True
                    )
                    for result in results:
                        if isinstance(result, Exception):
                            log.error("alert delivery failed", error=_first_line(result))
                    continue
                due = await self.store.next_due()
                if due is not None:
                    # At least a second: rows leased by another instance are due but not ours.
                    wait = min(max((due - utcnow()).total_seconds(), 1.0), IDLE_POLL)
            except Exception as exc:
                log.error("alert delivery loop failed", error=_first_line(exc))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    async def _deliver(self, delivery: Delivery) -> None:
        channel = self._channel(delivery.channel)
        if channel is None:
            await self.store.give_up(delivery, self.owner, "channel no longer configured")
            return
        try:
            async with asyncio.timeout(SEND_TIMEOUT):
                error = await self.send(channel, delivery.target, delivery.payload, delivery)
        except TimeoutError:
            error = f"not sent within {SEND_TIMEOUT:g}s"
        now = utcnow()
        fields = {"channel": channel.name, "transition": delivery.transition_id}
        given_up = error is not None and now - delivery.created_at >= self.give_up_after
        if self.on_delivery is not None:
            self.on_delivery(
                channel.name, "sent" if error is None else "given_up" if given_up else "failed"
            )
        if error is None:
            await self.store.sent(delivery, self.owner, now)
            log.info("alert delivered", attempts=delivery.attempts + 1, **fields)
        elif given_up:
            await self.store.give_up(delivery, self.owner, error)
            log.error("alert delivery given up", error=error, **fields)
        else:
            first, most = self.backoff
            delay = min(first * 2**delivery.attempts, most)
            await self.store.retry(delivery, self.owner, now + timedelta(seconds=delay), error)
            log.warning("alert delivery failed; will retry", error=error, retry_in=delay, **fields)

    def _channel(self, name: str) -> Channel | None:
        return next((c for c in self.cfg.alerts.channels if c.name == name), None)

    async def send(
        self, channel: Channel, target: str, alert: dict[str, Any], delivery: Delivery
    ) -> str | None:
        client = self._http() if isinstance(channel, WebhookChannel) else None
        return await send(self.cfg, channel, target, alert, delivery.delivery_id, client)

    def _http(self) -> httpx.AsyncClient:
        """One client for every webhook, made by the first: a daemon alerting only by mail,
        or not at all, never loads httpx."""
        if self._client is None:
            import httpx

            self._client = httpx.AsyncClient(follow_redirects=False)
        return self._client


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]
