"""TLS contexts: the system trust store plus the configured extra anchors; always verifying."""

from __future__ import annotations

import asyncio.sslproto
import ssl
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path


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


def trim_read_buffers(size: int = READ_BUFFER) -> None:
    """Give every later asyncio TLS connection a `size`-byte read buffer instead of 256 KiB.

    asyncio allocates (and zero-fills) that buffer per connection whether or not it is ever
    used; with two idling IMAP sessions per watched mailbox it was most of the daemon's memory
    (1,000 mailboxes: ~500 MB of buffers). A smaller buffer only means more, cheaper reads of
    the few large replies. Process-wide, so it is called once by whatever runs watchers.
    """
    if getattr(asyncio.sslproto.SSLProtocol, "max_size", 0) > size:
        asyncio.sslproto.SSLProtocol.max_size = size
