"""One canary per (route, recipient) now, judged: what `probe`, the demo and a Nagios check
run. Progress goes to a callback (the CLI draws it); nothing here prints."""

from __future__ import annotations

import asyncio

from monitor.config.load import Config
from monitor.config.schema import Route
from monitor.core.models import ProbeRecord
from monitor.probe.runner import Progress
from monitor.probe.setup import READY_TIMEOUT, opened

# A one-shot check gives up on a mailbox after this many failed IMAP sessions in a row
# (each ends at the first step with no answer within imap_timeout; 1 s and 2 s between).
IMAP_ATTEMPTS = 3


async def probe_once(
    cfg: Config, routes: list[Route], *, deadline: float, progress: Progress | None = None
) -> list[ProbeRecord]:
    """The records of every canary, each final (or as far as it got) once this returns."""
    async with opened(cfg, progress=progress, give_up_after=IMAP_ATTEMPTS) as runner:
        await runner.start_watchers({to for r in routes for to in r.recipients})
        await runner.wait_watchers_ready(READY_TIMEOUT)
        # A route's recipients share one SMTP session, as in the daemon.
        jobs = [job for route in routes for job in runner.probes(route, deadline=deadline)]
        results = await asyncio.gather(*jobs)
    return [r for r in results if r is not None]
