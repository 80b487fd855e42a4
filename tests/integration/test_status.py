"""`mailcanary status` as a user runs it, against a real SQLite file filled through the Store."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from monitor.adapters.store import Store
from monitor.core.models import (
    ArrivalSource,
    Decision,
    Failure,
    Phase,
    PlannedProbe,
    Role,
    SendOutcome,
    SmtpReply,
    Verdict,
    utcnow,
)

REPO = Path(__file__).resolve().parents[2]
T0 = utcnow().replace(microsecond=0) - timedelta(hours=1)
REJECTED = Failure("rejected", Phase.RCPT_TO, False, "5.1.1 no such user", 550, "5.1.1")


def mailcanary(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=config.parent,
        check=False,
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    accounts = "".join(
        f'[[accounts]]\nname = "{name}"\nemail = "{name}@example.test"\npassword = "x"\n'
        f'smtp = {{ host = "127.0.0.1", port = 2525, security = "none" }}\n'
        f'imap = {{ host = "127.0.0.1", port = 1143, security = "none" }}\n\n'
        for name in ("alice", "bob", "carol")
    )
    path = tmp_path / "mailcanary.toml"
    path.write_text(
        f'[monitor]\ndatabase = "sqlite:///{tmp_path}/var/mc.db"\n'
        f'state_dir = "{tmp_path}/state"\n\n{accounts}'
        '[[routes]]\nname = "main"\nfrom = "alice"\nto = ["bob", "carol"]\n\n'
        '[[routes]]\nname = "fresh"\nfrom = "bob"\nto = ["alice"]\n'
    )
    return path


def planned(n: int, route: str, to: str) -> PlannedProbe:
    at = T0 + timedelta(minutes=5 * n)
    return PlannedProbe(
        token=f"token-{n}-{route}-{to}",
        route=route,
        sender="alice",
        recipient=to,
        slot=at,
        planned_at=at,
        deadline_at=at + timedelta(minutes=10),
        message_id=f"<{n}.{to}@mailcanary.test>",
    )


def sent(at: datetime) -> SendOutcome:
    reply = SmtpReply(Phase.DATA, 250, "2.0.0", "Ok: queued as 4XyZ1")
    return SendOutcome(phase=Phase.DONE, replies=(reply,), queue_id="4XyZ1", handoff_at=at)


async def fill(database: str) -> dict[str, PlannedProbe]:
    """bob: inbox, then missing, then one in flight; carol: refused; `fresh` never ran."""
    store = await Store.open(database)
    probes = {
        "bob-inbox": planned(1, "main", "bob"),
        "bob-missing": planned(2, "main", "bob"),
        "bob-flying": planned(3, "main", "bob"),
        "carol-refused": planned(2, "main", "carol"),
        "gone": planned(1, "removed-route", "bob"),
    }
    try:
        await store.upgrade()
        ids = {key: await store.plan(probe) for key, probe in probes.items()}
        for key in ("bob-inbox", "bob-missing", "bob-flying", "gone"):
            await store.record_send(ids[key], sent(probes[key].planned_at))
        await store.record_send(
            ids["carol-refused"], SendOutcome(phase=Phase.RCPT_TO, failure=REJECTED)
        )
        inbox = Decision(
            Verdict.INBOX,
            folder="INBOX",
            role=Role.INBOX,
            arrived_at=probes["bob-inbox"].planned_at + timedelta(seconds=3.25),
            arrival_source=ArrivalSource.DETECTED,
            delivery_seconds=3.25,
        )
        await store.finish(ids["bob-inbox"], inbox)
        await store.finish(ids["bob-missing"], Decision(Verdict.MISSING))
        await store.finish(ids["carol-refused"], Decision(Verdict.SEND_FAILED, failure=REJECTED))
        await store.finish(ids["gone"], inbox)
    finally:
        await store.close()
    return probes


def status_json(config: Path) -> tuple[dict[tuple[str, str], dict], int]:
    """Rows by (route, to) and the exit code. A status that needed the write lock would wait
    out the busy timeout and fail ("database is locked"), not return a verdict's code."""
    done = mailcanary(config, "status", "--json")
    assert done.returncode in (0, 1, 2, 3), done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["route"], r["to"]) for r in rows] == [
        ("main", "bob"),
        ("main", "carol"),
        ("fresh", "alice"),
    ]  # config order; the removed route's history is not status
    return {(r["route"], r["to"]): r for r in rows}, done.returncode


def never(route: str, to: str) -> dict:
    return {
        "route": route,
        "to": to,
        "last_verdict": None,
        "last_at": None,
        "last_success_at": None,
        "delivery_seconds": None,
        "arrival_window_seconds": None,
        "failure": None,
        "in_flight": 0,
        "open_alerts": [],
    }


def parsed(row: dict) -> dict:
    """The row with its times as datetimes, to compare with the planned ones."""
    times = ("last_at", "last_success_at")
    return row | {key: datetime.fromisoformat(row[key]) for key in times if row[key]}


async def test_status_shows_each_configured_mailbox(config: Path, tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path}/var/mc.db"
    before, code = status_json(config)
    assert (before, code) == ({key: never(*key) for key in before}, 0)
    assert not (tmp_path / "var").exists()  # looking must not create the database

    probes = await fill(database)
    rows, code = status_json(config)
    assert code == 2  # the worst last verdict: missing, send_failed
    assert parsed(rows[("main", "bob")]) == never("main", "bob") | {
        "last_verdict": "missing",
        "last_at": probes["bob-missing"].planned_at,
        "last_success_at": probes["bob-inbox"].planned_at,  # the older probe that landed
        "in_flight": 1,
    }
    assert parsed(rows[("main", "carol")]) == never("main", "carol") | {
        "last_verdict": "send_failed",
        "last_at": probes["carol-refused"].planned_at,
        "failure": "rejected",
    }
    assert rows[("fresh", "alice")] == never("fresh", "alice")

    table = mailcanary(config, "status")
    assert table.returncode == 2, table.stderr
    lines = table.stdout.splitlines()
    fresh = next(line for line in lines if "fresh" in line)
    assert fresh.count("never") == 2
    carol_line = next(line for line in lines if "carol" in line)
    assert "send_failed" in carol_line and "rejected" in carol_line


async def test_status_reads_while_a_writer_holds_the_database(config: Path, tmp_path: Path):
    db = tmp_path / "var" / "mc.db"
    probes = await fill(f"sqlite:///{db}")
    writer = sqlite3.connect(db, timeout=5, isolation_level=None)
    try:
        # The daemon in the middle of deciding bob's probe: the write lock is held.
        writer.execute("BEGIN IMMEDIATE")
        writer.execute(
            "UPDATE probes SET state = 'final', verdict = 'inbox' WHERE token = ?",
            (probes["bob-flying"].token,),
        )
        bob = status_json(config)[0][("main", "bob")]
        assert (bob["last_verdict"], bob["in_flight"]) == ("missing", 1)  # the committed state
        writer.execute("COMMIT")
    finally:
        writer.close()
    bob = parsed(status_json(config)[0][("main", "bob")])
    assert (bob["last_verdict"], bob["in_flight"]) == ("inbox", 0)
    assert bob["last_success_at"] == probes["bob-flying"].planned_at


def nagios(config: Path) -> tuple[str, int]:
    done = mailcanary(config, "status", "--nagios")
    assert done.stdout.count("\n") == 1, (done.stdout, done.stderr)
    return done.stdout.strip(), done.returncode


def hourly(config: Path, database: tuple[str, str] | None = None) -> None:
    """Route `main` every hour, route `fresh` gone; optionally another database."""
    text = config.read_text()
    text = text.replace('to = ["bob", "carol"]\n', 'to = ["bob", "carol"]\ninterval = "1h"\n')
    if database is not None:
        text = text.replace(*database)
    config.write_text(text[: text.index('[[routes]]\nname = "fresh"')])


async def test_status_nagios_reads_the_record_and_says_when_it_is_stale(
    config: Path, tmp_path: Path
) -> None:
    line, code = nagios(config)
    assert (code, line) == (
        3,
        f"MAILCANARY UNKNOWN - no probes recorded yet: {tmp_path}/var/mc.db does not exist",
    )
    assert not (tmp_path / "var").exists()

    await fill(f"sqlite:///{tmp_path}/var/mc.db")
    # Every 5 minutes (the default), a verdict 50 minutes old means the daemon stopped.
    line, code = nagios(config)
    assert code == 3 and line.startswith("MAILCANARY UNKNOWN - 0/3 inbox; ")
    # (T0 is taken at import: the age grows with the time the suite took to get here)
    assert re.search(r"stale: main:bob \(newest \d+ min old\), main:carol \(newest \d+ min", line)
    assert "never: fresh:alice" in line

    # Hourly, the same record is current: the worst verdict wins, perfdata per mailbox.
    hourly(config)
    line, code = nagios(config)
    assert code == 2
    assert line == (
        "MAILCANARY CRITICAL - 0/2 inbox; missing: main:bob; send_failed: main:carol (rejected)"
        " | 'delivery_main:bob'=U;;;0; 'delivery_main:carol'=U;;;0;"
    )


async def test_status_nagios_on_postgresql_says_the_same(
    config: Path, tmp_path: Path, postgres
) -> None:
    url = postgres.create_database()
    await fill(url)
    hourly(config, database=(f"sqlite:///{tmp_path}/var/mc.db", url))
    line, code = nagios(config)
    assert code == 2 and "missing: main:bob; send_failed: main:carol (rejected)" in line
