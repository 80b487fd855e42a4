"""A canary that turns up after its deadline: `missing` becomes `late`, with the folder."""

from __future__ import annotations

import asyncio

import pytest

from monitor.config.load import load_config
from monitor.core.models import Verdict
from monitor.harness.demo import write_config
from monitor.probe.setup import opened

pytestmark = pytest.mark.mailstack


async def test_missing_turns_late_and_is_cleaned_up(mailstack, tmp_path):
    monitor = (
        f'database = "sqlite:///{tmp_path}/mc.db"\nstate_dir = "{tmp_path}/state"\n'
        'poll_interval = "60s"\n'
    )
    routes = [("to-slow", "alice", {"slow": Verdict.LATE})]
    cfg = load_config(write_config(mailstack, tmp_path, routes=routes, monitor=monitor))
    turned_late = asyncio.Event()

    def progress(planned, stage, record) -> None:
        if stage == "late":
            turned_late.set()

    async with opened(cfg, progress=progress) as runner:
        await runner.start_watchers(["slow"])
        assert await runner.watchers["slow"].wait_ready(10)
        # Postfix holds mail for `slow` for delay_seconds: a 1 s deadline must miss it.
        record = await runner.probe(cfg.routes[0], "slow", deadline=1.0)
        assert record is not None and record.decision is not None
        assert record.decision.verdict is Verdict.MISSING

        # Reported once recorded and cleaned up.
        await asyncio.wait_for(turned_late.wait(), mailstack.delay_seconds + 10)
        late = await runner.store.by_token(record.planned.token)
        assert late is not None and late.decision is not None
        assert late.decision.verdict is Verdict.LATE
        assert late.decision.folder == "INBOX"
        assert late.decision.arrived_at > late.planned.deadline_at
        assert late.decision.delivery_seconds >= mailstack.delay_seconds - 0.5
        left = mailstack.list_messages(mailstack.users["slow"], "INBOX")
        assert not [raw for raw in left if record.planned.token.encode() in raw]
