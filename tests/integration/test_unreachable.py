"""DNS failure and a connect timeout through the real resolver and kernel, not faked errors.

`-nowhere.invalid` is refused by the C library's resolver before any query is sent (a label
cannot start with a hyphen), so nothing leaves the machine. A listening socket that never
accepts, with its accept queue full, makes the kernel drop further SYNs: connect() times out.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from monitor.adapters.smtp import send_message
from monitor.adapters.tls import client_context
from monitor.core.catalogue import advise, is_specific
from monitor.core.models import Phase, Security


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
