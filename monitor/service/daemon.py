"""The daemon: migrate, resume what a crash left, then fire each route on its interval.

APScheduler keeps its jobs in memory and they are rebuilt from the config at every start
(stable ids, replace_existing); our own tables are the record. A job only *launches* the
probes of its route and returns at once, so a slow or hung server never delays the next
route, and max_instances=1 never has to skip a run.
"""

from __future__ import annotations

import asyncio
import random
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor.adapters import keyfile
from monitor.adapters.store import Store
from monitor.config.load import Config
from monitor.core.models import utcnow
from monitor.service.probe import ProbeRunner, Progress, slot_for

log = structlog.get_logger(__name__)

SWEEP_EVERY = timedelta(hours=6)
SWEEP_OLDER_THAN = 86400.0
DRAIN_SECONDS = 10.0
READY_TIMEOUT = 15.0


@asynccontextmanager
async def opened(cfg: Config, *, progress: Progress | None = None) -> AsyncIterator[ProbeRunner]:
    """Store migrated, key loaded, runner built; everything closed on the way out."""
    store = await Store.open(cfg.monitor.database)
    try:
        await store.upgrade()
        key = keyfile.load_or_create(cfg.monitor.state_dir)
        runner = ProbeRunner(cfg, store, key, progress=progress)
        try:
            yield runner
        finally:
            await runner.stop()
    finally:
        await store.close()


def recipients(cfg: Config) -> set[str]:
    return {name for route in cfg.routes for name in route.recipients}


def _jitter(interval: float) -> float:
    # Spreads routes that share an interval without leaving their slot.
    return min(interval / 10, 30.0)


class Daemon:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.stopping = asyncio.Event()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        async with opened(self.cfg) as runner:
            await runner.start_watchers(recipients(self.cfg))
            await runner.wait_watchers_ready(READY_TIMEOUT)
            await runner.recover()
            scheduler = self._schedule(runner)
            scheduler.start()
            log.info(
                "mailcanary running", routes=len(self.cfg.routes), watchers=len(runner.watchers)
            )
            await self.stopping.wait()
            log.info("stopping", in_flight=runner.in_flight)
            scheduler.shutdown(wait=False)
            # Probes still running stay unfinished in the database; the next start resumes them.
            await runner.stop(drain=DRAIN_SECONDS)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        log.info("stopped")
        return 0

    def _schedule(self, runner: ProbeRunner) -> AsyncIOScheduler:
        scheduler = AsyncIOScheduler(timezone="UTC")
        now = utcnow()
        for route in self.cfg.routes:

            async def fire(route=route) -> None:
                runner.launch(route, slot=slot_for(utcnow(), route.interval))

            scheduler.add_job(
                fire,
                IntervalTrigger(seconds=route.interval, jitter=_jitter(route.interval)),
                id=f"route:{route.name}",
                name=route.name,
                replace_existing=True,
                misfire_grace_time=int(min(max(route.interval / 2, 60), 300)),
                coalesce=True,
                max_instances=1,
                next_run_time=now
                + timedelta(seconds=random.uniform(1, 1 + _jitter(route.interval))),
            )

        async def sweep() -> None:
            removed = await runner.sweep(SWEEP_OLDER_THAN)
            log.info("sweep done", removed=removed)

        scheduler.add_job(
            sweep,
            IntervalTrigger(seconds=SWEEP_EVERY.total_seconds()),
            id="sweep",
            replace_existing=True,
            misfire_grace_time=600,
            coalesce=True,
            next_run_time=now + timedelta(minutes=1),
        )
        return scheduler
