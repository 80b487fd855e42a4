"""DNS failure and a connect timeout through the real resolver and kernel, not faked errors;
and `probe` against IMAP servers that are down or never greet.

`-nowhere.invalid` is refused by the C library's resolver before any query is sent (a label
cannot start with a hyphen), so nothing leaves the machine. A listening socket that never
accepts, with its accept queue full, makes the kernel drop further SYNs: connect() times out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from monitor.adapters.smtp import send_message
from monitor.adapters.tls import client_context
from monitor.core.catalogue import advise, is_specific
from monitor.core.models import Phase, Security, Verdict
from monitor.harness.demo import write_config
from tests.integration.support import REPO


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    security: Security = Security.STARTTLS
    timeout: float = 1.0


async def _send(endpoint: Endpoint):
    return await send_message(
        endpoint,
        login=None,
        message=b"Subject: x\r\n\r\nx\r\n",
        mail_from="a@example.test",
        rcpt_to="b@example.test",
        ssl_context=client_context(),
    )


@pytest.fixture
def full_backlog() -> Iterator[int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    # Fill the accept queue (Linux keeps backlog + 1): later SYNs are dropped, not refused.
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    yield port
    for filler in fillers:
        filler.close()
    server.close()


async def test_dns_failure_is_classified_and_advised():
    outcome = await _send(Endpoint("-nowhere.invalid", 25))
    assert outcome.failure is not None
    assert (outcome.failure.kind, outcome.failure.phase) == ("dns_failed", Phase.RESOLVE)
    assert is_specific(outcome.failure) and advise(outcome.failure).remedy


async def test_connect_timeout_is_classified_and_advised(full_backlog):
    outcome = await _send(Endpoint("127.0.0.1", full_backlog, timeout=0.5))
    assert outcome.failure is not None
    assert (outcome.failure.kind, outcome.failure.phase) == ("timeout", Phase.CONNECT)
    assert outcome.replies == ()
    assert is_specific(outcome.failure) and advise(outcome.failure).remedy


# ---------------------------------------------------------------- `probe` against dead mailboxes


class Tarpit:
    """An IMAP server that accepts TCP and never says a word, until `release` hangs up."""

    def __init__(self) -> None:
        self.held: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.held.append(writer)

        self.server = await asyncio.start_server(hold, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def release(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        for writer in self.held:
            writer.close()


@contextlib.asynccontextmanager
async def probing(
    stack, tmp_path: Path, routes: list, imap_timeout: str
) -> AsyncIterator[tuple[asyncio.subprocess.Process, Tarpit]]:
    """`probe --json --deadline 10m` as a subprocess, with an account `bob-tarpit` whose IMAP
    server is a tarpit; both are stopped on the way out."""
    tarpit = Tarpit()
    port = await tarpit.start()
    monitor = (
        f'database = "sqlite:///{tmp_path}/mc.db"\nstate_dir = "{tmp_path}/state"\n'
        'deadline = "10m"\npoll_interval = "2s"\nlisten = ""\n'
    )
    path = write_config(stack, tmp_path, routes=routes, monitor=monitor)
    bob = stack.users["bob"]
    path.write_text(
        path.read_text() + f'\n[[accounts]]\nname = "bob-tarpit"\nemail = "{bob.email}"\n'
        f'password_file = "{tmp_path}/secrets/bob"\n'
        f'imap = {{ host = "127.0.0.1", port = {port}, security = "none", '
        f'timeout = "{imap_timeout}" }}\n'
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "monitor.cli", "--config", str(path), "probe", "--json"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=REPO,
    )
    try:
        yield proc, tarpit
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await tarpit.release()


@pytest.mark.mailstack
async def test_probe_gives_up_on_dead_mailboxes_long_before_the_deadline(mailstack, tmp_path):
    """A closed IMAP port and a tarpit: check_failed after 3 attempts, not after `deadline`
    (10 minutes here; the test allows 2). The tarpit's attempts end at imap_timeout (2 s)."""
    routes = [
        ("down", "alice", {"bob-imap-down": Verdict.CHECK_FAILED}),
        ("tarpit", "alice", {"bob-tarpit": Verdict.CHECK_FAILED}),
    ]
    async with probing(mailstack, tmp_path, routes, "2s") as (proc, tarpit):
        async with asyncio.timeout(120):
            stdout, _ = await proc.communicate()
    got = {
        line["route"]: (line["verdict"], line["failure"], line["failure_message"])
        for line in map(json.loads, stdout.decode().splitlines())
    }
    assert proc.returncode == 3
    assert {route: verdict for route, (verdict, _, _) in got.items()} == {
        "down": "check_failed",
        "tarpit": "check_failed",
    }
    assert (got["down"][1], got["tarpit"][1]) == ("connect_failed", "timeout")
    assert all(message.endswith("(3 attempts)") for _, _, message in got.values())
    assert len(tarpit.held) >= 3  # it really was tried three times


@pytest.mark.mailstack
async def test_probe_json_prints_each_canary_as_it_is_judged(mailstack, tmp_path):
    """The inbox canary's line is out while the tarpitted one cannot be done yet: its IMAP
    sessions hang (imap_timeout 10m) until the test hangs up on them."""
    routes = [
        ("fast", "alice", {"bob": Verdict.INBOX}),
        ("slow", "alice", {"bob-tarpit": Verdict.CHECK_FAILED}),
    ]
    async with probing(mailstack, tmp_path, routes, "10m") as (proc, tarpit):
        assert proc.stdout is not None
        async with asyncio.timeout(120):
            first = json.loads(await proc.stdout.readline())
            assert (first["route"], first["verdict"]) == ("fast", "inbox")
            assert tarpit.held and proc.returncode is None  # the slow one is still held
            await tarpit.release()
            second = json.loads(await proc.stdout.readline())
            assert await proc.stdout.read() == b""
            assert await proc.wait() == 3
    assert (second["route"], second["verdict"]) == ("slow", "check_failed")
