"""Alerting on a real database: what fell due while it was down (SQLite), and verdicts that
queued up evaluated together (SQLite and PostgreSQL)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.adapters.alertstore import AlertStore
from monitor.adapters.store import Store
from monitor.alerts.dispatch import Alerting
from monitor.alerts.state import AlertKind, AlertState, Evidence, Status
from monitor.config.load import load_config
from monitor.core.models import Verdict
from tests.integration.support import free_port
from tests.unit.test_alerts import record


def _config(tmp_path: Path, database: str | None = None) -> Path:
    path = tmp_path / "mailcanary.toml"
    (tmp_path / "pw").write_text("x\n")
    database = database or f"sqlite:///{tmp_path}/mc.db"
    path.write_text(
        f'[monitor]\ndatabase = "{database}"\nstate_dir = "{tmp_path}/state"\n'
        'listen = ""\n'
        '[[accounts]]\nname = "alice"\nemail = "alice@example.test"\n'
        f'password_file = "{tmp_path}/pw"\n'
        'smtp = { host = "127.0.0.1", port = 2587, security = "starttls" }\n'
        'imap = { host = "127.0.0.1", port = 2993, security = "tls" }\n'
        '[[routes]]\nname = "r1"\nfrom = "alice"\nto = ["alice"]\n'
        '[alerts]\nremind_every = "6h"\n'
        # Nobody listens there: deliveries stay in the outbox, which is what is checked.
        f'[[alerts.webhook]]\nurl = "http://127.0.0.1:{free_port()}/hook"\n'
    )
    return path


async def test_reminders_due_during_a_stop_are_queued_at_start(tmp_path):
    cfg = load_config(_config(tmp_path))
    store = await Store.open(cfg.monitor.database)
    await store.upgrade()
    # Fired seven hours ago, last told then: with remind_every = 6h, a reminder is due.
    then = datetime.now(UTC) - timedelta(hours=7)
    evidence = Evidence(probe_id=1, planned_at=then, verdict=Verdict.MISSING, sender="alice")
    firing = AlertState(
        "r1",
        "alice",
        AlertKind.MISSING,
        status=Status.FIRING,
        bad_streak=2,
        since=then,
        fired_at=then,
        last_bad_at=then,
        last_seen_at=then,
        last_notified_at=then,
        seq=1,
        evidence=evidence,
    )
    await AlertStore(store.engine).commit([(None, firing)], [], then)
    alerting = Alerting(cfg, store)
    try:
        await alerting.start()
        # Right after start, before any periodic tick could have run.
        queued = await alerting.store.deliveries()
    finally:
        await alerting.stop(drain=0)
        await store.close()
    assert [(d.transition_id, d.event) for d in queued] == [("r1/alice/missing/2", "reminder")]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_verdicts_evaluated_together_end_where_one_at_a_time_ends(tmp_path, request, backend):
    # The observe loop hands over whatever queued up: a key seen twice in one batch must
    # step on from its first step, and what is stored must be what one by one stores.
    history = [
        record(Verdict.INBOX, 0, probe_id=1, delivery=1.0),
        record(Verdict.MISSING, 1, probe_id=2),
        record(Verdict.MISSING, 2, probe_id=3),  # fires: after_failures = 2
        record(Verdict.INBOX, 3, probe_id=4, delivery=1.0),  # resolves
    ]
    outcomes = []
    for together in (False, True):
        directory = tmp_path / str(together)
        directory.mkdir()
        database = None
        if backend == "postgresql":  # whose driver writes the states one row at a time
            database = str(request.getfixturevalue("postgres").create_database())
        cfg = load_config(_config(directory, database))
        store = await Store.open(cfg.monitor.database)
        await store.upgrade()
        alerting = Alerting(cfg, store)
        try:
            if together:
                moved = await alerting.observe(*history)
            else:
                moved = [t for r in history for t in await alerting.observe(r)]
            stored = await AlertStore(store.engine).load()  # what a restart would read
            queued = await alerting.store.deliveries()
        finally:
            await store.close()
        # Times taken from the clock differ between the two runs; the rest must not.
        states = {
            key: replace(s.state, fired_at=None, resolved_at=None, last_notified_at=None)
            for key, s in stored.items()
        }
        outcomes.append(
            (
                [(t.event.value, t.id) for t in moved],
                states,
                sorted((d.transition_id, d.event) for d in queued),
            )
        )
    apart, together = outcomes
    assert apart[0] == [("firing", "r1/bob/missing/1"), ("resolved", "r1/bob/missing/2")]
    assert together == apart
    assert together[1][("r1", "bob", AlertKind.MISSING)].status is Status.RESOLVED
