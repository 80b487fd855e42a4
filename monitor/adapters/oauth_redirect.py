"""The loopback listener of a browser sign-in (OAuth2 for native apps, RFC 8252 §7.3).

It listens on 127.0.0.1 only (never on every interface: the redirect carries the code) on a
port the system picks. The issuer sends the browser back to `redirect_uri` with
`?code=…&state=…` or `?error=…`; each such visit is handed to the caller, who answers it
with a short page once it knows the outcome. It speaks just enough HTTP/1.1 for that one
GET: other paths get 404, other methods 405, and a connection that sends nothing is dropped.
Nothing here logs a request line: it carries the authorization code.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
from dataclasses import dataclass, field
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

import structlog

HOST = "127.0.0.1"
PATH = "/"
REQUEST_TIMEOUT = 10.0  # for the browser to send its request line and headers
ANSWER_TIMEOUT = 60.0  # for the caller to finish the token exchange and answer
_MAX_REQUEST = 64 * 1024  # browsers send every cookie set for 127.0.0.1
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
_REASONS[500] = "Internal Server Error"
log = structlog.get_logger(__name__)


@dataclass(eq=False)  # each visit is its own, kept in a set until answered
class Visit:
    """One browser request to the redirect URI; `answer` sends it the page."""

    query: dict[str, str] = field(repr=False)
    _reply: asyncio.Future[tuple[int, str]] = field(repr=False)

    def answer(self, status: int, text: str) -> None:
        if not self._reply.done():
            self._reply.set_result((status, text))


class RedirectListener:
    """`async with RedirectListener() as listener:` then `await listener.next_visit()`."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._visits: asyncio.Queue[Visit] = asyncio.Queue()
        self._open: set[Visit] = set()
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None, "not listening"
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def redirect_uri(self) -> str:
        return f"http://{HOST}:{self.port}{PATH}"

    async def __aenter__(self) -> RedirectListener:
        self._server = await asyncio.start_server(
            self._serve, host=HOST, port=0, limit=_MAX_REQUEST
        )
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for visit in list(self._open):  # a second tab, a reload: this sign-in is over
            visit.answer(400, "This sign-in has ended. You can close this window.")
        if self._server is not None:
            self._server.close()
        if self._handlers:  # let the last page reach the browser before the process ends
            await asyncio.wait(self._handlers, timeout=2.0)
        for task in self._handlers:
            task.cancel()

    async def next_visit(self) -> Visit:
        return await self._visits.get()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            try:
                status, text = await self._handle(reader)
            except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                return  # the browser never finished its request: nothing to answer
            except Exception:
                log.exception("redirect listener failed")
                status, text = 500, "mailcanary failed here; the terminal may say more."
            await _respond(writer, status, text)
        except OSError:
            pass  # the browser went away before the answer
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            if task is not None:
                self._handlers.discard(task)

    async def _handle(self, reader: asyncio.StreamReader) -> tuple[int, str]:
        async with asyncio.timeout(REQUEST_TIMEOUT):
            head = await reader.readuntil(b"\r\n\r\n")  # LimitOverrunError past _MAX_REQUEST
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        method, _, rest = request_line.partition(" ")
        target = urlsplit(rest.rpartition(" ")[0] or rest)
        if method != "GET":
            return 405, "Only GET is served here."
        if target.path != PATH:
            return 404, "Nothing here."
        query = {key: values[0] for key, values in parse_qs(target.query).items()}
        visit = Visit(query, asyncio.get_running_loop().create_future())
        self._open.add(visit)
        self._visits.put_nowait(visit)
        try:
            async with asyncio.timeout(ANSWER_TIMEOUT):
                return await visit._reply
        except TimeoutError:
            return 400, "mailcanary did not answer in time; look at the terminal."
        finally:
            self._open.discard(visit)


async def _respond(writer: asyncio.StreamWriter, status: int, text: str) -> None:
    body = (
        '<!doctype html><html><head><meta charset="utf-8"><title>mailcanary</title></head>'
        f"<body><p>{html.escape(text)}</p></body></html>"
    ).encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}\r\n"
        "Content-Type: text/html; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        # The URL holds the code: no caching, and no Referer if the page is left.
        "Cache-Control: no-store\r\nReferrer-Policy: no-referrer\r\nConnection: close\r\n\r\n"
    )
    writer.write(head.encode("ascii") + body)
    await writer.drain()
