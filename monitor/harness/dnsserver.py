"""A real DNS server for tests: a private dnsmasq on 127.0.0.1, answering fixture zones only.

dnsmasq (Debian's dnsmasq-base: the binary without the system service) expresses all the
fixture needs with command-line records: TXT of several character-strings, MX, A/AAAA with
their PTR (--host-record), a PTR alone, and wildcard answers (--address) for DNSBL zones.
It runs with no upstream at all and `--local` for the served zones, so unknown names get
NXDOMAIN and no query ever leaves the machine. Started on a free port, stopped by its pid.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import dns.exception
import dns.message
import dns.query
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

DNSMASQ = "/usr/sbin/dnsmasq"
HOST = "127.0.0.1"
READY_TIMEOUT = 10.0


class DnsServerError(RuntimeError):
    """dnsmasq could not start (the message carries its log)."""


def missing_requirements() -> str | None:
    if not Path(DNSMASQ).exists():
        return f"the DNS fixture needs dnsmasq ({DNSMASQ}); apt-get install dnsmasq-base"
    return None


class DnsServer:
    """A running dnsmasq serving `records` (dnsmasq options); build it with `start()`."""

    host = HOST

    def __init__(self, root: Path, records: Sequence[str], port: int) -> None:
        self.root, self.port = root, port
        self.log = root / "dnsmasq.log"
        self.config = root / "dnsmasq.conf"
        # `local` zones answer NXDOMAIN for unknown names instead of REFUSED (no upstream).
        options = [
            "no-resolv", "no-hosts", "no-poll", "keep-in-foreground", "bind-interfaces",
            f"listen-address={HOST}", f"port={port}", "pid-file=", "log-queries",
            "local-ttl=60", "local=/test/", "local=/127.in-addr.arpa/", "local=/ip6.arpa/",
            *records,
        ]  # fmt: skip
        self.config.write_text("".join(f"{option}\n" for option in options))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def nameserver(self) -> tuple[str, int]:
        return HOST, self.port

    @classmethod
    def start(cls, records: Sequence[str]) -> DnsServer:
        reason = missing_requirements()
        if reason is not None:
            raise DnsServerError(reason)
        root = Path(tempfile.mkdtemp(prefix="mcdns", dir="/tmp"))
        try:
            server = cls(root, records, _free_port())
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        atexit.register(server.stop)  # a crashed run must not leave dnsmasq behind
        try:
            with server.log.open("ab") as sink:
                server.proc = subprocess.Popen(
                    [DNSMASQ, f"--conf-file={server.config}", "--log-facility=-"],
                    stdout=sink,
                    stderr=sink,
                    stdin=subprocess.DEVNULL,
                )
            server._wait_ready()
        except BaseException as exc:
            log = server.log.read_text(errors="replace")
            server.stop()
            if not isinstance(exc, Exception):  # Ctrl-C: stopped, and still an interrupt
                raise
            raise DnsServerError(f"dnsmasq did not start: {exc}\n{log}") from exc
        return server

    def _wait_ready(self) -> None:
        """Until a query gets an answer: the port is bound and the records are loaded."""
        query = dns.message.make_query("ready.harness.test", "A")
        end = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < end:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise DnsServerError(f"dnsmasq exited with {self.proc.returncode}")
            with contextlib.suppress(dns.exception.Timeout, OSError):
                dns.query.udp(query, HOST, port=self.port, timeout=0.2)
                return
        raise DnsServerError(f"no answer on {HOST}:{self.port} within {READY_TIMEOUT}s")

    def stop(self) -> None:
        atexit.unregister(self.stop)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> DnsServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _free_port() -> int:
    """A port free for both UDP and TCP (dnsmasq binds both)."""
    for _ in range(50):
        with socket.socket(type=socket.SOCK_DGRAM) as udp, socket.socket() as tcp:
            udp.bind((HOST, 0))
            port = int(udp.getsockname()[1])
            try:
                tcp.bind((HOST, port))
            except OSError:
                continue
            return port
    raise DnsServerError("no free port for dnsmasq")


def txt(name: str, *strings: str) -> str:
    """A --txt-record option: each string one character-string (≤255 bytes)."""
    return f"txt-record={name}," + ",".join(f'"{s}"' for s in strings)


def dkim_public_key(bits: int = 2048) -> str:
    """A fresh RSA public key as a DKIM p= value (base64 SubjectPublicKeyInfo)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits).public_key()
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


# ---------------------------------------------------------------- the fixture zones

GOOD, BAD = "good.test", "bad.test"
LISTED_ZONE, CLEAN_ZONE, REFUSING_ZONE = "listed.test", "clean.test", "refusing.test"
LISTED_REASON = "Listed by the test list: 127.0.0.2 sent spam"


def fixture_records() -> list[str]:
    """good.test: everything right. bad.test: +all, 11 nested includes, no MX, no DMARC, a
    revoked and a missing DKIM selector, one address without PTR and one whose PTR does not
    resolve back. DNSBLs: listed.test lists 127.0.0.2, clean.test lists nothing,
    refusing.test answers 127.255.255.254 (refused) to everything."""
    record = f"v=DKIM1; k=rsa; p={dkim_public_key()}"
    dkim_strings = [record[i : i + 250] for i in range(0, len(record), 250)]
    chain = [txt(f"c{n}.{BAD}", f"v=spf1 include:c{n + 1}.{BAD} -all") for n in range(1, 11)]
    return [
        # good.test; one SPF string split mid-word: the joined record must still parse.
        f"mx-host={GOOD},mail.{GOOD},10",
        f"host-record=mail.{GOOD},127.0.0.1,fd00::25",
        txt(GOOD, f"v=spf1 mx include:_spf.{GOOD} -all"),
        txt(GOOD, "google-site-verification=not-an-spf-record"),
        txt(f"_spf.{GOOD}", "v=spf1 ip4:127.0.0.1 ip6:fd00::/64 inc", f"lude:_spf2.{GOOD} ~all"),
        txt(f"_spf2.{GOOD}", f"v=spf1 a:mail.{GOOD} ?all"),
        txt(f"_dmarc.{GOOD}", f"v=DMARC1; p=reject; rua=mailto:dmarc@{GOOD}; adkim=s"),
        txt(f"s1._domainkey.{GOOD}", *dkim_strings),
        # bad.test
        txt(BAD, f"v=spf1 include:c1.{BAD} +all"),
        *chain,
        txt(f"c11.{BAD}", "v=spf1 ip4:192.0.2.0/24 -all"),
        txt(f"gone._domainkey.{BAD}", "v=DKIM1; k=rsa; p="),
        f"address=/mail.{BAD}/127.0.0.2",
        f"address=/mail.{BAD}/127.0.0.3",
        f"ptr-record=3.0.0.127.in-addr.arpa,elsewhere.{BAD}",
        # DNSBL zones
        f"address=/2.0.0.127.{LISTED_ZONE}/127.0.0.2",
        txt(f"2.0.0.127.{LISTED_ZONE}", LISTED_REASON),
        f"address=/{REFUSING_ZONE}/127.255.255.254",
    ]
