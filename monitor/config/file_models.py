"""The configuration as the TOML file says it: which keys each table may hold, and their checks.

The models are strict (no "587" → 587 coercion) and forbid unknown keys, so typos are
reported instead of silently ignored. Their validators raise `problem(...)` whose message is
already the line shown to the user. What the rest of the program reads is the resolved
configuration (schema.py); load.py turns one into the other.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, SecretStr
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from monitor.config.oauth_settings import check_auth
from monitor.config.problems import problem, toml_type
from monitor.core.durations import parse_duration
from monitor.core.models import Security


def _duration(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise problem(f'must be a duration like "90s", "5m" or "1h", got {toml_type(value)}')
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise problem(str(exc)) from None
    if seconds <= 0:
        raise problem(f"must be longer than zero, got {value!r}")
    return seconds


def _security(value: object) -> Security:
    choices = ", ".join(s.value for s in Security)
    if not isinstance(value, str):
        raise problem(f"must be one of {choices}, got {toml_type(value)}")
    try:
        return Security(value.lower())
    except ValueError:
        hint = ' (implicit TLS, as on ports 465 and 993, is "tls")' if value == "ssl" else ""
        raise problem(f'must be one of {choices}, got "{value}"{hint}') from None


def _parallel(value: int) -> int:
    if not 1 <= value <= 10_000:
        raise problem(f"must be 1..10000, got {value}")
    return value


def _port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise problem(f"must be 1..65535, got {value}")
    return value


_NAME = re.compile(r"[\w.@+-]+")


def _name(value: str) -> str:
    # Names appear in CLI arguments and in default route names "a->b,c", so keep them plain.
    if not _NAME.fullmatch(value) or "->" in value:
        raise problem(f'must be letters, digits and . _ @ + - only, got "{value}"')
    return value


def _env_name(value: str) -> str:
    # Never echo the value: people paste the password itself here by mistake.
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        raise problem("must be the name of an environment variable (letters, digits, _)")
    return value


def _credential_name(value: str) -> str:
    if not value or "/" in value or value in (".", ".."):
        raise problem("must be a credential name (as in LoadCredential=), not a path")
    return value


def _email(value: str) -> str:
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain or " " in value:
        raise problem(f'must be an email address, got "{value}"')
    return value


def _database(value: str) -> str:
    # The URL is never echoed: it may carry a database password.
    try:
        backend = make_url(value).get_backend_name()
    except (ArgumentError, ValueError):
        raise problem(
            "not a database URL (e.g. sqlite:///var/mailcanary.db or postgresql://user@host/db)"
        ) from None
    if backend not in ("sqlite", "postgresql"):
        raise problem(f'unsupported database "{backend}" (sqlite or postgresql)')
    return value


def _listen(value: str) -> str:
    """ "" (off) or host:port, IPv6 in brackets: "[::1]:9842"."""
    if value == "":
        return value
    host, colon, port = value.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise problem(f'must be "host:port" (e.g. "127.0.0.1:9842") or "" for off, got "{value}"')
    return value


def _nameserver(value: object) -> tuple[str, int]:
    """ "127.0.0.1", "127.0.0.1:5353", "::1" or "[::1]:5353" → (address, port)."""
    example = '(e.g. "127.0.0.1", "127.0.0.1:5353" or "[::1]:53")'
    if not isinstance(value, str):
        raise problem(
            f"must be an IP address with an optional port {example}, got {toml_type(value)}"
        )
    host, port = value, "53"
    if value.startswith("["):
        host, _, port = value[1:].partition("]:")
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
    try:
        address = str(ipaddress.ip_address(host))
    except ValueError:
        # dnspython talks to addresses only; a name would need a resolver to find the resolver.
        raise problem(
            f'must be an IP address with an optional port {example}, got "{value}"'
        ) from None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise problem(f'port must be 1..65535, got "{value}"')
    return address, int(port)


_DNS_NAME = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9_-]{1,63}(?<!-))*")


def _dns_name(value: str) -> str:
    if not _DNS_NAME.fullmatch(value):
        raise problem(f'must be a DNS name like "zen.spamhaus.org" or "s1", got "{value}"')
    return value.lower()


def _lease(value: float) -> float:
    # Renewed every third of it: below a second the database round trips would eat it.
    if value < 1:
        raise problem(f'must be at least "1s", got {value:g}s')
    return value


Duration = Annotated[float, BeforeValidator(_duration)]
SecurityChoice = Annotated[Security, BeforeValidator(_security)]
Port = Annotated[int, AfterValidator(_port)]
Name = Annotated[str, AfterValidator(_name)]
DnsName = Annotated[str, AfterValidator(_dns_name)]
Nameserver = Annotated[tuple[str, int], BeforeValidator(_nameserver)]

# Public DNSBLs answer 127.255.255.x ("refused") to queries arriving via public resolvers
# (8.8.8.8, 1.1.1.1…): they need the machine's own recursive resolver.
DEFAULT_DNSBL_ZONES = ("zen.spamhaus.org", "bl.spamcop.net", "b.barracudacentral.org")

_FILE = ConfigDict(extra="forbid", strict=True, frozen=True)


class MonitorFile(BaseModel):
    model_config = _FILE

    database: Annotated[str, AfterValidator(_database)] | None = None
    state_dir: str | None = None
    interval: Duration = 300.0
    deadline: Duration = 600.0
    poll_interval: Duration = 15.0
    cleanup: bool = True
    ca_file: str | None = None
    instance: Name = "default"
    smtp_timeout: Duration = 60.0
    imap_timeout: Duration = 60.0
    drain_timeout: Duration = 20.0
    listen: Annotated[str, AfterValidator(_listen)] = "127.0.0.1:9842"
    max_parallel_logins: Annotated[int, AfterValidator(_parallel)] = 16
    max_parallel_sends: Annotated[int, AfterValidator(_parallel)] = 50
    look_out: bool = True
    lease: Annotated[float, BeforeValidator(_duration), AfterValidator(_lease)] = 30.0


class EndpointFile(BaseModel):
    model_config = _FILE

    host: str | None = None
    port: Port | None = None
    security: SecurityChoice | None = None
    timeout: Duration | None = None


class DnsFile(BaseModel):
    model_config = _FILE

    nameservers: list[Nameserver] = []
    timeout: Duration = 5.0
    dnsbl_zones: list[DnsName] = list(DEFAULT_DNSBL_ZONES)


class AccountFile(BaseModel):
    model_config = _FILE

    name: Name
    email: Annotated[str, AfterValidator(_email)]
    provider: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    password_env: Annotated[str, AfterValidator(_env_name)] | None = None
    password_file: str | None = None
    password_credential: Annotated[str, AfterValidator(_credential_name)] | None = None
    auth: Annotated[str, AfterValidator(check_auth)] = "password"
    oauth: dict[str, Any] | None = None  # checked by monitor.config.oauth_file
    smtp: EndpointFile | None = None
    imap: EndpointFile | None = None
    spam_folder: str | None = None
    ca_file: str | None = None
    dkim_selectors: list[DnsName] = []


class RouteFile(BaseModel):
    model_config = _FILE

    name: Name | None = None
    sender: str = Field(alias="from")
    recipients: list[str] = Field(alias="to", min_length=1)
    interval: Duration | None = None
