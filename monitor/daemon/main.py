"""The daemon: migrate, resume what a crash left, then fire each route on its interval.

APScheduler keeps its jobs in memory and they are rebuilt from the config at every start
(stable ids, replace_existing); our own tables are the record. A job only *launches* the
probes of its route and returns at once, so a slow or hung server never delays the next
route, and max_instances=1 never has to skip a run.

Signals: SIGHUP re-reads the config (an invalid one keeps the old running and says why),
SIGTERM/SIGINT stop scheduling, give in-flight probes `drain_timeout` to finish and leave
the rest unfinished in the database for the next start to resume.
"""

from __future__ import annotations

import asyncio
import random
import signal
from contextlib import suppress
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor.alerts.dispatch import Alerting
from monitor.config.load import Config, ConfigError, load_config
from monitor.config.schema import Route
from monitor.core.models import PlannedProbe, ProbeRecord, utcnow
from monitor.core.sharing import TAKEN_EXIT
from monitor.core.slots import jitter, phase, slot_for
from monitor.daemon import sdnotify
from monitor.daemon.gcfreeze import Freezer
from monitor.daemon.leases import FleetCollector, LeaseLoop
from monitor.daemon.metrics import Metrics
from monitor.daemon.slots import SlotTrigger
from monitor.probe.runner import ProbeRunner
from monitor.probe.setup import READY_TIMEOUT, opened, shared
from monitor.reports.weekly import Reporting
from monitor.web.live import Hub
from monitor.web.newest import Newest
from monitor.web.security import Gate

if TYPE_CHECKING:
    from monitor.dnscheck.policy import Finding

# What a feature needs is imported when the config turns it on (the HTTP listener and the
# status page: aiohttp, Jinja2, the page's queries) or when it first runs (the DNS check:
# dnspython): a daemon keeps what it imports for as long as it runs (issue #17: memory).

log = structlog.get_logger(__name__)

SWEEP_EVERY = timedelta(hours=6)
# The sweep logs in to every watched mailbox once more; at start-up those logins would queue
# with the watchers' own and the first canaries' (1,000 mailboxes: about a minute of them).
# It removes only canaries a day old that their probe's own cleanup missed, so half an hour
# later changes nothing for the user; a daemon restarted more often than that does not sweep.
SWEEP_FIRST_AFTER = timedelta(minutes=30)
SWEEP_OLDER_THAN = 86400.0
HEARTBEAT_SECONDS = 15.0
FIRST_RUNS_PER_SECOND = 20


def recipients(cfg: Config) -> set[str]:
    return {name for route in cfg.routes for name in route.recipients}


class Daemon:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.stopping = asyncio.Event()
        self.notifier = sdnotify.Notifier()
        self.metrics = Metrics()
        self.metrics.configure(cfg)
        self.scheduler = AsyncIOScheduler(timezone="UTC")
        self.database_ok = True
        self.runner: ProbeRunner | None = None
        self.alerting: Alerting | None = None
        self.reporting: Reporting | None = None
        self.leases: LeaseLoop | None = None  # PostgreSQL only
        self._reloading = asyncio.Lock()
        # The status page's state: what moves its live updates, who may read it, and the
        # newest DNS findings per sending account (kept from the weekly check).
        self.hub = Hub()
        self.gate = Gate(cfg.web)
        self.posture: dict[str, list[Finding]] = {}
        self.newest = Newest()
        self.freezer = Freezer()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))
        try:
            async with opened(self.cfg, progress=self._progress) as runner:
                self.runner = runner
                return await self._serve(runner)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            self.notifier.close()
            log.info("stopped")

    def _progress(self, planned: PlannedProbe, stage: str, record: ProbeRecord | None) -> None:
        self.metrics.on_progress(planned, stage, record)
        if stage in ("final", "late"):
            if record is not None:
                self.newest.record(record)
            self.hub.changed()
        if self.alerting is not None:
            self.alerting.on_progress(planned, stage, record)

    async def _serve(self, runner: ProbeRunner) -> int:
        # Last verdicts and successes survive a restart in /metrics.
        pairs = await runner.store.latest_per_pair()
        self.metrics.seed(pair.last for pair in pairs if pair.last is not None)
        for pair in pairs:
            self.metrics.seed_success(pair.route, pair.recipient, pair.last_inbox_at)
        self.metrics.watch_watchers(lambda: {n: w.connected for n, w in runner.watchers.items()})
        # Before recover(): verdicts of resumed probes must be evaluated too.
        if shared(runner.store):
            # Before anything acts as this instance: refuse if another process runs its name.
            assert runner.relay is not None  # opened() relays on PostgreSQL
            self.leases = LeaseLoop(runner, runner.relay.work, lambda: recipients(runner.cfg))
            self.leases.on_lost = self.stopping.set
            await self.leases.claim()
        self.alerting = Alerting(self.cfg, runner.store)
        self.alerting.on_delivery = self.metrics.alert_delivery
        await self.alerting.start(runner.store)
        self.metrics.watch_alerts(self.alerting.states)
        if self.leases is not None:
            await self._share(runner, self.leases)
        else:
            await runner.start_watchers(recipients(self.cfg))
            await runner.wait_watchers_ready(READY_TIMEOUT)
            await runner.recover()
        self._schedule_routes(self.cfg.routes)
        self._schedule_housekeeping()
        # The weekly report: each week sent once, even across restarts; a missed one on start.
        self.reporting = Reporting(self.cfg, runner.store)
        await self.reporting.start(self.scheduler)
        self.scheduler.start()
        self.metrics.scheduler_running(True)
        server = None
        if self.cfg.monitor.listen:
            from monitor.adapters.webstore import WebStore
            from monitor.daemon import http
            from monitor.web.app import Pages
            from monitor.web.views import Source

            source = Source(lambda: self.cfg, WebStore(runner.store.engine), self.hub)
            source.newest = self.newest
            source.posture = lambda: self.posture
            pages = Pages(source, lambda: self.gate).install if self.cfg.web.enabled else None
            server = await http.serve(
                self.cfg.monitor.listen, self.metrics, self.health, pages=pages
            )
        watchdog = asyncio.ensure_future(sdnotify.watchdog_loop(self.notifier, self.healthy))
        self.notifier.ready(self.summary())
        if self.leases is None:  # shared: watchers come and go with their leases, never frozen
            self.freezer.after(runner.wait_watchers_ready)
        log.info(
            "mailcanary running",
            routes=len(self.cfg.routes),
            watchers=len(runner.watchers),
            listen=self.cfg.monitor.listen or None,
        )
        await self.stopping.wait()

        self.notifier.stopping()
        drain = self.cfg.monitor.drain_timeout
        log.info("stopping", in_flight=runner.in_flight, drain_seconds=drain)
        self.scheduler.shutdown(wait=False)
        self.metrics.scheduler_running(False)
        self.freezer.thaw()
        watchdog.cancel()
        with suppress(asyncio.CancelledError):
            await watchdog
        if server is not None:
            await server.close()
        if self.leases is not None and self.leases.lost is not None:
            # Another process acts as this instance now: nothing more in its name, no drain.
            await runner.stop(drain=0)
            await self.alerting.stop()
            return TAKEN_EXIT
        if self.leases is not None:
            # Peers take our mailboxes while our probes finish; then ours go and so do we.
            self.leases.stopping()
            await asyncio.gather(runner.drained(drain), self.leases.hand_over(drain))
            await self.leases.close()
        # What does not finish in time stays unfinished in the database: the next start resumes
        # it (on PostgreSQL: a live peer adopts it now).
        await runner.stop(drain=drain)
        await self.alerting.stop()
        return 0

    async def _share(self, runner: ProbeRunner, leases: LeaseLoop) -> None:
        """PostgreSQL: watch our share of the mailboxes, then resume what is ours."""
        self.metrics.registry.register(FleetCollector(leases))
        await leases.start(READY_TIMEOUT)
        await runner.recover(await leases.work.claim_own(self.cfg.monitor.instance))

    # -- scheduling ---------------------------------------------------------------------

    def _schedule_routes(self, routes: list[Route]) -> None:
        """Each route once per slot; the first runs soon, at FIRST_RUNS_PER_SECOND at most, so
        a start does not send to 1,000 mailboxes at once, and in the slot they are scheduled
        in even when their phase in it has passed (see core.slots.first_run)."""
        for queue, route in enumerate(routes):
            most = min(jitter(route.interval), 5)
            span = 1 + (len(routes) - 1) / FIRST_RUNS_PER_SECOND + most
            soon = 1 + queue / FIRST_RUNS_PER_SECOND + random.uniform(0, most)
            self.scheduler.add_job(
                self._fire,
                SlotTrigger(route.interval, phase(route.name, route.interval), soon, span),
                args=(route,),
                id=f"route:{route.name}",
                name=route.name,
                replace_existing=True,
                misfire_grace_time=int(min(max(route.interval / 2, 60), 300)),
                coalesce=True,
                max_instances=1,
            )

    async def _fire(self, route: Route) -> None:
        assert self.runner is not None
        self.runner.launch(route, slot=slot_for(utcnow(), route.interval))

    def _schedule_housekeeping(self) -> None:
        runner = self.runner
        assert runner is not None

        async def sweep() -> None:
            log.info("sweep done", removed=await runner.sweep(SWEEP_OLDER_THAN))
            if runner.relay is not None:
                await runner.relay.work.prune_sightings(SWEEP_OLDER_THAN)

        async def heartbeat() -> None:
            try:
                async with asyncio.timeout(HEARTBEAT_SECONDS):
                    await runner.store.ping()
                self.database_ok = True
            except Exception as exc:  # any failure means the record cannot be written
                self.database_ok = False
                log.error("database unreachable", error=str(exc).splitlines()[0])
            self.notifier.status(self.summary())

        async def dns_posture() -> None:
            from monitor.dnscheck.run import log_posture

            self.posture = await log_posture(self.cfg)

        now = utcnow()
        self.scheduler.add_job(
            dns_posture,
            IntervalTrigger(weeks=1, jitter=3600),
            id="dns-posture",
            replace_existing=True,
            misfire_grace_time=3600,
            coalesce=True,
            max_instances=1,
            next_run_time=now + timedelta(minutes=5),
        )
        self.scheduler.add_job(
            sweep,
            IntervalTrigger(seconds=SWEEP_EVERY.total_seconds()),
            id="sweep",
            replace_existing=True,
            misfire_grace_time=600,
            coalesce=True,
            next_run_time=now + SWEEP_FIRST_AFTER,
        )
        self.scheduler.add_job(
            heartbeat,
            IntervalTrigger(seconds=HEARTBEAT_SECONDS),
            id="heartbeat",
            replace_existing=True,
            coalesce=True,
            misfire_grace_time=int(HEARTBEAT_SECONDS),
            next_run_time=now,
        )

    # -- reload -------------------------------------------------------------------------

    async def reload(self) -> bool:
        """SIGHUP: adopt a changed config; keep the running one if the new one is invalid."""
        async with self._reloading:
            self.notifier.reloading()
            try:
                new = await asyncio.to_thread(load_config, self.cfg.path)
                new.require_routes()  # a daemon with nothing to send would look healthy
            except ConfigError as exc:
                for problem in exc.problems:
                    log.error("reload refused; the running config stays", problem=problem)
                self.notifier.ready(
                    f"reload refused ({len(exc.problems)} problems); " + self.summary()
                )
                return False
            if new.monitor.database != self.cfg.monitor.database:
                log.warning("monitor.database changes only at restart; keeping the old one")
            now_served = (self.cfg.monitor.listen, self.cfg.web.enabled)
            if (new.monitor.listen, new.web.enabled) != now_served:
                log.warning("monitor.listen and web.enabled change only at restart")
            old, self.cfg = self.cfg, new
            self.freezer.thaw()  # what the reload replaces must be collectable
            self.metrics.configure(new)
            self.gate = Gate(new.web)
            assert self.runner is not None
            wanted = self.leases.watching if self.leases else recipients(new)
            await self.runner.reconfigure(new, wanted)
            if self.alerting is not None:
                self.alerting.reconfigure(new)
            if self.reporting is not None:
                self.reporting.reconfigure(new, self.scheduler)
            old_routes = {r.name: r for r in old.routes}
            new_routes = {r.name: r for r in new.routes}
            for name in old_routes.keys() - new_routes.keys():
                self.scheduler.remove_job(f"route:{name}")
            # Added or changed routes start over: a first run in the current slot (the claim
            # keeps a changed route's recipients to the canary they already had in it).
            self._schedule_routes([r for n, r in new_routes.items() if old_routes.get(n) != r])
            if self.leases is None:
                self.freezer.after(self.runner.wait_watchers_ready)
            log.info(
                "config reloaded",
                routes=len(new.routes),
                added=sorted(new_routes.keys() - old_routes.keys()),
                removed=sorted(old_routes.keys() - new_routes.keys()),
            )
            self.notifier.ready(self.summary())
            return True

    # -- health -------------------------------------------------------------------------

    def healthy(self) -> bool:
        return self.scheduler.running and self.database_ok and not self.stopping.is_set()

    def health(self) -> tuple[bool, dict[str, Any]]:
        runner = self.runner
        watchers = {n: w.connected for n, w in runner.watchers.items()} if runner else {}
        return self.healthy(), {
            "scheduler": "running" if self.scheduler.running else "stopped",
            "database": "ok" if self.database_ok else "unreachable",
            "watchers": watchers,
            "in_flight": runner.in_flight if runner else 0,
        }

    def summary(self) -> str:
        runner = self.runner
        if runner is None:
            return "starting"
        up = sum(w.connected for w in runner.watchers.values())
        return (
            f"{len(self.cfg.routes)} routes, {up}/{len(runner.watchers)} mailboxes watched, "
            f"{runner.in_flight} probes in flight"
        )
