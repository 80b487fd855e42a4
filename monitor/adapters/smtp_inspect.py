"""What one mail server port speaks, looked at the way a person troubleshooting it would.

`send_message` insists on the configured security and a verified certificate. A diagnosis must
instead find out what a port offers without knowing it, and look at a certificate it would
refuse, so ports are spoken to here directly over asyncio streams, SMTP and IMAP alike (their
dialects: monitor/adapters/mailwire.py; the certificate is read by monitor/core/certificate.py):

- Implicit TLS or a plain greeting: a TLS attempt on a plain port fails at once (the server
  speaks first and "220 …" is no TLS record), while a plain attempt on a TLS port waits for a
  greeting that never comes. So TLS goes first, except on 25/587/143 where plain is the
  convention; there TLS is tried only when no greeting came in time.
- The certificate is fetched with verification off, then a second handshake with the account's
  trust (system + ca_files) but no host-name check says whether it is trusted; the host name is
  matched separately, so "untrusted" and "not for this host" are told apart.

No password or token is sent except by `smtp_login`, over the configured, verified connection. Every
function returns a result; only cancellation propagates.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import time
import warnings
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from monitor.adapters.credentials import Credentials
from monitor.adapters.mailwire import Garbled, ImapDialect, Link, Refused, SmtpDialect

# The session a probe opens, and its judgement of what went wrong: a login is judged exactly as
# a probe's would be.
from monitor.adapters.smtp_session import (
    Conversation,
    SmtpEndpoint,
    client,
    failure_for,
    goodbye,
    open_session,
)
from monitor.core.certificate import Certificate, read_certificate
from monitor.core.failures import classify_error
from monitor.core.models import Failure, Phase, Security, SmtpReply, utcnow

PLAIN_FIRST_PORTS = frozenset({25, 587, 143})
_GOODBYE_SECONDS = 2.0
_T = TypeVar("_T")
Target = tuple[int, tuple[Any, ...]]  # (address family, socket address) from getaddrinfo


# ---------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Resolution:
    host: str
    targets: tuple[Target, ...] = ()
    seconds: float = 0.0
    failure: Failure | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None

    @property
    def addresses(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(str(sockaddr[0]) for _, sockaddr in self.targets))


@dataclass(frozen=True, slots=True)
class PortReport:
    protocol: str  # "smtp" | "imap"
    host: str
    port: int
    address: str | None = None  # the address that accepted TCP
    connect_seconds: float | None = None  # None: no TCP connection
    # TLS: implicit TLS; STARTTLS: plain greeting offering STARTTLS; NONE: plain only.
    speaks: Security | None = None
    greeting: str | None = None
    capabilities: tuple[str, ...] = ()  # EHLO lines / CAPABILITY atoms, as offered under TLS
    tls_version: str | None = None
    certificate: Certificate | None = None
    failure: Failure | None = None

    @property
    def accepts_tcp(self) -> bool:
        return self.connect_seconds is not None

    @property
    def ok(self) -> bool:
        return self.failure is None


@dataclass(frozen=True, slots=True)
class LoginReport:
    failure: Failure | None = None
    tls_version: str | None = None
    mechanisms: tuple[str, ...] = ()
    replies: tuple[SmtpReply, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.failure is None


# ---------------------------------------------------------------- resolve


async def resolve(host: str, timeout: float) -> Resolution:  # noqa: ASYNC109 - per step
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout):
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, None, type=socket.SOCK_STREAM
            )
    except socket.gaierror as exc:
        message = f"{host} does not resolve: {exc.strerror}"
        transient = exc.errno == socket.EAI_AGAIN  # resolver trouble, not "no such name"
        failure = classify_error(Phase.RESOLVE, "dns_failed", message, transient=transient)
    except UnicodeError:
        failure = classify_error(Phase.RESOLVE, "dns_failed", f"{host!r} is not a valid host name")
    except TimeoutError:
        failure = classify_error(Phase.RESOLVE, "timeout", f"{host}: no answer within {timeout:g}s")
    except OSError as exc:
        failure = classify_error(Phase.RESOLVE, "dns_failed", f"{host}: {exc}")
    else:
        targets = tuple(dict.fromkeys((int(info[0]), tuple(info[4])) for info in infos))
        return Resolution(host, targets, time.monotonic() - started)
    return Resolution(host, seconds=time.monotonic() - started, failure=failure)


# ---------------------------------------------------------------- TLS contexts


@lru_cache(maxsize=1)
def _unverified() -> ssl.SSLContext:
    # Only for looking: nothing secret is sent over it. Old versions allowed so they can be named.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings(category=DeprecationWarning, action="ignore"):
        context.minimum_version = ssl.TLSVersion.TLSv1
    with contextlib.suppress(ssl.SSLError):
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


def _trusting(ca_files: Iterable[Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.check_hostname = False  # matched separately, by core.certificate.host_matches
    for path in ca_files:
        context.load_verify_locations(cafile=str(path))
    return context


# ---------------------------------------------------------------- one port


class _Inspector:
    def __init__(self, resolution: Resolution, port: int, protocol: str, timeout: float):
        self.resolution, self.host, self.port = resolution, resolution.host, port
        self.protocol, self.timeout = protocol, timeout
        self.talk: SmtpDialect | ImapDialect = (
            SmtpDialect() if protocol == "smtp" else ImapDialect()
        )
        self.phase: Phase = self.talk.connect
        self.connected = False
        self.facts: dict[str, Any] = {}

    def report(self, failure: Failure | None = None) -> PortReport:
        return PortReport(self.protocol, self.host, self.port, failure=failure, **self.facts)

    async def _bounded(self, phase: Phase, work: Awaitable[_T]) -> _T:
        self.phase = phase
        async with asyncio.timeout(self.timeout):
            return await work

    async def _tcp(self) -> socket.socket:
        error: BaseException = OSError("no address to connect to")
        for family, sockaddr in self.resolution.targets:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            started = time.monotonic()
            try:
                where = (sockaddr[0], self.port, *sockaddr[2:])
                await self._bounded(
                    self.talk.connect, asyncio.get_running_loop().sock_connect(sock, where)
                )
            except (OSError, TimeoutError) as exc:
                sock.close()
                error = exc
                continue
            except BaseException:
                sock.close()
                raise
            if not self.connected:
                self.connected = True
                self.facts |= {
                    "address": str(sockaddr[0]),
                    "connect_seconds": time.monotonic() - started,
                }
            return sock
        raise error

    async def _open(self, implicit: bool, context: ssl.SSLContext) -> Link:
        """TCP, the TLS handshake when `implicit`, and the greeting."""
        sock = await self._tcp()
        tls: dict[str, Any] = {}
        if implicit:
            tls = {
                "ssl": context,
                "server_hostname": self.host,
                "ssl_handshake_timeout": self.timeout,
            }
        try:
            opened = asyncio.open_connection(sock=sock, **tls)
            reader, writer = await self._bounded(
                self.talk.tls if implicit else self.talk.greeting, opened
            )
        except BaseException:
            sock.close()
            raise
        link = Link(reader, writer)
        try:
            self.facts["greeting"] = await self._bounded(self.talk.greeting, self.talk.greet(link))
        except BaseException:
            writer.close()
            raise
        return link

    async def _upgrade(self, link: Link, context: ssl.SSLContext) -> None:
        await self._bounded(self.talk.tls, self.talk.starttls(link))
        upgrade = link.writer.start_tls(
            context, server_hostname=self.host, ssl_handshake_timeout=self.timeout
        )
        await self._bounded(self.talk.tls, upgrade)

    async def _greeted(self, tls_first: bool) -> tuple[Link, bool]:
        try:
            return await self._open(tls_first, _unverified()), tls_first
        except (ssl.SSLError, ConnectionError, TimeoutError, Garbled) as exc:
            # Only a wrong guess falls back: TLS refused at once, or no plain greeting in time.
            wrong_guess = isinstance(exc, TimeoutError) != tls_first
            if not self.connected or not wrong_guess:
                raise
        return await self._open(not tls_first, _unverified()), not tls_first

    async def run(self, tls_first: bool, ca_files: Iterable[Path]) -> PortReport:
        try:
            link, implicit = await self._greeted(tls_first)
            self.facts["speaks"] = Security.TLS if implicit else Security.NONE
            try:
                offered = await self._bounded(self.talk.hello, self.talk.capabilities(link))
                if not implicit and self.talk.offers_starttls(offered):
                    self.facts["speaks"] = Security.STARTTLS
                    await self._upgrade(link, _unverified())
                    offered = await self._bounded(self.talk.hello, self.talk.capabilities(link))
                self.facts["capabilities"] = offered
                self.facts["tls_version"], der = link.tls()
                with contextlib.suppress(Exception):  # a goodbye is a courtesy
                    async with asyncio.timeout(_GOODBYE_SECONDS):
                        await self.talk.goodbye(link)
            finally:
                link.writer.close()
        except Refused as stop:
            return self.report(stop.failure)
        except (OSError, TimeoutError, ssl.SSLError, Garbled) as exc:
            return self.report(self._failure(exc))
        if der:
            trust_error = await self._trust(self.facts["speaks"], ca_files)
            self.facts["certificate"] = read_certificate(der, self.host, trust_error, utcnow())
        return self.report()

    async def _trust(self, speaks: Security, ca_files: Iterable[Path]) -> str | None:
        """Why the account's trust refuses this certificate, or None when it accepts it."""
        try:
            context = _trusting(ca_files)
            link = await self._open(speaks is Security.TLS, context)
            try:
                if speaks is Security.STARTTLS:
                    await self._bounded(self.talk.hello, self.talk.capabilities(link))
                    await self._upgrade(link, context)
            finally:
                link.writer.close()
        except ssl.SSLCertVerificationError as exc:
            return str(exc.verify_message)
        except (ssl.SSLError, OSError, TimeoutError, Refused, Garbled) as exc:
            return f"could not be checked: {exc or type(exc).__name__}"
        return None

    def _failure(self, exc: BaseException) -> Failure:
        phase, where = self.phase, f"{self.host}:{self.port}"
        if isinstance(exc, TimeoutError):
            return classify_error(
                phase,
                "timeout",
                f"{where}: no answer within {self.timeout:g}s during {phase.value}",
            )
        if isinstance(exc, ssl.SSLError):
            reason = getattr(exc, "verify_message", None) or exc.reason or str(exc)
            return classify_error(
                self.talk.tls, "tls_failed", f"{where}: TLS handshake failed: {reason}"
            )
        if isinstance(exc, Garbled):
            return classify_error(phase, "protocol_error", f"{where}: {exc}")
        if not self.connected:
            reason = os.strerror(exc.errno) if isinstance(exc, OSError) and exc.errno else exc
            return classify_error(self.talk.connect, "connect_failed", f"{where}: {reason}")
        return classify_error(phase, "connection_lost", f"{where}: {exc}")


async def inspect_port(
    resolution: Resolution,
    port: int,
    *,
    protocol: str = "smtp",
    ca_files: Iterable[Path] = (),
    timeout: float = 60.0,  # noqa: ASYNC109 - each step's bound, not the whole call's
    tls_first: bool | None = None,
) -> PortReport:
    """What `port` on the resolved host speaks, offers and presents; never raises.

    `tls_first` None: by port convention (plain first on 25/587/143, implicit TLS elsewhere).
    """
    inspector = _Inspector(resolution, port, protocol, timeout)
    first = port not in PLAIN_FIRST_PORTS if tls_first is None else tls_first
    try:
        return await inspector.run(first, tuple(ca_files))
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # an odd peer must still give a result, never a traceback
        message = f"{type(exc).__name__}: {exc}"
        return inspector.report(classify_error(inspector.phase, "protocol_error", message))


# ---------------------------------------------------------------- login


async def smtp_login(
    endpoint: SmtpEndpoint, login: Credentials, ssl_context: ssl.SSLContext
) -> LoginReport:
    """Open the session exactly as a probe would (configured security, verified TLS, AUTH with
    the account's password or XOAUTH2 token); no MAIL."""
    conversation = Conversation(timeout=endpoint.timeout)
    smtp = client(endpoint, ssl_context)
    failure: Failure | None = None
    try:
        await open_session(smtp, conversation, endpoint, login)
    except asyncio.CancelledError:
        smtp.close()
        raise
    except Exception as exc:
        failure = failure_for(exc, conversation, endpoint.security is Security.TLS)
    await goodbye(smtp, failure)
    return LoginReport(
        failure, conversation.tls_version, conversation.mechanisms, tuple(conversation.replies)
    )
