"""A server certificate as someone troubleshooting TLS wants to see it.

Trust (does the chain verify?) comes from a handshake done elsewhere; everything else is read
here from the DER bytes, and the host name is matched here too, so a certificate that is
trusted but names another host and one that names this host but is not trusted are told apart.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Certificate:
    subject: str  # RFC 4514, e.g. "CN=mx.example.com,O=Example"
    issuer: str
    names: tuple[str, ...]  # subjectAltName DNS names and IP addresses
    not_after: datetime
    days_left: int  # whole days until not_after, rounded toward zero; negative once expired
    expired: bool
    trusted: bool  # the chain verifies against the account's trust (host name aside)
    trust_error: str | None  # OpenSSL's reason when not trusted
    name_matches: bool  # the host we connected to is among the names


def host_matches(host: str, dns_names: Iterable[str], ip_addresses: Iterable[str]) -> bool:
    """RFC 6125: an IP literal against IP names; a name exactly or by a left-most "*" label."""
    try:
        wanted = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return any(ipaddress.ip_address(a) == wanted for a in ip_addresses)
    host = host.rstrip(".").lower()
    first, _, parent = host.partition(".")
    for name in (n.rstrip(".").lower() for n in dns_names):
        if name == host or (name.startswith("*.") and first and parent == name[2:]):
            return True
    return False


def read_certificate(der: bytes, host: str, trust_error: str | None, now: datetime) -> Certificate:
    # Imported here: the SMTP adapter that calls this is loaded by every probe, and only a
    # failed handshake or `diagnose` reads a certificate (issue #17: one-shot cost).
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    cert = x509.load_der_x509_certificate(der)
    try:
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = [str(n) for n in alt.get_values_for_type(x509.DNSName)]
        ips = [str(a) for a in alt.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:  # legacy: only then does the common name count
        dns = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        ips = []
    not_after = cert.not_valid_after_utc
    return Certificate(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        names=(*dns, *ips),
        not_after=not_after,
        days_left=int((not_after - now).total_seconds() / 86400),
        expired=not_after <= now,
        trusted=trust_error is None,
        trust_error=trust_error,
        name_matches=host_matches(host, dns, ips),
    )
