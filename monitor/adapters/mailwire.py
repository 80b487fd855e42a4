"""SMTP and IMAP spoken by hand, just far enough to see what a port offers.

Enough for `smtp_inspect` to read a greeting, the capabilities (EHLO / CAPABILITY), ask for
STARTTLS and say goodbye, on a connection that may be plain or TLS. Nothing here logs in.
Each dialect names the phase of each of its steps so a failure is recorded where it happened.
"""

from __future__ import annotations

import asyncio

from monitor.core.failures import classify_reply
from monitor.core.models import Failure, Phase


class Refused(Exception):
    """The peer said no; `failure` says how."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


class Garbled(Exception):
    """The peer answered, but not in the protocol we speak."""


class Link:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def line(self) -> str:
        raw = await self.reader.readline()
        if not raw.endswith(b"\n"):
            raise ConnectionResetError("the server closed the connection")
        return raw.decode("utf-8", errors="replace").rstrip("\r\n")

    async def send(self, text: str) -> None:
        self.writer.write(text.encode("ascii") + b"\r\n")
        await self.writer.drain()

    def tls(self) -> tuple[str | None, bytes | None]:
        tls = self.writer.get_extra_info("ssl_object")
        return (tls.version(), tls.getpeercert(binary_form=True)) if tls else (None, None)


class SmtpDialect:
    connect, tls, greeting, hello = Phase.CONNECT, Phase.TLS, Phase.GREETING, Phase.EHLO

    async def _reply(self, link: Link) -> tuple[int, str]:
        lines: list[str] = []
        while True:
            line = await link.line()
            if not line[:3].isdigit() or line[3:4] not in ("", " ", "-"):
                raise Garbled(f"not an SMTP reply: {line[:60]!r}")
            lines.append(line[4:])
            if line[3:4] != "-":
                return int(line[:3]), "\n".join(lines)

    async def greet(self, link: Link) -> str:
        code, text = await self._reply(link)
        if code != 220:
            raise Refused(classify_reply(Phase.GREETING, code, text))
        return text

    async def capabilities(self, link: Link) -> tuple[str, ...]:
        local = link.writer.get_extra_info("sockname")[0]
        await link.send(f"EHLO [{'IPv6:' if ':' in local else ''}{local}]")
        code, text = await self._reply(link)
        if code != 250:
            raise Refused(classify_reply(Phase.EHLO, code, text))
        return tuple(text.split("\n")[1:])

    def offers_starttls(self, capabilities: tuple[str, ...]) -> bool:
        return any(c.strip().upper() == "STARTTLS" for c in capabilities)

    async def starttls(self, link: Link) -> None:
        await link.send("STARTTLS")
        code, text = await self._reply(link)
        if code != 220:
            raise Refused(classify_reply(Phase.TLS, code, text))

    async def goodbye(self, link: Link) -> None:
        await link.send("QUIT")
        await self._reply(link)


class ImapDialect:
    connect, tls = Phase.IMAP_CONNECT, Phase.IMAP_TLS
    greeting = hello = Phase.IMAP_CONNECT

    def __init__(self) -> None:
        self._tags = iter(range(1, 1000))

    async def _command(self, link: Link, command: str) -> tuple[bool, list[str]]:
        tag = f"d{next(self._tags)}"
        await link.send(f"{tag} {command}")
        lines = []
        while not (line := await link.line()).startswith(f"{tag} "):
            lines.append(line)
        return line[len(tag) + 1 :].upper().startswith("OK"), [*lines, line]

    async def greet(self, link: Link) -> str:
        line = await link.line()
        if line.upper().startswith("* BYE"):
            raise Refused(Failure("greeting_refused", Phase.IMAP_CONNECT, True, line[6:]))
        if not line.upper().startswith(("* OK", "* PREAUTH")):
            raise Garbled(f"not an IMAP greeting: {line[:60]!r}")
        return line[2:]

    async def capabilities(self, link: Link) -> tuple[str, ...]:
        ok, lines = await self._command(link, "CAPABILITY")
        if not ok:
            raise Refused(Failure("protocol_error", Phase.IMAP_CONNECT, False, lines[-1]))
        words = [
            w
            for line in lines
            if line.upper().startswith("* CAPABILITY ")
            for w in line[13:].split()
        ]
        return tuple(words)

    def offers_starttls(self, capabilities: tuple[str, ...]) -> bool:
        return "STARTTLS" in (c.upper() for c in capabilities)

    async def starttls(self, link: Link) -> None:
        ok, lines = await self._command(link, "STARTTLS")
        if not ok:
            raise Refused(Failure("starttls_unavailable", Phase.IMAP_TLS, False, lines[-1]))

    async def goodbye(self, link: Link) -> None:
        await self._command(link, "LOGOUT")
