"""The weekly report by email, once per week and recipient, whatever the restarts.

APScheduler fires `tick()` at `[reports] weekly` in the report's time zone (CronTrigger),
and also right after start and every RETRY_EVERY: each tick looks for the newest full week
whose send moment has come and, per recipient, claims its send in `report_sends` (unique
per week and recipient). So a daemon that was down on Monday morning sends the report when
it is back, one started at 07:00 waits for 08:00, a restart never sends a week twice, and
two instances sharing a database never both send it. Only the newest due week is sent:
after three weeks down, the older reports are not delivered late. A failed send is retried
with backoff (5 min doubling to 6 h) until it works or the next week is due; a crash mid-way
sends again after restart with the same Message-ID, which mail systems dedupe on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import structlog
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from monitor.adapters.reportstore import ReportStore
from monitor.adapters.store import Store
from monitor.config.load import Config
from monitor.config.report_settings import WEEKDAYS, ReportSettings
from monitor.core.models import utcnow
from monitor.reports.charts import use_cache_dir
from monitor.reports.model import Period, due_week

log = structlog.get_logger(__name__)

WEEKLY_JOB = "report:weekly"
DUE_JOB = "report:due"
RETRY_EVERY = 600.0
LEASE_SECONDS = 900.0  # longer than building and sending one report ever takes
SEND_TIMEOUT = 180.0
BACKOFF = (300.0, 6 * 3600.0)


def weekly_trigger(settings: ReportSettings) -> CronTrigger:
    return CronTrigger(
        day_of_week=WEEKDAYS[settings.weekday],
        hour=settings.at.hour,
        minute=settings.at.minute,
        timezone=ZoneInfo(settings.timezone),
    )


def retry_at(now: datetime, attempts: int) -> datetime:
    first, most = BACKOFF
    return now + timedelta(seconds=min(first * 2 ** max(attempts - 1, 0), most))


class Reporting:
    def __init__(
        self,
        cfg: Config,
        store: Store,
        *,
        clock: Callable[[], datetime] = utcnow,
        on_result: Callable[[Period, str, str | None], None] | None = None,
    ) -> None:
        """`on_result(period, address, error)` after each send attempt (metrics, tests)."""
        self.cfg = cfg
        self.probes = store
        self.store = ReportStore(store.engine)
        self.owner = cfg.monitor.instance
        self._clock = clock
        self._on_result = on_result
        self._lock = asyncio.Lock()

    async def start(self, scheduler: BaseScheduler, *, first_in: float = 2.0) -> None:
        """Free this instance's stale leases, then schedule; the first tick comes soon."""
        freed = await self.store.release(self.owner, self._clock())
        if freed:
            log.info("report sends a stop interrupted will be retried", count=freed)
        self.schedule(scheduler, first_in=first_in)

    def schedule(self, scheduler: BaseScheduler, *, first_in: float = 2.0) -> None:
        for job in (WEEKLY_JOB, DUE_JOB):
            if scheduler.get_job(job) is not None:
                scheduler.remove_job(job)
        settings = self.cfg.reports
        if not settings.scheduled:
            return
        use_cache_dir(self.cfg.monitor.state_dir)
        scheduler.add_job(
            self.tick,
            weekly_trigger(settings),
            id=WEEKLY_JOB,
            replace_existing=True,
            misfire_grace_time=3600,
            coalesce=True,
            max_instances=1,
        )
        scheduler.add_job(
            self.tick,
            IntervalTrigger(seconds=RETRY_EVERY),
            id=DUE_JOB,
            replace_existing=True,
            misfire_grace_time=int(RETRY_EVERY),
            coalesce=True,
            max_instances=1,
            next_run_time=utcnow() + timedelta(seconds=first_in),
        )

    def reconfigure(self, cfg: Config, scheduler: BaseScheduler) -> None:
        self.cfg = cfg
        self.schedule(scheduler)

    async def tick(self) -> list[tuple[str, str | None]]:
        """Send the due week's report to whoever has not had it: (address, error) each."""
        async with self._lock:
            try:
                return await self._tick()
            except Exception as exc:  # a database or SMTP hiccup must not end the schedule
                log.error("weekly report failed", error=(str(exc).splitlines() or [repr(exc)])[0])
                return []

    async def _tick(self) -> list[tuple[str, str | None]]:
        settings = self.cfg.reports
        if not settings.scheduled or settings.account is None:
            return []
        now = self._clock()
        period = due_week(now, settings.weekday, settings.at, settings.timezone)
        if not await self.store.monitored_before(period.end):
            return []  # a new installation has no past week to report on
        # Building and mailing a report (its queries, the DNS checks, matplotlib, the mail's
        # HTML) is imported by the first report due, not by every daemon at start (memory).
        from monitor.reports.charts import render_charts
        from monitor.reports.mail import message_id, report_message, send_report
        from monitor.reports.query import report_for

        account = self.cfg.account(settings.account)
        ids = {to: message_id(period, to, account.email) for to in settings.to}
        claimed = [
            to
            for to in settings.to
            if await self.store.claim(
                period, to, owner=self.owner, now=now, lease=LEASE_SECONDS, message_id=ids[to]
            )
        ]
        if not claimed:
            return []
        try:
            report = await report_for(self.cfg, self.probes, period, now, check_dns=True)
            charts = await render_charts(report)
        except Exception as exc:
            error = f"report not built: {(str(exc).splitlines() or [repr(exc)])[0]}"
            for to in claimed:
                await self._finish(period, to, error)
            raise
        results = []
        for to in claimed:
            message = report_message(
                report,
                charts,
                sender=account.email,
                to=to,
                message_id=ids[to],
                public_url=self.cfg.monitor.public_url,
            )
            try:
                async with asyncio.timeout(SEND_TIMEOUT):
                    error = await send_report(
                        account, to, message, state_dir=self.cfg.monitor.state_dir
                    )
            except TimeoutError:
                error = f"not sent within {SEND_TIMEOUT:g}s"
            await self._finish(period, to, error)
            results.append((to, error))
        return results

    async def _finish(self, period: Period, to: str, error: str | None) -> None:
        now = self._clock()
        attempts = next(
            (s.attempts for s in await self.store.sends(period) if s.recipient == to), 1
        )
        await self.store.finish(
            period, to, owner=self.owner, now=now, error=error, retry_at=retry_at(now, attempts)
        )
        if self._on_result is not None:
            self._on_result(period, to, error)
        fields = {"period": period.label, "to": to, "attempts": attempts}
        if error is None:
            log.info("weekly report sent", **fields)
        else:
            log.warning("weekly report not sent; will retry", error=error, **fields)
