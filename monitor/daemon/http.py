"""A tiny HTTP/1.1 endpoint for Prometheus and health checks: GET /metrics and GET /healthz.

Two read-only pages do not justify a web framework. Every connection answers one request and
closes; the request head is bounded in size and must arrive within a few seconds, and the
number of open connections is capped, so a slow or hostile client cannot hold the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST

from monitor.daemon.metrics import Metrics

log = structlog.get_logger(__name__)

# (healthy, details): details become the /healthz JSON body next to "status".
Health = Callable[[], tuple[bool, dict[str, Any]]]

MAX_HEAD = 8192
READ_TIMEOUT = 5.0
MAX_CONNECTIONS = 32
_JSON = "application/json"


def parse_listen(listen: str) -> tuple[str, int]:
    """'127.0.0.1:9842', 'localhost:9842', '[::1]:9842' or '0.0.0.0:9842' → (host, port)."""
    host, sep, port_text = listen.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"listen {listen!r}: write an IPv6 address in brackets, e.g. [::1]:9842")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"listen {listen!r}: expected host:port, e.g. 127.0.0.1:9842")
    return host, int(port_text)


class Server:
    def __init__(self, metrics: Metrics, health: Health, *, read_timeout: float = READ_TIMEOUT):
        self.metrics = metrics
        self.health = health
        self.read_timeout = read_timeout
        self._server: asyncio.Server | None = None
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS)
        self._handlers: set[asyncio.Task[Any]] = set()

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._connection, host, port, limit=MAX_HEAD)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """The bound (host, port) pairs; with port 0 this tells which port was chosen."""
        assert self._server is not None
        return [sock.getsockname()[:2] for sock in self._server.sockets]

    @property
    def port(self) -> int:
        return self.addresses[0][1]

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        # Since Python 3.12 wait_closed() waits for open connections: end them first.
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            if self._slots.locked():
                return  # at capacity: closing at once is the cheapest answer
            async with self._slots:
                await self._exchange(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass  # the client went away or would not read its answer
        except Exception:
            log.exception("http request failed")
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(self.read_timeout):
                head = await reader.readuntil(b"\r\n\r\n")
        except TimeoutError:
            return  # a client that says nothing in time gets nothing
        except asyncio.LimitOverrunError:
            await self._refuse(reader, writer, HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
            return
        parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            await self._refuse(reader, writer, HTTPStatus.BAD_REQUEST)
            return
        method, target, _ = parts
        if method not in ("GET", "HEAD"):
            await self._refuse(
                reader, writer, HTTPStatus.METHOD_NOT_ALLOWED, {"Allow": "GET, HEAD"}
            )
            return
        status, content_type, body = self._page(target.split("?", 1)[0])
        await _respond(
            writer, status, self.read_timeout, body, content_type, send_body=method == "GET"
        )

    async def _refuse(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        status: HTTPStatus,
        extra: dict[str, str] | None = None,
    ) -> None:
        await _respond(writer, status, self.read_timeout, extra=extra)
        # Closing with unread input makes the kernel send a reset, which can destroy the
        # answer before the client reads it: half-close, then discard a bounded remainder.
        writer.write_eof()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.read_timeout):
                for _ in range(16):
                    if not await reader.read(MAX_HEAD):
                        break

    def _page(self, path: str) -> tuple[HTTPStatus, str, bytes]:
        if path == "/metrics":
            return HTTPStatus.OK, CONTENT_TYPE_LATEST, self.metrics.render()
        if path == "/healthz":
            try:
                ok, details = self.health()
            except Exception as exc:
                log.exception("health check raised")
                ok, details = False, {"error": type(exc).__name__}
            body = {"status": "ok" if ok else "unhealthy", **details}
            status = HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE
            return status, _JSON, json.dumps(body, default=str).encode() + b"\n"
        return HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", b"not found\n"


async def serve(
    listen: str, metrics: Metrics, health: Health, *, read_timeout: float = READ_TIMEOUT
) -> Server:
    """Start answering on `listen` ("host:port"); the caller turns it off by not calling this."""
    host, port = parse_listen(listen)
    server = Server(metrics, health, read_timeout=read_timeout)
    await server.start(host, port)
    log.info("http listening", listen=[f"{h}:{p}" for h, p in server.addresses])
    return server


async def _respond(
    writer: asyncio.StreamWriter,
    status: HTTPStatus,
    drain_within: float,
    body: bytes | None = None,
    content_type: str = "text/plain; charset=utf-8",
    *,
    send_body: bool = True,
    extra: dict[str, str] | None = None,
) -> None:
    if body is None:
        body = f"{status.phrase.lower()}\n".encode()
    headers = {
        "Content-Type": content_type,
        "Content-Length": str(len(body)),
        "Connection": "close",
        "Cache-Control": "no-store",
        **(extra or {}),
    }
    head = f"HTTP/1.1 {status.value} {status.phrase}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
    writer.write(head.encode("latin-1") + (body if send_body else b""))
    async with asyncio.timeout(drain_within):
        # A client that never reads must not keep the connection (and a slot) forever.
        await writer.drain()
