"""After a crash, a probe that never reached its hand-off is never resumed as `missing`.

The rows are what a kill -9 leaves behind at each step before the hand-off; the send
failure on record is a real one (a wrong password refused by the harness's Postfix), the
resume searches the real Dovecot, and the verdicts go through the real alerting.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from monitor.adapters import smtp
from monitor.adapters.credentials import credentials
from monitor.adapters.store import Store
from monitor.adapters.tls import client_context
from monitor.alerts.dispatch import Alerting
from monitor.alerts.state import AlertKind
from monitor.config.load import load_config
from monitor.core import canary
from monitor.core.models import PlannedProbe, Verdict
from monitor.harness.demo import write_config
from monitor.probe.setup import opened

pytestmark = pytest.mark.mailstack


async def test_resume_without_hand_off_gives_send_failed_and_alerts_send_failed(
    mailstack, tmp_path
):
    route = "mallory-resumed"
    monitor = (
        f'database = "sqlite:///{tmp_path}/mc.db"\nstate_dir = "{tmp_path}/state"\n'
        'deadline = "20s"\npoll_interval = "2s"\nlisten = ""\n'
    )
    path = write_config(
        mailstack,
        tmp_path,
        routes=[(route, "mallory", {"bob": Verdict.SEND_FAILED})],
        monitor=monitor,
    )
    cfg = load_config(path)
    mallory, bob = cfg.account("mallory"), cfg.account("bob")
    assert mallory.smtp is not None and mallory.password is not None
    store = await Store.open(cfg.monitor.database)
    await store.upgrade()
    past = datetime.now(UTC) - timedelta(hours=1)

    async def plan(name: str, minutes: int, *, sending: bool = False) -> int:
        planned_at = past + timedelta(minutes=minutes)
        return await store.plan(
            PlannedProbe(
                token=f"{name}-token",
                route=route,
                sender="mallory",
                recipient="bob",
                slot=planned_at,
                planned_at=planned_at,
                deadline_at=planned_at + timedelta(seconds=20),
                message_id=f"<{name}@example.test>",
            ),
            sending=sending,
        )

    try:
        # Killed before the send began.
        await plan("planned", 0)
        # Killed during the SMTP conversation: nothing on record (the row as the runner
        # writes it, planned straight in the sending state).
        await plan("mid-send", 1, sending=True)
        # Killed after the refusal was recorded, before the verdict.
        refused = await plan("refused", 2)
        await store.mark_sending(refused)
        message = canary.build_message(
            token=canary.new_token(b"k" * 32, route, past),
            route=route,
            sender=mallory.email,
            recipient=bob.email,
            message_id="<refused@example.test>",
            sender_name="mallory",
            recipient_name="bob",
        )
        outcome = await smtp.send_message(
            mallory.smtp,
            login=credentials(mallory, None),
            message=message,
            mail_from=mallory.email,
            rcpt_to=bob.email,
            ssl_context=client_context(mallory.ca_files),
        )
        assert outcome.failure is not None and outcome.failure.kind == "auth_failed"
        await store.record_send(refused, outcome)
        assert len(await store.unfinished()) == 3
    finally:
        await store.close()

    async with opened(cfg) as runner:
        resumed = await asyncio.gather(*await runner.recover())
        alerting = Alerting(cfg, runner.store)
        for record in sorted(resumed, key=lambda r: r.planned.planned_at):
            await alerting.observe(record)
        open_kinds = [state.kind for state in alerting.open_alerts()]

    got = {
        r.planned.token: (r.decision.verdict, r.decision.failure.kind, r.decision.reason)
        for r in resumed
        if r.decision is not None and r.decision.failure is not None
    }
    assert got == {
        "planned-token": (Verdict.SEND_FAILED, "interrupted", "restart"),
        "mid-send-token": (Verdict.SEND_FAILED, "interrupted", "restart"),
        "refused-token": (Verdict.SEND_FAILED, "auth_failed", "restart"),
    }
    # The wrong password fires at once (a settings failure); the crash fires nothing.
    assert open_kinds == [AlertKind.SEND_FAILED]
