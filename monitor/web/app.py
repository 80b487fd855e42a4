"""The status page's routes on the daemon's aiohttp application.

GET /                          overview
GET /route/{route}             a route: its mailboxes' last 48 hours, delivery times, failures
GET /route/{route}/{recipient} one mailbox: a week as a heatmap, the same details
GET /probe/{id}                one canary's whole record
GET /events                    server-sent events: "change" when a verdict was recorded
GET /static/{name}             the stylesheet and live.js (the only script; no inline script)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from importlib import resources
from typing import Any
from urllib.parse import quote

import structlog
from aiohttp import web
from jinja2 import Environment

from monitor import templates
from monitor.web import security, views
from monitor.web.views import Source

log = structlog.get_logger(__name__)

HEARTBEAT = 15.0  # seconds between keep-alive comments on an idle event stream
# At most one "change" per stream this often: with a thousand mailboxes verdicts come several
# a second, and each change makes every open page fetch itself again.
LIVE_EVERY = 5.0
MAX_STREAMS = 32  # open event streams; beyond, browsers fall back to a periodic fetch
_STATIC = {
    "live.js": ("monitor.web", "static/live.js", "text/javascript"),
    "style.css": ("monitor", "templates/web/page.css", "text/css"),
}


def _when(moment: datetime | None) -> str:
    return "—" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def _instant(moment: datetime | None) -> str:
    """To the millisecond: a canary's steps are often less than a second apart."""
    return (
        "—"
        if moment is None
        else f"{moment:%Y-%m-%d %H:%M:%S}.{moment.microsecond // 1000:03d} UTC"
    )


def environment() -> Environment:
    """The shared environment (monitor.templates) with the page's own filters."""
    env = templates.environment().overlay()
    env.filters |= {
        "when": _when,
        "instant": _instant,
        # One path segment: a name with "/" or "?" must not change the route.
        "seg": lambda value: quote(str(value), safe=""),
    }
    return env


class Pages:
    def __init__(self, source: Source, gate: Callable[[], security.Gate]):
        self.source = source
        self.gate = gate
        self.env = environment()
        self.streams = 0
        self._warming: asyncio.Future[None] | None = None
        self.static = {
            name: (resources.files(package).joinpath(path).read_bytes(), kind)
            for name, (package, path, kind) in _STATIC.items()
        }
        # The one stylesheet of report, mail and page, then the page's own rules.
        shared = templates.stylesheet().encode()
        page, kind = self.static["style.css"]
        self.static["style.css"] = (shared + b"\n" + page, kind)

    def install(self, app: web.Application) -> None:
        app.middlewares.append(security.middleware(self.gate))
        app.router.add_get("/", self.overview)
        app.router.add_get("/route/{route}", self.route)
        app.router.add_get("/route/{route}/{recipient}", self.route)
        app.router.add_get(r"/probe/{probe:\d{1,18}}", self.probe)
        app.router.add_get("/events", self.events)
        app.router.add_get("/static/{name}", self.asset)
        app.on_startup.append(self._starting)
        app.on_shutdown.append(self._stopping)

    async def _starting(self, _: web.Application) -> None:
        # The first read of a week is the slow one (seconds with a thousand mailboxes): do it
        # now, in the background, rather than for the first person who opens the page.
        self._warming = asyncio.ensure_future(self._warm())

    async def _warm(self) -> None:
        try:
            await views.overview(self.source)
        except Exception as exc:  # the first view will try again
            log.warning("status page warm-up failed", error=str(exc).splitlines()[0])

    async def _stopping(self, _: web.Application) -> None:
        self.source.hub.close()
        self.source.windows.cancel()
        if self._warming is not None:
            self._warming.cancel()

    def _render(self, template: str, context: dict[str, Any]) -> web.Response:
        body = self.env.get_template(f"web/{template}").render(**context)
        return web.Response(text=body, content_type="text/html", charset="utf-8")

    async def overview(self, _: web.Request) -> web.Response:
        return self._render("overview.html", await views.overview(self.source))

    async def route(self, request: web.Request) -> web.Response:
        route, recipient = request.match_info["route"], request.match_info.get("recipient")
        context = await views.route_page(self.source, route, recipient)
        if context is None:
            raise web.HTTPNotFound(text="no such route or mailbox\n")
        return self._render("route.html", context)

    async def probe(self, request: web.Request) -> web.Response:
        context = await views.probe_page(self.source, int(request.match_info["probe"]))
        if context is None:
            raise web.HTTPNotFound(text="no such probe\n")
        return self._render("probe.html", context)

    async def asset(self, request: web.Request) -> web.Response:
        found = self.static.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        body, kind = found
        return web.Response(body=body, content_type=kind)

    async def events(self, request: web.Request) -> web.StreamResponse:
        if self.streams >= MAX_STREAMS:
            raise web.HTTPServiceUnavailable(text="too many live pages\n")
        if request.method == "HEAD":  # a stream has no end for a HEAD to wait for
            return web.Response(content_type="text/event-stream")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        response.headers.update(security.HEADERS)
        await response.prepare(request)
        self.streams += 1
        hub = self.source.hub
        try:
            # After a restart the browser reconnects on its own; "hello" makes it refetch.
            seen = hub.version
            await response.write(f"retry: 3000\nevent: hello\ndata: {seen}\n\n".encode())
            while True:
                version = await hub.wait(seen, HEARTBEAT)
                if hub.closed:
                    await response.write_eof()
                    break
                if version == seen:
                    await response.write(b": idle\n\n")
                else:
                    seen = version
                    await response.write(f"event: change\ndata: {version}\n\n".encode())
                    await hub.pause(LIVE_EVERY)
        except ConnectionResetError:
            pass  # the page was closed
        finally:
            self.streams -= 1
        return response
