"""The daemon as a real subprocess: scheduling, a hung server, SIGTERM, kill -9 and resume."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.adapters.store import Store
from monitor.core.models import PlannedProbe, Verdict
from monitor.harness.demo import write_config
from tests.integration.support import rows, wait_for

pytestmark = pytest.mark.mailstack


@pytest.fixture
def stalling_server() -> Iterator[int]:
    """A TCP peer that accepts and never says a word: a hung SMTP server."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


def _monitor(tmp_path: Path, extra: str = "") -> str:
    return (
        f'database = "sqlite:///{tmp_path}/mc.db"\nstate_dir = "{tmp_path}/state"\n'
        f'deadline = "20s"\npoll_interval = "2s"\nlisten = ""\n{extra}'
    )


def test_hung_server_delays_no_other_route_and_sigterm_stops_cleanly(
    mailstack, tmp_path, daemon, stalling_server
):
    routes = [("fast", "alice", {"bob": Verdict.INBOX})]
    path = write_config(
        mailstack,
        tmp_path,
        routes=routes,
        monitor=_monitor(tmp_path, 'interval = "2s"\nsmtp_timeout = "60s"\n'),
    )
    # A second sender whose SMTP server accepts TCP and then hangs.
    text = path.read_text() + (
        '\n[[accounts]]\nname = "hung"\nemail = "alice@example.test"\npassword = "x"\n'
        f'smtp = {{ host = "127.0.0.1", port = {stalling_server}, security = "tls" }}\n'
        '\n[[routes]]\nname = "hung"\nfrom = "hung"\nto = ["bob"]\ninterval = "2s"\n'
    )
    path.write_text(text)
    db = tmp_path / "mc.db"
    d = daemon(path)
    d.env["PYTHONPROFILEIMPORTTIME"] = "1"  # every module it imports, named in its log
    d.start()
    wait_for(
        lambda: len(rows(db, "SELECT 1 FROM probes WHERE route='fast' AND verdict='inbox'")) >= 3,
        60,
        "three inbox verdicts on the fast route",
    )
    hung = rows(db, "SELECT state FROM probes WHERE route='hung'")
    assert hung and all(state != "final" for (state,) in hung)
    assert d.signal(signal.SIGTERM) == 0
    log = (tmp_path / "daemon.log").read_text()
    assert '"event": "stopped"' in log and "Traceback" not in log
    # A daemon keeps what it imports for months (issue #17: memory). This config serves no
    # page, sends no webhook and no report, and ran no DNS check: none of their libraries
    # may be loaded, nor typer (`run` starts before it, cli/entry.py), nor rich's tracebacks
    # (structlog without rich, monitor/__init__.py). rich's console may print the config's
    # warnings, and this first start's migration loads Pygments through Alembic's Mako.
    loaded = {line.rsplit("|", 1)[1].strip() for line in log.splitlines() if "import time:" in line}
    assert {"monitor.daemon.main", "aiosmtplib", "aioimaplib"} <= loaded  # the list is real
    unused = {"aiohttp", "httpx", "dns", "jinja2", "typer", "rich.traceback"}
    assert not loaded & unused, loaded & unused


def test_kill_9_mid_probe_then_every_probe_reaches_a_verdict(mailstack, tmp_path, daemon):
    routes = [("to-slow", "alice", {"slow": Verdict.INBOX})]
    path = write_config(
        mailstack, tmp_path, routes=routes, monitor=_monitor(tmp_path, 'interval = "10m"\n')
    )
    db = tmp_path / "mc.db"

    # A probe planned by an earlier run that died before sending: deadline long gone.
    async def plant() -> None:
        store = await Store.open(f"sqlite:///{db}")
        await store.upgrade()
        past = datetime.now(UTC) - timedelta(hours=1)
        await store.plan(
            PlannedProbe(
                token="orphan",
                route="to-slow",
                sender="alice",
                recipient="slow",
                slot=past,
                planned_at=past,
                deadline_at=past + timedelta(seconds=20),
                message_id="<orphan@example.test>",
            )
        )
        await store.close()

    asyncio.run(plant())

    first = daemon(path)
    first.start()
    # Postfix holds mail for `slow` a few seconds: the probe sits in state 'sent'.
    token = wait_for(
        lambda: rows(
            db,
            "SELECT token FROM probes WHERE route='to-slow' AND state='sent' AND token != 'orphan'",
        ),
        30,
        "a probe in state sent",
    )[0][0]
    first.signal(signal.SIGKILL)
    send_record = "SELECT state, queue_id, smtp_code, smtp_replies FROM probes WHERE token=?"
    ((state, queue_id, code, replies),) = rows(db, send_record, token)
    # The send record was committed before the kill: every reply, DATA's 250 with its queue id.
    assert (state, code) == ("sent", 250) and queue_id
    assert [r["phase"] for r in json.loads(replies)][-3:] == ["mail_from", "rcpt_to", "data"]

    second = daemon(path)
    second.start()
    final = wait_for(
        lambda: (
            rows(
                db,
                "SELECT verdict, folder, reason FROM probes WHERE state='final' "
                "AND token IN (?, 'orphan') ORDER BY token = 'orphan'",
                token,
            )
            if len(
                rows(
                    db, "SELECT 1 FROM probes WHERE state='final' AND token IN (?, 'orphan')", token
                )
            )
            == 2
            else None
        ),
        40,
        "both unfinished probes to be resolved after the restart",
    )
    # The orphan never left: it cannot be missing (see core.verdict.not_found).
    assert final == [("inbox", "INBOX", None), ("send_failed", None, "restart")]
    # The resumed verdict kept the send record the killed daemon wrote.
    kept = rows(db, "SELECT queue_id, smtp_code, smtp_replies FROM probes WHERE token=?", token)
    assert kept == [(queue_id, code, replies)]
    assert rows(db, "SELECT failure FROM probes WHERE token='orphan'") == [("interrupted",)]
    # The restart fired the route again in the same 10-minute slot: it must not send twice.
    per_slot = rows(
        db,
        "SELECT slot, count(*) FROM probes WHERE route='to-slow' "
        "AND token != 'orphan' GROUP BY slot",
    )
    assert all(count == 1 for _, count in per_slot)
    assert second.signal(signal.SIGTERM) == 0
