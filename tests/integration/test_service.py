"""The daemon as systemd runs it: notify socket, watchdog, reload, metrics, health, crashes."""

from __future__ import annotations

import json
import random
import signal
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.core.models import Verdict
from monitor.harness.demo import write_config
from tests.integration.support import free_port, rows, wait_for

pytestmark = pytest.mark.mailstack


class NotifySocket:
    """The systemd side of sd_notify: a datagram socket collecting what the daemon says."""

    def __init__(self, path: Path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.seen: list[dict[str, str]] = []

    def _drain(self) -> None:
        try:
            while True:
                data = self.sock.recv(4096).decode()
                self.seen.append(dict(line.split("=", 1) for line in data.splitlines() if line))
        except TimeoutError:
            pass

    def wait(self, key: str, value: str | None = None, *, after: int = 0, timeout: float = 30):
        """The first message from index `after` on carrying key (=value); fails on timeout."""

        def found() -> int | None:
            self._drain()
            for index, message in enumerate(self.seen[after:], after):
                if key in message and (value is None or message[key] == value):
                    return index + 1  # a 0 index must still count as found
            return None

        return int(wait_for(found, timeout, f"{key}={value} on the notify socket")) - 1


@pytest.fixture
def notify(tmp_path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.sock.close()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_notify_watchdog_reload_metrics_health_and_stop(mailstack, tmp_path, daemon, notify):
    port = free_port()
    monitor = (
        f'database = "sqlite:///{tmp_path}/mc.db"\nstate_dir = "{tmp_path}/state"\n'
        f'deadline = "20s"\npoll_interval = "2s"\nlisten = "127.0.0.1:{port}"\n'
    )
    one = [("first", "alice", {"bob": Verdict.INBOX})]
    two = [*one, ("second", "alice", {"carol": Verdict.SPAM})]
    path = write_config(mailstack, tmp_path, routes=one, monitor=monitor + 'interval = "2s"\n')
    db = tmp_path / "mc.db"
    d = daemon(path)
    d.env = {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "1000000"}
    d.start()
    assert d.proc is not None
    d.env["WATCHDOG_PID"] = str(d.proc.pid)

    ready = notify.wait("READY", "1")
    assert "routes" in notify.seen[ready].get("STATUS", "")
    notify.wait("WATCHDOG", "1", after=ready)
    wait_for(
        lambda: rows(db, "SELECT 1 FROM probes WHERE route='first' AND verdict='inbox'"),
        30,
        "an inbox verdict on the first route",
    )

    status, body = get(f"http://127.0.0.1:{port}/healthz")
    assert status == 200 and json.loads(body)["scheduler"] == "running"
    status, body = get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    samples = [s for family in text_string_to_metric_families(body) for s in family.samples]
    finished = [
        s
        for s in samples
        if s.labels.get("route") == "first"
        and s.labels.get("verdict") == "inbox"
        and s.name.endswith("_total")
    ]
    assert finished and finished[0].value >= 1

    # A changed config: the new route starts sending, nothing in flight is dropped.
    write_config(mailstack, tmp_path, routes=two, monitor=monitor + 'interval = "2s"\n')
    d.proc.send_signal(signal.SIGHUP)
    reloading = notify.wait("RELOADING", "1", after=ready)
    assert int(notify.seen[reloading]["MONOTONIC_USEC"]) > 0
    reloaded = notify.wait("READY", "1", after=reloading)
    wait_for(
        lambda: rows(db, "SELECT 1 FROM probes WHERE route='second' AND verdict='spam'"),
        30,
        "a spam verdict on the route added by the reload",
    )

    # A broken config: refused, the running one stays and keeps probing.
    path.write_text(path.read_text() + '\n[[routes]]\nfrom = "nobody"\nto = ["bob"]\n')
    d.proc.send_signal(signal.SIGHUP)
    refused = notify.wait("READY", "1", after=notify.wait("RELOADING", "1", after=reloaded + 1))
    assert "reload refused" in notify.seen[refused]["STATUS"]
    before = len(rows(db, "SELECT 1 FROM probes WHERE route='second' AND state='final'"))
    wait_for(
        lambda: (
            len(rows(db, "SELECT 1 FROM probes WHERE route='second' AND state='final'")) > before
        ),
        30,
        "probes still finishing after a refused reload",
    )

    assert d.signal(signal.SIGTERM) == 0
    notify.wait("STOPPING", "1", after=refused)
    log = d.log.read_text()
    assert "reload refused" in log and "Traceback" not in log


def test_kill_9_loop_leaves_every_probe_final_and_one_canary_per_slot(
    mailstack, tmp_path, daemon, notify
):
    monitor = (
        f'database = "sqlite:///{tmp_path}/mc.db"\nstate_dir = "{tmp_path}/state"\n'
        'interval = "2s"\ndeadline = "15s"\npoll_interval = "2s"\nlisten = ""\n'
        "cleanup = false\n"  # keep every canary, to count them per slot afterwards
    )
    # `slow` holds each canary a few seconds: with a 2 s interval one is nearly always in flight.
    route = f"crashy-{random.randrange(10**6)}"  # the mailbox is shared with other tests
    path = write_config(
        mailstack, tmp_path, routes=[(route, "alice", {"slow": Verdict.INBOX})], monitor=monitor
    )
    db = tmp_path / "mc.db"
    rng = random.Random()
    for _ in range(5):
        d = daemon(path)
        before = rows(db, "SELECT coalesce(max(id), 0) FROM probes")
        last_id = before[0][0] if before else 0
        d.start()
        # Crash only once this daemon has a canary in flight (held by Postfix), at a random
        # moment after; leftovers of the previous crash do not count.
        wait_for(
            lambda last_id=last_id: rows(
                db, "SELECT 1 FROM probes WHERE id > ? AND state = 'sent'", last_id
            ),
            60,
            "a probe of this daemon in flight",
        )
        time.sleep(rng.uniform(0.0, 1.5))  # a random moment to crash at, not a synchronisation
        d.signal(signal.SIGKILL)
    survivors = {t for (t,) in rows(db, "SELECT token FROM probes WHERE state != 'final'")}
    assert survivors, "no kill landed while a probe was in flight: nothing was tested"

    last = daemon(path)
    last.env = {"NOTIFY_SOCKET": str(notify.path)}
    last.start()
    notify.wait("READY", "1")

    def states() -> dict[str, str]:
        return dict(rows(db, "SELECT token, state FROM probes WHERE route=?", route))

    wait_for(
        lambda: all(states()[t] == "final" for t in survivors),
        40,
        f"the {len(survivors)} probes a crash left unfinished to reach a verdict",
    )
    assert last.signal(signal.SIGTERM) == 0

    per_slot = rows(
        db,
        "SELECT slot, count(*) FROM probes WHERE route=? GROUP BY slot HAVING count(*) > 1",
        route,
    )
    assert per_slot == []
    # In the mailbox: no token twice, and every canary there belongs to a recorded probe.
    messages = [
        message_from_bytes(raw, policy=default)
        for raw in mailstack.list_messages(mailstack.users["slow"], "INBOX")
    ]
    tokens = [m["X-Mailcanary-Token"] for m in messages if m["X-Mailcanary-Route"] == route]
    assert len(tokens) == len(set(tokens))
    assert set(tokens) <= set(states())
    # The drain (20 s) outlasts the deadline (15 s): after SIGTERM nothing is left unfinished.
    assert set(states().values()) == {"final"}
