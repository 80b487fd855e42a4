"""What every user of the probe runner needs around it: the store migrated, the canary key
loaded, the runner built, and everything closed on the way out (the daemon, `probe`, the demo)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from monitor.adapters import keyfile, tls
from monitor.adapters.store import Store
from monitor.config.load import Config
from monitor.probe.runner import ProbeRunner, Progress

# How long to wait for every watcher's first look before sending: a canary sent before its
# mailbox is watched could be delivered unseen and found only by the final search.
READY_TIMEOUT = 15.0


@asynccontextmanager
async def opened(
    cfg: Config, *, progress: Progress | None = None, give_up_after: int | None = None
) -> AsyncIterator[ProbeRunner]:
    """Store migrated, key loaded, runner built; everything closed on the way out."""
    tls.trim_read_buffers()
    store = await Store.open(cfg.monitor.database)
    try:
        await store.upgrade()
        key = keyfile.load_or_create(cfg.monitor.state_dir)
        runner = ProbeRunner(cfg, store, key, progress=progress, give_up_after=give_up_after)
        try:
            yield runner
        finally:
            await runner.stop()
    finally:
        await store.close()
