"""The daemon's HTTP listener: /metrics, /healthz and, when given, the status page (#14).

aiohttp.web runs on the daemon's own event loop (an `AppRunner` and a `TCPSite`, no thread, no
signal handling of its own), so pages read the same engine and the same live state as the
probes. Starlette would need uvicorn, whose server installs signal handlers the daemon owns.

Every answer is read-only (GET and HEAD; anything else 405), `no-store`, and carries the
strict security headers of `monitor.web.security.HEADERS` (no inline script, nothing loaded
from elsewhere).
A client that says nothing is dropped after `read_timeout` (aiohttp's keep-alive timer runs
from the moment a connection opens); a head over 8 KiB is refused with 400; the number of
open connections is capped, answered with 503 beyond it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from monitor.daemon.metrics import Metrics
from monitor.web.security import HEADERS

log = structlog.get_logger(__name__)

# (healthy, details): details become the /healthz JSON body next to "status".
Health = Callable[[], tuple[bool, dict[str, Any]]]
# Adds the status page's routes (and its own middleware state) to the application.
Pages = Callable[[web.Application], None]

MAX_HEAD = 8190
READ_TIMEOUT = 5.0
MAX_CONNECTIONS = 64
ALLOWED = ("GET", "HEAD")

# A malformed request is the client's problem; aiohttp would log each one with a traceback.
logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)


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


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _Listener:
    """Filled in once the runner exists: the middleware counts its open connections."""

    server: web.Server | None = None


LISTENER = web.AppKey("listener", _Listener)


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    server = request.app[LISTENER].server
    try:
        if request.method not in ALLOWED:
            raise web.HTTPMethodNotAllowed(request.method, ALLOWED)
        if server is not None and len(server.connections) > MAX_CONNECTIONS:
            raise web.HTTPServiceUnavailable(text="busy\n")
        response = await handler(request)
    except web.HTTPException as exc:
        response = web.Response(
            status=exc.status, text=exc.text or f"{exc.reason.lower()}\n", headers=exc.headers
        )
    except Exception:
        log.exception("http request failed", path=request.path)
        response = web.Response(status=500, text="internal error\n")
    if not response.prepared:
        response.headers.update(HEADERS)
    return response


class Server:
    def __init__(self, app: web.Application, read_timeout: float):
        self._runner = web.AppRunner(
            app,
            access_log=None,
            keepalive_timeout=read_timeout,
            max_line_size=MAX_HEAD,
            max_field_size=MAX_HEAD,
            # Live-update streams end at once on close; nothing else takes long.
            shutdown_timeout=1.0,
            handle_signals=False,
        )
        self._app = app

    async def start(self, host: str, port: int) -> None:
        await self._runner.setup()
        self._app[LISTENER].server = self._runner.server
        await web.TCPSite(self._runner, host, port).start()

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """The bound (host, port) pairs; with port 0 this tells which port was chosen."""
        return [tuple(address[:2]) for address in self._runner.addresses]

    @property
    def port(self) -> int:
        return self.addresses[0][1]

    async def close(self) -> None:
        await self._runner.cleanup()


def application(metrics: Metrics, health: Health, pages: Pages | None = None) -> web.Application:
    app = web.Application(middlewares=[_guard])
    app[LISTENER] = _Listener()

    async def prometheus(_: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        try:
            ok, details = health()
        except Exception as exc:
            log.exception("health check raised")
            ok, details = False, {"error": type(exc).__name__}
        body = {"status": "ok" if ok else "unhealthy", **details}
        return web.Response(
            status=200 if ok else 503,
            body=json.dumps(body, default=str).encode() + b"\n",
            content_type="application/json",
        )

    app.router.add_get("/metrics", prometheus)
    app.router.add_get("/healthz", healthz)
    if pages is not None:
        pages(app)
    return app


async def serve(
    listen: str,
    metrics: Metrics,
    health: Health,
    *,
    read_timeout: float = READ_TIMEOUT,
    pages: Pages | None = None,
) -> Server:
    """Start answering on `listen` ("host:port"); the caller turns it off by not calling this."""
    host, port = parse_listen(listen)
    server = Server(application(metrics, health, pages), read_timeout)
    await server.start(host, port)
    log.info("http listening", listen=[f"{h}:{p}" for h, p in server.addresses])
    return server
