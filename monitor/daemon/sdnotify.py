"""systemd's notify protocol, spoken directly: one datagram per state change to `$NOTIFY_SOCKET`.

No dependency: the protocol is newline-separated `KEY=value` lines in a datagram to a unix
socket, either a path or an abstract name written with a leading '@'. Outside systemd (no
`$NOTIFY_SOCKET`) every call is a no-op, so the daemon needs no "am I a service?" branches.
A failure to send is logged once and never raised: the daemon's job is the mail, and a
missed notification is systemd's to notice (it will time out or fire the watchdog).

For `Type=notify-reload` systemd expects RELOADING=1 with MONOTONIC_USEC, then READY=1 once
the reload is done: call `reloading()` then `ready()`.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable, Mapping

import structlog

log = structlog.get_logger(__name__)


class Notifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ
        self._address = _address(self._environ.get("NOTIFY_SOCKET", ""))
        self._socket: socket.socket | None = None
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def send(self, *fields: str) -> bool:
        """Send `KEY=value` fields as one datagram; False when not sent (or not under systemd)."""
        if self._address is None:
            return False
        try:
            if self._socket is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                # A full receive queue must not stall the event loop: drop the datagram instead.
                sock.setblocking(False)
                self._socket = sock
            self._socket.sendto("\n".join(fields).encode(), self._address)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning(
                    "cannot notify systemd; further failures are not logged",
                    socket=self._environ.get("NOTIFY_SOCKET"),
                    error=str(exc),
                )
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.send("READY=1", *_status(status))

    def status(self, text: str) -> bool:
        return self.send(*_status(text))

    def stopping(self, status: str | None = None) -> bool:
        return self.send("STOPPING=1", *_status(status))

    def reloading(self, status: str | None = None) -> bool:
        # systemd matches the reload to this timestamp; it must be CLOCK_MONOTONIC in µs.
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}", *_status(status))

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def watchdog_interval(self) -> float | None:
        """systemd's watchdog timeout in seconds, or None when no watchdog is asked of us."""
        pid = self._environ.get("WATCHDOG_PID")
        # A forked child inherits the environment; only the process systemd meant may ping.
        if pid and pid.strip() != str(os.getpid()):
            return None
        try:
            usec = int(self._environ.get("WATCHDOG_USEC", ""))
        except ValueError:
            return None
        return usec / 1_000_000 if usec > 0 else None

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


async def watchdog_loop(notifier: Notifier, healthy: Callable[[], bool]) -> None:
    """Ping at half the watchdog interval, but only while `healthy()` holds.

    A blocked event loop stops the pings by itself (this task cannot run); `healthy()` covers
    the rest (the scheduler died, the database is gone), so systemd restarts us either way.
    Returns at once when systemd asked for no watchdog; otherwise runs until cancelled.
    """
    interval = notifier.watchdog_interval()
    if interval is None or not notifier.enabled:
        return
    was_healthy = True
    while True:
        try:
            ok = bool(healthy())
        except Exception:
            log.exception("health check raised; treating as unhealthy")
            ok = False
        if ok:
            notifier.watchdog()
        elif was_healthy:
            log.warning("unhealthy: withholding the systemd watchdog ping")
        if ok and not was_healthy:
            log.info("healthy again: watchdog pings resume")
        was_healthy = ok
        await asyncio.sleep(interval / 2)


def _address(value: str) -> str | bytes | None:
    if not value:
        return None
    if value.startswith("@"):
        # Linux abstract namespace: the name starts with a NUL byte and is not NUL-terminated.
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    # systemd ≥ 253 may hand out vsock: addresses (VMs); a daemon on the host never sees them.
    log.warning("unsupported NOTIFY_SOCKET; systemd notifications disabled", socket=value)
    return None


def _status(text: str | None) -> tuple[str, ...]:
    # STATUS is a single line: a newline would start a new (bogus) field.
    if text is None:
        return ()
    return (f"STATUS={' '.join(text.split())}",)
