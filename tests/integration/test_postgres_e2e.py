"""End to end on PostgreSQL: the CLI against the real mail stack, recorded in the harness's
private PostgreSQL, and read back by `history` and by SQL."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import asyncpg
import pytest

from monitor.core.models import Verdict
from monitor.harness.demo import write_config
from tests.integration.support import REPO

pytestmark = pytest.mark.mailstack

ROUTES = [
    ("to-inboxes", "alice", {"bob": Verdict.INBOX, "slow": Verdict.INBOX}),
    ("to-spam-folders", "alice", {"dmitri": Verdict.SPAM}),
    ("trouble", "alice", {"reject": Verdict.SEND_FAILED}),
    ("mailbox-login-refused", "alice", {"bob-wrong-imap": Verdict.CHECK_FAILED}),
]


def mailcanary(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "monitor.cli", *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=120, env=env, cwd=REPO, check=False
    )


async def stored(url: str) -> dict[str, tuple]:
    connection = await asyncpg.connect(url)
    try:
        found = await connection.fetch(
            "SELECT token, verdict, state, instance, folder, smtp_code FROM probes"
        )
    finally:
        await connection.close()
    return {row["token"]: tuple(row.values())[1:] for row in found}


def test_probe_and_history_on_postgresql(mailstack, postgres, tmp_path):
    url = postgres.create_database()
    monitor = (
        f'database = "{url}"\nstate_dir = "{tmp_path}/state"\ninstance = "eu-1"\n'
        'interval = "1m"\ndeadline = "20s"\npoll_interval = "2s"\n'
    )
    path = write_config(mailstack, tmp_path, routes=ROUTES, monitor=monitor)

    done = mailcanary("--config", str(path), "probe", "--json", "--deadline", "8s")
    assert done.returncode == 3, done.stderr  # check_failed is the worst verdict present
    rows = {(r["route"], r["to"]): r for r in map(json.loads, done.stdout.splitlines())}
    expected = {(route, to): v.value for route, _, wanted in ROUTES for to, v in wanted.items()}
    assert {key: row["verdict"] for key, row in rows.items()} == expected
    assert {row["instance"] for row in rows.values()} == {"eu-1"}
    slow = rows[("to-inboxes", "slow")]  # held by Postfix: a real delivery time survives
    assert slow["delivery_seconds"] >= mailstack.delay_seconds - 0.5

    shown = mailcanary("--config", str(path), "history", "--json")
    assert shown.returncode == 0, shown.stderr
    history = {r["token"]: r for r in map(json.loads, shown.stdout.splitlines())}
    assert history.keys() == {row["token"] for row in rows.values()}
    for row in rows.values():
        # The same record on the way back: times, codes and folders round-trip PostgreSQL.
        assert history[row["token"]] == row

    in_sql = asyncio.run(stored(url))
    for row in rows.values():
        verdict, state, instance, folder, code = in_sql[row["token"]]
        assert (verdict, state, instance) == (row["verdict"], "final", "eu-1")
        assert (folder, code) == (row["folder"], row["smtp_code"])
    assert in_sql[rows[("to-spam-folders", "dmitri")]["token"]][3] == "Спам"
