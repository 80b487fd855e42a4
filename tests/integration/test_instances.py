"""Several daemons on one PostgreSQL: the (route, recipient, slot) claim decides who sends.

Three instances with the same routes start at once; every slot gets exactly one canary,
and killing one of them (the one that sent last) loses no slot: the others claim it.
"""

from __future__ import annotations

import asyncio
import signal
from datetime import datetime, timedelta
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import asyncpg
import pytest

from monitor.adapters.store import Store
from monitor.core.canary import TOKEN_HEADER
from monitor.core.models import Verdict
from monitor.harness.demo import write_config
from tests.integration.support import Daemon, wait_for

pytestmark = pytest.mark.mailstack

INTERVAL = 2.0
ROUTES = [("ha", "alice", {"bob": Verdict.INBOX})]


async def _claims(url: str) -> list[tuple[datetime, str, str]]:
    connection = await asyncpg.connect(url)
    try:
        found = await connection.fetch(
            "SELECT slot, instance, token FROM probes WHERE route = 'ha' AND recipient = 'bob'"
            " ORDER BY slot"
        )
    except asyncpg.UndefinedTableError:  # not migrated yet
        return []
    finally:
        await connection.close()
    return [(row["slot"], row["instance"], row["token"]) for row in found]


def claims(url: str) -> list[tuple[datetime, str, str]]:
    return asyncio.run(_claims(url))


def assert_every_slot_once(found: list[tuple[datetime, str, str]]) -> None:
    slots = [slot for slot, _, _ in found]
    assert len(slots) == len(set(slots)), "a slot was claimed twice"
    step = timedelta(seconds=INTERVAL)
    expected = [slots[0] + n * step for n in range(round((slots[-1] - slots[0]) / step) + 1)]
    assert slots == expected, f"slots missing: {sorted(set(expected) - set(slots))}"


async def test_instances_starting_together_migrate_once(postgres) -> None:
    url = postgres.create_database()
    stores = [await Store.open(url) for _ in range(3)]
    try:
        # Without the migration lock two of these fail on a duplicate pg_type row.
        outcomes = await asyncio.gather(*(s.upgrade() for s in stores), return_exceptions=True)
        assert outcomes == [None, None, None]
        assert await stores[0].unfinished() == []
    finally:
        for store in stores:
            await store.close()


def test_three_instances_one_canary_per_slot_and_none_lost_when_one_dies(
    mailstack, postgres, tmp_path: Path
) -> None:
    url = postgres.create_database()
    daemons: dict[str, Daemon] = {}
    for name in ("a", "b", "c"):
        # One key for all (shared state_dir): any instance can verify any canary.
        monitor = (
            f'database = "{url}"\nstate_dir = "{tmp_path}/state"\ninstance = "{name}"\n'
            f'interval = "{INTERVAL:g}s"\ndeadline = "8s"\npoll_interval = "2s"\ncleanup = false\n'
            'listen = ""\n'
        )
        config = write_config(mailstack, tmp_path / name, routes=ROUTES, monitor=monitor)
        daemons[name] = Daemon(config, tmp_path / f"{name}.log")
    try:
        for d in daemons.values():
            d.start()
        found = wait_for(lambda: (c := claims(url)) and len(c) >= 6 and c, 60, "six slots")
        assert_every_slot_once(found)  # type: ignore[arg-type]
        contested = [d.log.read_text().count("slot already claimed") for d in daemons.values()]
        assert sum(contested) > 0, "the daemons never competed for a slot"

        # Kill the instance that won the newest slot: its peers must take over from there.
        victim = daemons[found[-1][1]]  # type: ignore[index]
        assert victim.signal(signal.SIGKILL) == -signal.SIGKILL
        last = found[-1][0]  # type: ignore[index]
        after = wait_for(
            lambda: (c := claims(url)) and c[-1][0] >= last + timedelta(seconds=3 * INTERVAL) and c,
            60,
            "three more slots after the kill",
        )
        assert_every_slot_once(after)  # type: ignore[arg-type]
        survivors = {instance for slot, instance, _ in after if slot > last}  # type: ignore[union-attr]
        assert survivors and victim.config.parent.name not in survivors
    finally:
        for d in daemons.values():
            d.stop()

    # Every canary reached bob at most once, and only canaries of claimed slots were sent.
    headers = [
        message_from_bytes(raw, policy=default) for raw in mailstack.list_messages("bob", "INBOX")
    ]
    tokens = [str(h[TOKEN_HEADER]) for h in headers if h[TOKEN_HEADER] is not None]
    assert len(tokens) == len(set(tokens)), "a canary was delivered twice"
    claimed = {token for _, _, token in claims(url)}
    ours = [token for token in tokens if token in claimed]
    assert ours and len(ours) >= len(after) - 3  # type: ignore[arg-type]
