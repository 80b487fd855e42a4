"""The notify protocol through a real unix datagram socket, as systemd would receive it."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from monitor.daemon.sdnotify import Notifier, watchdog_loop

WAIT = 5.0


@pytest.fixture(params=["path", "abstract"])
def systemd(request, tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A bound receiving socket and the NOTIFY_SOCKET value naming it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        name = str(tmp_path / "notify.sock")
        sock.bind(name)
    else:
        name = f"@mailcanary-test-{secrets.token_hex(8)}"
        sock.bind(b"\0" + name[1:].encode())
    sock.setblocking(False)
    try:
        yield sock, name
    finally:
        sock.close()


async def receive(sock: socket.socket) -> str:
    async with asyncio.timeout(WAIT):
        return (await asyncio.get_running_loop().sock_recv(sock, 4096)).decode()


def pending(sock: socket.socket) -> list[str]:
    found = []
    while True:
        try:
            found.append(sock.recv(4096).decode())
        except BlockingIOError:
            return found


async def test_each_notification_is_one_exact_datagram(systemd) -> None:
    sock, name = systemd
    notifier = Notifier({"NOTIFY_SOCKET": name})
    try:
        assert notifier.ready("3 routes,\n2 watchers")
        assert await receive(sock) == "READY=1\nSTATUS=3 routes, 2 watchers"
        assert notifier.status("probing")
        assert await receive(sock) == "STATUS=probing"
        assert notifier.watchdog()
        assert await receive(sock) == "WATCHDOG=1"

        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        assert notifier.reloading()
        after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        reloading, stamp = (await receive(sock)).split("\n")
        assert reloading == "RELOADING=1"
        key, value = stamp.split("=")
        assert key == "MONOTONIC_USEC" and before <= int(value) <= after

        assert notifier.stopping()
        assert await receive(sock) == "STOPPING=1"
    finally:
        notifier.close()


def test_outside_systemd_nothing_is_sent() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert not notifier.ready("up")
    assert notifier.watchdog_interval() is None


def test_a_dead_socket_is_logged_once_and_never_raises(tmp_path: Path) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens.sock")})
    with structlog.testing.capture_logs() as logs:
        assert not notifier.ready()
        assert not notifier.watchdog()
        assert not notifier.stopping()
    assert [entry["log_level"] for entry in logs] == ["warning"]
    notifier.close()


def test_watchdog_interval_honours_watchdog_pid() -> None:
    mine, other = str(os.getpid()), str(os.getpid() + 1)
    assert Notifier({"WATCHDOG_USEC": "30000000"}).watchdog_interval() == 30.0
    assert Notifier({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": mine}).watchdog_interval() == 0.2
    assert Notifier({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": other}).watchdog_interval() is None
    assert Notifier({"WATCHDOG_USEC": "0"}).watchdog_interval() is None
    assert Notifier({"WATCHDOG_USEC": "soon"}).watchdog_interval() is None


async def test_watchdog_pings_at_half_the_interval_only_while_healthy(systemd) -> None:
    sock, name = systemd
    notifier = Notifier({"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "200000"})
    state = {"healthy": True, "refusals": 0}
    refused = asyncio.Event()

    def healthy() -> bool:
        if not state["healthy"]:
            state["refusals"] += 1
            if state["refusals"] >= 3:
                refused.set()
        return state["healthy"]

    loop_task = asyncio.create_task(watchdog_loop(notifier, healthy))
    try:
        times = []
        for _ in range(3):
            assert await receive(sock) == "WATCHDOG=1"
            times.append(time.monotonic())
        # Two gaps of half of 0.2 s: never faster than systemd asked.
        assert times[-1] - times[0] >= 0.18

        # Pings are sent synchronously inside healthy()'s caller, so once three checks have
        # said "unhealthy", anything queued was sent before the switch.
        state["healthy"] = False
        pending(sock)
        async with asyncio.timeout(WAIT):
            await refused.wait()
        assert pending(sock) == []

        state["healthy"] = True
        assert await receive(sock) == "WATCHDOG=1"
    finally:
        loop_task.cancel()
        await asyncio.gather(loop_task, return_exceptions=True)
        notifier.close()


async def test_no_watchdog_requested_means_the_loop_returns(systemd) -> None:
    _, name = systemd
    notifier = Notifier({"NOTIFY_SOCKET": name})
    async with asyncio.timeout(WAIT):
        await watchdog_loop(notifier, lambda: True)
