"""DNS lookups for the posture check: dnspython's async resolver, plain data out.

Configured nameservers (`host`, `port`) replace the system's; with none, /etc/resolv.conf
is used. "No such name" and "no records of that type" both come back as an empty list: the
policy treats them alike. Anything else (timeout, SERVFAIL, REFUSED) raises `DnsError`.
"""

from __future__ import annotations

from collections.abc import Sequence

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.resolver

# Kinds that say nothing about the name and everything about the resolver.
RESOLVER_DOWN = frozenset({"timeout", "unreachable", "no_resolver"})


class DnsError(Exception):
    """A lookup that got no usable answer; `kind` is timeout, unreachable, servfail,
    refused, no_resolver or bad_answer."""

    def __init__(self, name: str, rdtype: str, kind: str, reason: str) -> None:
        self.name, self.rdtype, self.kind, self.reason = name, rdtype, kind, reason
        super().__init__(f"{rdtype} {name}: {reason}")

    @property
    def resolver_down(self) -> bool:
        return self.kind in RESOLVER_DOWN


class Dns:
    def __init__(self, nameservers: Sequence[tuple[str, int]] = (), timeout: float = 5.0):
        self.nameservers = list(nameservers)
        self.timeout = timeout
        self._resolver: dns.asyncresolver.Resolver | None = None

    def describe(self) -> str:
        """The resolver in use, for messages: "127.0.0.1:5353" or "system resolver"."""
        if not self.nameservers:
            return "system resolver (/etc/resolv.conf)"
        return ", ".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.nameservers)

    def _get(self, name: str, rdtype: str) -> dns.asyncresolver.Resolver:
        if self._resolver is None:
            try:
                resolver = dns.asyncresolver.Resolver(configure=not self.nameservers)
            except dns.exception.DNSException as exc:  # no or unreadable /etc/resolv.conf
                raise DnsError(name, rdtype, "no_resolver", str(exc)) from None
            if self.nameservers:
                resolver.nameservers = [
                    dns.nameserver.Do53Nameserver(host, port) for host, port in self.nameservers
                ]
            # One budget per lookup, retries included: a dead resolver costs `timeout`, once.
            resolver.timeout = resolver.lifetime = self.timeout
            self._resolver = resolver
        return self._resolver

    async def _query(self, name: str, rdtype: str) -> list[dns.rdata.Rdata]:
        resolver = self._get(name, rdtype)
        try:
            # search=False: resolv.conf's search domains must never turn "x" into "x.corp".
            answer = await resolver.resolve(name, rdtype, search=False, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return []
        except dns.resolver.LifetimeTimeout:
            raise DnsError(name, rdtype, "timeout", f"no answer within {self.timeout:g}s") from None
        except dns.resolver.NoNameservers as exc:
            raise _no_nameservers(name, rdtype, exc) from None
        except dns.exception.DNSException as exc:
            raise DnsError(name, rdtype, "bad_answer", str(exc) or type(exc).__name__) from None
        return list(answer.rrset or [])

    async def txt(self, name: str) -> list[str]:
        """Each TXT record as one string: its character-strings concatenated (RFC 7208 §3.3)."""
        records = await self._query(name, "TXT")
        return [b"".join(r.strings).decode("utf-8", "replace") for r in records]  # type: ignore[attr-defined]

    async def mx(self, name: str) -> list[tuple[int, str]]:
        records = await self._query(name, "MX")
        return [(r.preference, _name(r.exchange)) for r in records]  # type: ignore[attr-defined]

    async def a(self, name: str) -> list[str]:
        return [r.address for r in await self._query(name, "A")]  # type: ignore[attr-defined]

    async def aaaa(self, name: str) -> list[str]:
        return [r.address for r in await self._query(name, "AAAA")]  # type: ignore[attr-defined]

    async def addresses(self, name: str) -> list[str]:
        return [*await self.a(name), *await self.aaaa(name)]

    async def ptr(self, reverse_name: str) -> list[str]:
        return [_name(r.target) for r in await self._query(reverse_name, "PTR")]  # type: ignore[attr-defined]


def _name(name: dns.name.Name) -> str:
    return name.to_text(omit_final_dot=True).lower()


def _no_nameservers(name: str, rdtype: str, exc: dns.resolver.NoNameservers) -> DnsError:
    """Every server failed: by answering SERVFAIL/REFUSED, or by not answering at all."""
    errors = exc.kwargs.get("errors") or []
    answered = [str(e[3]) for e in errors if isinstance(e[3], str)]
    if answered:
        kind = "refused" if "REFUSED" in answered else "servfail"
        return DnsError(name, rdtype, kind, f"the resolver answered {answered[0]}")
    reasons = {f"{e[0]}: {e[3]}" for e in errors} or {"no nameservers"}
    return DnsError(name, rdtype, "unreachable", "; ".join(sorted(reasons)))
