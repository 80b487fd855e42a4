"""After the fact: a canary that turns up after its probe gave up on it, probes that a crash
(or, on a shared database, a dead instance) left unfinished, and the daily sweep.

Mixed into ProbeRunner (runner.py): these use its store, watchers and the steps of a probe's
life (`_expect`, `_find`, `_watch`, `_record`, `_cleanup`), so a resumed probe ends exactly
as a fresh one does.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import structlog

from monitor.adapters.imap import ImapError
from monitor.core.models import ProbeRecord, Sighting
from monitor.probe import verdict

if TYPE_CHECKING:
    from monitor.adapters.store import Store
    from monitor.config.load import Config
    from monitor.probe.watcher import Watcher

log = structlog.get_logger(__name__)


class AfterTheFact:
    if TYPE_CHECKING:  # provided by ProbeRunner
        cfg: Config
        store: Store
        watchers: dict[str, Watcher]
        spawn: Any
        start_watchers: Any
        _expect: Any
        _find: Any
        _watch: Any
        _forget: Any
        _record: Any
        _cleanup: Any
        _emit: Any

    async def _late(self, recipient: str, sighting: Sighting) -> None:
        """A canary nobody waits for: it turned up after its probe said it was not seen."""
        record = await self.store.by_token(sighting.token)
        if record is None or record.decision is None:
            return  # still in flight here or at another instance: that probe decides
        if record.planned.recipient != recipient:
            return
        if not verdict.revisable(record.decision):
            return
        decision = verdict.found(record.send, sighting, record.planned.deadline_at)
        if await self.store.mark_late(sighting.token, decision, sighting):
            log.info(
                "missing canary arrived",
                token=sighting.token,
                verdict=decision.verdict.value,
                folder=sighting.folder,
            )
            await self._cleanup(sighting, record.planned.recipient)
            self._emit(
                record.planned, "late", replace(record, sighting=sighting, decision=decision)
            )

    async def recover(self, records: list[ProbeRecord] | None = None) -> list[asyncio.Task[object]]:
        """Bring every probe a crash left unfinished to a final verdict. On a shared database
        `records` are those we claimed: ours, or those of a dead instance we adopted."""
        if records is None:
            records = await self.store.unfinished(instance=self.cfg.monitor.instance)
            if records:
                await self.start_watchers({r.planned.recipient for r in records})
        if records:
            log.info("resuming unfinished probes", count=len(records))
        return [self.spawn(self.resume(r)) for r in records]

    async def resume(self, record: ProbeRecord) -> ProbeRecord:
        planned = record.planned
        with structlog.contextvars.bound_contextvars(
            route=planned.route,
            recipient=planned.recipient,
            token=planned.token,
            probe_id=record.id,
        ):
            if record.state == "planned" or (record.send is not None and not record.send.ok):
                # It never left (the send had not begun), or its failure is on record.
                decision = verdict.not_found(record.send, "restart")
                return await self._record(record.id, planned, record.send, decision)
            future = self._expect(planned)
            try:
                # It may have landed while we were down, before the watcher's baseline.
                try:
                    early = await self._find(planned)
                except ImapError:
                    early = None
                if early is not None and not future.done():
                    future.set_result(early)
                decision, sighting = await self._watch(planned, record.send, "restart")
            finally:
                self._forget(planned.token)
            return await self._record(record.id, planned, record.send, decision, sighting)

    async def sweep(self, older_than: float = 86400.0) -> int:
        removed = 0
        for name, watcher in self.watchers.items():
            try:
                removed += await watcher.sweep(older_than)
            except ImapError as exc:
                log.warning("sweep failed", account=name, failure=exc.failure.kind)
        return removed
