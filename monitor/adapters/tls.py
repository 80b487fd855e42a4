"""TLS contexts: the system trust store plus the configured extra anchors; always verifying."""

from __future__ import annotations

import asyncio.selector_events
import asyncio.sslproto
import ssl
import threading
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any


def client_context(ca_files: Iterable[Path | str] = ()) -> ssl.SSLContext:
    """A verifying client context; cached per set of CA files so handshakes reuse it."""
    return _cached(tuple(sorted(str(p) for p in ca_files)))


@lru_cache(maxsize=32)
def _cached(ca_files: tuple[str, ...]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    for path in ca_files:
        ctx.load_verify_locations(cafile=path)
    return ctx


# A full TLS record: asyncio reads it in one go, larger buffers only hold zeroes.
READ_BUFFER = 16 * 1024

_per_thread = threading.local()  # one event loop per thread: one read buffer per thread


def trim_read_buffers(size: int = READ_BUFFER) -> None:
    """Give every later asyncio TLS connection on a selector loop one shared `size`-byte read
    buffer instead of a 256 KiB buffer of its own.

    asyncio allocates (and zero-fills) that buffer per connection whether or not it is ever
    used; with two idling IMAP sessions per watched mailbox it was most of the daemon's memory
    (1,000 mailboxes: ~500 MB of buffers, then 32 MB once trimmed to 16 KiB). A selector
    loop uses it only between a socket read and the copy into the TLS object that follows
    at once, in the same callback (`get_buffer` → `recv_into` → `buffer_updated`), so the
    connections of one loop can take turns with one buffer. A proactor loop (Windows) reads
    into it asynchronously: its connections keep their own. Process-wide, so it is called
    once by whatever runs watchers.
    """
    protocol = asyncio.sslproto.SSLProtocol
    if getattr(protocol, "max_size", 0) > size:
        protocol.max_size = size
    if getattr(protocol.__init__, "_shares_buffer", False):
        return
    own_init = protocol.__init__

    def init(self: Any, loop: asyncio.AbstractEventLoop, *args: Any, **kwargs: Any) -> None:
        own_init(self, loop, *args, **kwargs)
        if isinstance(loop, asyncio.selector_events.BaseSelectorEventLoop):
            buffer = getattr(_per_thread, "buffer", None)
            if buffer is None or len(buffer) < len(self._ssl_buffer):
                buffer = _per_thread.buffer = bytearray(len(self._ssl_buffer))
                _per_thread.view = memoryview(buffer)
            self._ssl_buffer, self._ssl_buffer_view = buffer, _per_thread.view

    init._shares_buffer = True  # type: ignore[attr-defined]
    protocol.__init__ = init  # type: ignore[method-assign]
