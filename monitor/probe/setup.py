"""What every user of the probe runner needs around it: the store migrated, the canary key
loaded, the runner built, and everything closed on the way out (the daemon, `probe`, the demo)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from monitor.adapters import keyfile, tls
from monitor.adapters.leases import SharedWork
from monitor.adapters.store import Store
from monitor.config.load import Config
from monitor.core.canary import new_key
from monitor.probe.relay import Relay
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
        key = await canary_key(cfg, store)
        runner = ProbeRunner(cfg, store, key, progress=progress, give_up_after=give_up_after)
        if shared(store):
            # Daemon or one-shot `probe`: a canary may be seen (and removed) by the instance
            # watching its mailbox; its verdict then comes through the database.
            work = SharedWork(store.engine, cfg.monitor.lease)
            me, cleanup = cfg.monitor.instance, cfg.monitor.cleanup
            runner.share(Relay(store, work, me, cleanup=cleanup))
        try:
            yield runner
        finally:
            await runner.stop()
    finally:
        await store.close()


def shared(store: Store) -> bool:
    """PostgreSQL: instances share mailboxes, sightings and the key (SQLite: one instance)."""
    return store.engine.dialect.name == "postgresql"


async def canary_key(cfg: Config, store: Store) -> bytes:
    """SQLite: the key file in the state directory. PostgreSQL: the one key in the database,
    stored by the first instance to start (its key file's key if it has one, so canaries
    already on their way still verify; else a new one); the key file is then not used."""
    if not shared(store):
        return keyfile.load_or_create(cfg.monitor.state_dir)
    own = cfg.monitor.state_dir / keyfile.KEY_NAME
    candidate = keyfile.load_or_create(cfg.monitor.state_dir) if own.exists() else new_key()
    return await SharedWork(store.engine, cfg.monitor.lease).canary_key(candidate)
