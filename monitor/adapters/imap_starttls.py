"""The plaintext start of an IMAP STARTTLS session (RFC 3501 §6.2.1), which aioimaplib lacks.

The connection is made and upgraded here; the TLS transport is then handed to the IMAP
protocol object, which never sees a byte of the plaintext part. Failures a server causes
come out as `StartTlsRefused`; socket and TLS errors propagate for the session to judge.
"""

from __future__ import annotations

import asyncio
import ssl

from monitor.core.models import Phase


class StartTlsRefused(Exception):
    def __init__(self, kind: str, phase: Phase, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.kind, self.phase, self.transient = kind, phase, transient


async def _line(reader: asyncio.StreamReader) -> bytes:
    line = await reader.readline()
    if not line.endswith(b"\n"):
        raise ConnectionResetError("connection closed before TLS started")
    return line.rstrip(b"\r\n")


async def upgrade(
    host: str, port: int, protocol: asyncio.Protocol, ssl_context: ssl.SSLContext
) -> asyncio.BaseTransport:
    """Connect in plaintext, read the greeting, STARTTLS; the TLS transport now feeds
    `protocol` (whose `connection_made` the caller still has to call)."""
    loop = asyncio.get_running_loop()
    # The plaintext part gets its own reader: whatever a man in the middle appends after
    # the OK stays in it and is never read as if TLS had protected it.
    reader = asyncio.StreamReader()
    try:
        transport, _ = await loop.create_connection(
            lambda: asyncio.StreamReaderProtocol(reader), host, port
        )
    except OSError as exc:
        raise StartTlsRefused(
            "connect_failed", Phase.IMAP_CONNECT, str(exc), transient=True
        ) from None
    try:
        if not (await _line(reader)).upper().startswith(b"* OK"):
            message = "no greeting before STARTTLS"
            raise StartTlsRefused("tls_failed", Phase.IMAP_TLS, message, transient=False)
        transport.write(b"S0 STARTTLS\r\n")
        while not (reply := await _line(reader)).startswith(b"S0 "):
            pass  # untagged lines before the answer: ignored, nothing protects them
        if not reply.upper().startswith(b"S0 OK"):
            message = f"STARTTLS refused: {reply[3:].decode(errors='replace')}"
            raise StartTlsRefused("tls_failed", Phase.IMAP_TLS, message, transient=False)
        tls = await loop.start_tls(transport, protocol, ssl_context, server_hostname=host)
    except BaseException:
        transport.close()
        raise
    if tls is None:  # only for a transport already closed under us
        raise ConnectionResetError("connection closed during the TLS handshake")
    return tls
