"""A probe's whole life: plan → send → watch → verdict → record → cleanup.

The row is written before the canary leaves, so a crash at any point leaves a record that
`resume` (recovery.py, with late arrivals and the sweep) can bring to a final verdict. Watching
is done by long-lived per-account watchers; a probe only registers its token and waits for the
watcher to call back.
At the deadline an explicit search confirms the absence: a probe whose mailbox could
not be looked into becomes `check_failed`, never `missing`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import replace
from datetime import datetime, timedelta

import structlog

from monitor.adapters.credentials import credentials
from monitor.adapters.imap import ImapError
from monitor.adapters.store import SlotTaken, Store
from monitor.adapters.tls import client_context
from monitor.config.load import Config
from monitor.config.schema import Account, Route
from monitor.content.message import MessageFileError
from monitor.core import canary
from monitor.core.models import (
    Decision,
    Failure,
    Phase,
    PlannedProbe,
    ProbeRecord,
    SendOutcome,
    Sighting,
    utcnow,
)
from monitor.core.slots import slot_for
from monitor.probe import verdict
from monitor.probe.lookout import Cadence
from monitor.probe.recovery import AfterTheFact
from monitor.probe.relay import Relay
from monitor.probe.sending import Batch, Deliver, Seat, deliver, letter_for, seated
from monitor.probe.watcher import Watcher

log = structlog.get_logger(__name__)

# Called with (token, stage, record-so-far) so a face can show live progress.
Progress = Callable[[PlannedProbe, str, ProbeRecord | None], None]


class ProbeRunner(AfterTheFact):
    def __init__(
        self,
        cfg: Config,
        store: Store,
        key: bytes,
        *,
        progress: Progress | None = None,
        give_up_after: int | None = None,
    ):
        self.cfg = cfg
        # One-shot checks: this many failed IMAP sessions in a row make a mailbox's probes
        # check_failed at once. None (the daemon): the final search at the deadline decides.
        self.give_up_after = give_up_after
        self.store = store
        self.key = key
        self.progress = progress
        self.watchers: dict[str, Watcher] = {}
        self._pending: dict[str, asyncio.Future[Sighting | Failure]] = {}
        self._recipient_of: dict[str, str] = {}
        self._tasks: set[asyncio.Task[object]] = set()
        # Read at start: 1,000 watchers must not all handshake at once, nor 1,000 probes send.
        self._logins = asyncio.Semaphore(cfg.monitor.max_parallel_logins)
        self._sends = asyncio.Semaphore(cfg.monitor.max_parallel_sends)
        # PostgreSQL: sightings to and from the other instances (see probe/relay.py), and
        # watchers never started, for one-off looks at mailboxes another instance watches.
        self.relay: Relay | None = None
        self._idle: dict[str, Watcher] = {}

    # -- watchers -------------------------------------------------------------------

    def verify(self, headers: object) -> str | None:
        return canary.verify_message(self.key, headers)  # type: ignore[arg-type]

    def _new_watcher(self, name: str) -> Watcher:
        account = self.cfg.account(name)
        return Watcher(
            account,
            ssl_context=client_context(account.ca_files),
            poll_interval=self.cfg.monitor.poll_interval,
            verify=self.verify,
            on_sighting=functools.partial(self._on_sighting, name),
            on_failure=functools.partial(self._on_failure, name),
            login=credentials(account, self.cfg.monitor.state_dir),
            login_slots=self._logins,
            cadence=self._cadence(),
        )

    def _cadence(self) -> Cadence:
        return Cadence(self.cfg.monitor.look_out_resolution, self.cfg.monitor.look_out_fine_for)

    async def start_watchers(self, names: Iterable[str]) -> None:
        for name in sorted(set(names) - set(self.watchers)):
            watcher = self._idle.pop(name, None) or self._new_watcher(name)
            self.watchers[name] = watcher
            await watcher.start()

    async def stop_watchers(self, names: Iterable[str]) -> None:
        """Stop watching these mailboxes (their lease went elsewhere); probes waiting on
        them hear of their canaries through the relay."""
        for name in sorted(set(names)):
            if (watcher := self.watchers.pop(name, None)) is not None:
                await watcher.stop()

    def _looker(self, name: str) -> Watcher | None:
        """The running watcher, or on a shared database a never started one (one-off
        sessions only) to search or delete in a mailbox another instance watches."""
        if self.relay is None or name in self.watchers:
            return self.watchers.get(name)
        if name not in self._idle and name in {a.name for a in self.cfg.accounts}:
            self._idle[name] = self._new_watcher(name)
        return self._idle.get(name)

    def share(self, relay: Relay) -> None:
        self.relay = relay
        relay.start(self._pending, self.watchers, self._late)

    async def reconfigure(self, cfg: Config, wanted: set[str]) -> None:
        """Adopt a reloaded config without dropping in-flight probes.

        A watcher whose account changed is restarted with the new settings; one no longer
        wanted is stopped unless a probe still waits on it (the next reload retires it); the
        others keep their sessions and take the new look-out cadence and poll interval.
        """
        self.cfg = cfg
        self._idle.clear()  # built from the old accounts
        busy = set(self._recipient_of.values())
        known = {account.name: account for account in cfg.accounts}
        for name, watcher in list(self.watchers.items()):
            changed = name in known and known[name] != watcher.account
            unwanted = name not in wanted and name not in busy
            if changed or unwanted:
                del self.watchers[name]
                await watcher.stop()
            else:
                watcher.retune(self._cadence(), cfg.monitor.poll_interval)
        await self.start_watchers(wanted)

    async def wait_watchers_ready(self, timeout: float) -> None:  # noqa: ASYNC109 - a bounded wait
        """Give watchers a moment to take their baseline, so no canary lands unseen."""
        await asyncio.gather(
            *(w.wait_ready(timeout) for w in self.watchers.values()), return_exceptions=True
        )

    async def drained(self, timeout: float) -> None:  # noqa: ASYNC109 - a bounded wait
        if self._tasks and timeout > 0:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    async def stop(self, drain: float = 0.0) -> None:
        await self.drained(drain)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(w.stop() for w in self.watchers.values()), return_exceptions=True)
        if self.relay is not None:
            await self.relay.stop()

    def _on_sighting(self, recipient: str, sighting: Sighting) -> None:
        # Only the probe's own recipient account counts: its UIDs and folders are the ones
        # we judge and delete, even when another account watches the same address.
        future = self._pending.get(sighting.token)
        if future is None and self.relay is not None:
            watcher = self._looker(recipient)
            self.spawn(self.relay.seen_here(recipient, sighting, watcher))
        elif future is None:
            self.spawn(self._late(recipient, sighting))
        elif self._recipient_of.get(sighting.token) == recipient and not future.done():
            future.set_result(sighting)

    def _hopeless(self, watcher: Watcher | None, failure: Failure | None) -> Failure | None:
        """The failure that settles probes to this watcher's mailbox now, without waiting."""
        if failure is None or not failure.transient:
            return failure
        tries = watcher.failed_attempts if watcher is not None else 0
        if self.give_up_after is None or tries < self.give_up_after:
            return None  # the final search at the deadline decides; a blip is not a verdict
        return replace(failure, message=f"{failure.message} ({tries} attempts)")

    def _on_failure(self, recipient: str, failure: Failure) -> None:
        hopeless = self._hopeless(self.watchers.get(recipient), failure)
        if hopeless is None:
            return
        for token, future in self._pending.items():
            if self._recipient_of.get(token) == recipient and not future.done():
                future.set_result(hopeless)

    # -- scheduling -------------------------------------------------------------------

    def spawn(self, coro: object) -> asyncio.Task[object]:
        task: asyncio.Task[object] = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def launch(self, route: Route, *, slot: datetime | None = None) -> list[asyncio.Task[object]]:
        """Start the route's probes without waiting: a hung server delays no other route."""
        slot = slot or slot_for(utcnow(), route.interval)
        return [self.spawn(job) for job in self.probes(route, slot=slot)]

    def probes(
        self, route: Route, *, slot: datetime | None = None, deadline: float | None = None
    ) -> list[Coroutine[object, object, ProbeRecord | None]]:
        """One probe per recipient; several recipients share one SMTP session (sending.py)."""
        send = self._deliver(self.cfg.account(route.sender))
        seats = Batch(len(route.recipients), send, self.spawn).seats()
        return [
            seated(seat, self.probe(route, to, slot=slot, deadline=deadline, seat=seat))
            for to, seat in zip(route.recipients, seats, strict=True)
        ]

    # -- one probe --------------------------------------------------------------------

    async def probe(
        self,
        route: Route,
        recipient_name: str,
        *,
        slot: datetime | None = None,
        deadline: float | None = None,
        seat: Seat | None = None,
    ) -> ProbeRecord | None:
        sender, recipient = self.cfg.account(route.sender), self.cfg.account(recipient_name)
        now = utcnow()
        token = canary.new_token(self.key, route.name, now)
        planned = PlannedProbe(
            token=str(token),
            route=route.name,
            sender=sender.name,
            recipient=recipient.name,
            slot=slot or now,
            planned_at=now,
            deadline_at=now + timedelta(seconds=deadline or self.cfg.monitor.deadline),
            message_id=canary.new_message_id(sender.email),
            instance=self.cfg.monitor.instance,
        )
        with structlog.contextvars.bound_contextvars(
            route=route.name, recipient=recipient.name, token=planned.token
        ):
            try:
                # Written as sending: the canary leaves right after (one write fewer).
                probe_id = await self.store.plan(planned, sending=True)
            except SlotTaken:
                log.info("slot already claimed", slot=planned.slot.isoformat())
                return None
            # Each probe runs in its own task, so this binding stays with this probe's lines.
            structlog.contextvars.bind_contextvars(probe_id=probe_id)
            self._emit(planned, "planned")
            self._expect(planned)
            try:
                self._emit(planned, "sending")
                outcome = await self._send(planned, sender, recipient, token, route, seat)
                watcher = self.watchers.get(planned.recipient)
                if outcome.ok and watcher is not None:  # before the write: it is awaited now
                    watcher.expect(planned.token, look_out=self.cfg.monitor.look_out)
                await self.store.record_send(probe_id, outcome)
                if not outcome.ok:
                    return await self._record(
                        probe_id, planned, outcome, verdict.send_failed(outcome)
                    )
                self._emit(planned, "watching", ProbeRecord(probe_id, planned, "sent", outcome))
                decision, sighting = await self._watch(planned, outcome)
                return await self._record(probe_id, planned, outcome, decision, sighting)
            finally:
                self._forget(planned.token)

    async def _send(
        self,
        planned: PlannedProbe,
        sender: Account,
        recipient: Account,
        token: canary.Token,
        route: Route,
        seat: Seat | None = None,
    ) -> SendOutcome:
        seat = seat or Seat.alone(self._deliver(sender))
        try:  # the route's own message (#16), else the plain canary
            letter = letter_for(route, planned, sender, recipient, token)
        except MessageFileError as exc:  # checked at load; changed since
            seat.give_up()  # the others need not wait for this probe's record
            failure = Failure("message_file", Phase.DATA, False, str(exc))
            return SendOutcome(Phase.DATA, failure=failure)
        outcome = await seat.send(letter)
        # DEBUG when sent: one INFO line per probe ("probe finished", with the queue id).
        (log.debug if outcome.ok else log.info)(
            "canary sent" if outcome.ok else "send failed",
            phase=outcome.phase.value,
            code=outcome.last_reply.code if outcome.last_reply else None,
            failure=outcome.failure.kind if outcome.failure else None,
            queue_id=outcome.queue_id,
        )
        return outcome

    def _deliver(self, sender: Account) -> Deliver:
        return functools.partial(deliver, sender, self.cfg.monitor.state_dir, self._sends)

    def _expect(self, planned: PlannedProbe) -> asyncio.Future[Sighting | Failure]:
        # Registered before the canary leaves: a fast server must not beat us to it.
        future: asyncio.Future[Sighting | Failure] = asyncio.get_running_loop().create_future()
        self._pending[planned.token] = future
        self._recipient_of[planned.token] = planned.recipient
        watcher = self.watchers.get(planned.recipient)
        if watcher is not None and not watcher.connected:
            failure = self._hopeless(watcher, watcher.last_failure)
            if failure is not None:
                future.set_result(failure)
        return future

    def _forget(self, token: str) -> None:
        self._pending.pop(token, None)
        recipient = self._recipient_of.pop(token, None)
        if (watcher := self.watchers.get(recipient or "")) is not None:
            watcher.stop_expecting(token)

    async def _watch(
        self, planned: PlannedProbe, outcome: SendOutcome | None, reason: str | None = None
    ) -> tuple[Decision, Sighting | None]:
        future = self._pending[planned.token]
        remaining = (planned.deadline_at - utcnow()).total_seconds()
        seen: Sighting | Failure | None = None
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(remaining, 0)):
                seen = await asyncio.shield(future)
        if isinstance(seen, Failure):
            return verdict.check_failed(seen), None
        if seen is None:
            # The deadline passed unseen: look once more, explicitly, before saying missing.
            try:
                if self.relay is not None:
                    seen = await self.relay.look(planned.token)
                seen = seen or await self._find(planned)
            except ImapError as exc:
                return verdict.check_failed(exc.failure), None
            if seen is None:
                return verdict.not_found(outcome, reason), None
        return verdict.found(outcome, seen, planned.deadline_at), seen

    async def _find(self, planned: PlannedProbe) -> Sighting | None:
        watcher = self._looker(planned.recipient)
        if watcher is None:
            if planned.recipient not in {a.name for a in self.cfg.accounts}:
                message = f"account {planned.recipient!r} is no longer in the config"
                raise ImapError(Failure("account_removed", Phase.SEARCH, False, message))
            await self.start_watchers([planned.recipient])
            watcher = self.watchers[planned.recipient]
        return await watcher.find(planned.token)

    async def _record(
        self,
        probe_id: int,
        planned: PlannedProbe,
        outcome: SendOutcome | None,
        decision: Decision,
        sighting: Sighting | None = None,
    ) -> ProbeRecord:
        await self.store.finish(probe_id, decision, sighting)
        log.info(
            "probe finished",
            verdict=decision.verdict.value,
            folder=decision.folder,
            delivery_seconds=decision.delivery_seconds,
            failure=decision.failure.kind if decision.failure else None,
            reason=decision.reason,
            queue_id=outcome.queue_id if outcome else None,
        )
        record = ProbeRecord(
            probe_id, planned, "final", outcome, sighting, decision, finished_at=utcnow()
        )
        self._emit(planned, "final", record)
        # A canary seen by another instance's watcher was removed by that watcher.
        if sighting is not None and not (self.relay and self.relay.took(planned.token)):
            await self._cleanup(sighting, planned.recipient)
        return record

    async def _cleanup(self, sighting: Sighting, recipient: str) -> None:
        watcher = self._looker(recipient)
        if not self.cfg.monitor.cleanup or watcher is None:
            return
        try:
            await watcher.delete(sighting)
        except ImapError as exc:
            log.warning("cleanup failed; the daily sweep will retry", failure=exc.failure.kind)

    def _emit(self, planned: PlannedProbe, stage: str, record: ProbeRecord | None = None) -> None:
        if self.progress is not None:
            self.progress(planned, stage, record)
