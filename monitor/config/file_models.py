"""The configuration as the TOML file says it: which keys each table may hold, and their checks.

The models are strict (no "587" → 587 coercion) and forbid unknown keys, so typos are
reported instead of silently ignored. Their validators raise `problem(...)` whose message is
already the line shown to the user. What the rest of the program reads is the resolved
configuration (schema.py); load.py turns one into the other.
"""

import importlib.util
import ipaddress
import re
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    SecretStr,
)
from pydantic_core import core_schema

from monitor.config.oauth_settings import check_auth
from monitor.config.problems import excerpt, problem
from monitor.core.durations import DurationRange, parse_duration
from monitor.core.models import Security


@dataclass(frozen=True)
class Within:
    """Annotation metadata making a float key a duration in `bounds`: every duration key is
    `Annotated[float, Within(...)]`, so none can be declared without a range (and
    tests/unit/test_config_limits.py checks that no float key lacks one)."""

    bounds: DurationRange

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> Any:
        return core_schema.no_info_before_validator_function(self._check, handler(source))

    def _check(self, value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise problem(f'must be a duration like "90s", "5m" or "1h" ({self.bounds})', value)
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise problem(f"{exc} ({self.bounds})", value) from None
        try:
            return self.bounds.check(seconds)
        except ValueError as exc:
            raise problem(str(exc), value) from None


_SECOND, _MINUTE, _HOUR, _DAY = 1.0, 60.0, 3600.0, 86400.0
# The ranges, per meaning. Intervals: "1ms" planned 860 canaries in 12 s and Dovecot began
# refusing logins; above a week a route watches nothing. 1 s is the floor for a stack on this
# machine (tests, the demo); a route to any other server needs REMOTE_INTERVAL (routes.py):
# one login every few seconds is what providers' abuse limits lock accounts for.
INTERVAL = DurationRange(_SECOND, 7 * _DAY)
REMOTE_INTERVAL = 10 * _SECOND
# How long a canary may take to arrive: a loopback stack needs seconds; after a day a canary
# is lost, not late (and a probe or `probe --nagios` must end).
DEADLINE = DurationRange(5 * _SECOND, _DAY)
POLL = DurationRange(_SECOND, _HOUR)  # the IMAP look-again when IDLE stays silent
# One network step (connect, TLS, a command): under 1 s fails on any real network; over
# 10 minutes hides a dead server for longer than any probe should wait.
NETWORK_TIMEOUT = DurationRange(_SECOND, 10 * _MINUTE)
DNS_TIMEOUT = DurationRange(0.1, _MINUTE)  # one lookup; resolvers answer in milliseconds
WEBHOOK_TIMEOUT = DurationRange(_SECOND, 2 * _MINUTE)  # alerts must not queue behind one hook
# SIGTERM: in-flight probes may finish for this long; systemd kills after TimeoutStopSec.
DRAIN = DurationRange(_SECOND, 10 * _MINUTE)
SLOW_AFTER = DurationRange(_SECOND, _DAY)  # a canary later than this is "slow"
REMIND = DurationRange(_MINUTE, 30 * _DAY, never=True)  # re-send a firing alert; 0: never
# Several instances on PostgreSQL: a silent instance loses its mailboxes after this. Renewed
# every third of it: under 3 s the rounds would be database round trips back to back; over an
# hour a dead instance's mailboxes and probes would wait longer than any deadline.
LEASE = DurationRange(3 * _SECOND, _HOUR)
# The arrival window kept while a canary is in flight: under 0.1 s the looks would outrun
# their ceiling (probe.lookout.MIN_SPACING); over a minute says nothing about a delivery.
LOOK_OUT_RESOLUTION = DurationRange(0.1, _MINUTE)
# How long after the hand-off that window is kept; 0: never (only the backing-off looks).
LOOK_OUT_FINE_FOR = DurationRange(_SECOND, 10 * _MINUTE, never=True)

Interval = Annotated[float, Within(INTERVAL)]
Deadline = Annotated[float, Within(DEADLINE)]
NetworkTimeout = Annotated[float, Within(NETWORK_TIMEOUT)]


def _security(value: object) -> Security:
    choices = ", ".join(s.value for s in Security)
    if not isinstance(value, str):
        raise problem(f"must be one of {choices}", value)
    try:
        return Security(value.lower())
    except ValueError:
        hint = ' (implicit TLS, as on ports 465 and 993, is "tls")' if value == "ssl" else ""
        raise problem(f"must be one of {choices}{hint}", value) from None


def _parallel(value: int) -> int:
    if not 1 <= value <= 10_000:
        raise problem("must be 1..10000", value)
    return value


def _port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise problem("must be 1..65535", value)
    return value


_NAME = re.compile(r"[\w.@+-]+")


def _name(value: str) -> str:
    # Names appear in CLI arguments and in default route names "a->b,c", so keep them plain.
    if not _NAME.fullmatch(value) or "->" in value:
        raise problem("must be letters, digits and . _ @ + - only", value)
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
        raise problem("must be an email address", value)
    return value


def database_backend(url: str) -> str | None:
    """`sqlite` of sqlite+aiosqlite:///x.db; None when it is no URL at all. Read here without
    SQLAlchemy, whose import alone would double the cost of every command that loads a config."""
    scheme, sep, _ = url.partition("://")
    backend = scheme.split("+")[0].lower()
    return backend if sep and backend.replace("_", "").isalnum() else None


def hide_database_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def _database(value: str) -> str:
    # The URL is never echoed: it may carry a database password.
    backend = database_backend(value)
    if backend is None:
        raise problem(
            "not a database URL (e.g. sqlite:///var/mailcanary.db or postgresql://user@host/db)"
        ) from None
    if backend not in _DRIVERS:
        # Only the scheme is shown: the rest of the URL may carry a password.
        raise problem(f"unsupported database {excerpt(backend)} (sqlite or postgresql)")
    driver, extra = _DRIVERS[backend]
    if extra and not importable(driver):
        raise problem(f"{backend} needs {driver}: pip install 'mailcanary[{extra}]'")
    return value


# The async driver of each database and the extra that installs it ("" when always there).
_DRIVERS = {"sqlite": ("aiosqlite", ""), "postgresql": ("asyncpg", "postgresql")}


def importable(module: str) -> bool:
    """Could `import module` work? Checked without importing it (asyncpg is heavy)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: blocked by a None in sys.modules
        return False


def _listen(value: str) -> str:
    """ "" (off) or host:port, IPv6 in brackets: "[::1]:9842"."""
    if value == "":
        return value
    host, colon, port = value.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise problem('must be "host:port" (e.g. "127.0.0.1:9842") or "" for off', value)
    return value


def _public_url(value: str) -> str:
    if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value):
        raise problem(f'must be an http(s) URL like "https://canary.example.org/", got "{value}"')
    return value.rstrip("/")


def _nameserver(value: object) -> tuple[str, int]:
    """ "127.0.0.1", "127.0.0.1:5353", "::1" or "[::1]:5353" → (address, port)."""
    example = '(e.g. "127.0.0.1", "127.0.0.1:5353" or "[::1]:53")'
    if not isinstance(value, str):
        raise problem(f"must be an IP address with an optional port {example}", value)
    host, port = value, "53"
    if value.startswith("["):
        host, _, port = value[1:].partition("]:")
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
    try:
        address = str(ipaddress.ip_address(host))
    except ValueError:
        # dnspython talks to addresses only; a name would need a resolver to find the resolver.
        raise problem(f"must be an IP address with an optional port {example}", value) from None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise problem("port must be 1..65535", value)
    return address, int(port)


_DNS_NAME = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9_-]{1,63}(?<!-))*")


def _dns_name(value: str) -> str:
    if not _DNS_NAME.fullmatch(value):
        raise problem('must be a DNS name like "zen.spamhaus.org" or "s1"', value)
    return value.lower()


SecurityChoice = Annotated[Security, BeforeValidator(_security)]
Port = Annotated[int, AfterValidator(_port)]
Name = Annotated[str, AfterValidator(_name)]
EnvName = Annotated[str, AfterValidator(_env_name)]
CredentialName = Annotated[str, AfterValidator(_credential_name)]
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
    interval: Interval = 300.0
    deadline: Deadline = 600.0
    poll_interval: Annotated[float, Within(POLL)] = 15.0
    cleanup: bool = True
    ca_file: str | None = None
    instance: Name = "default"
    smtp_timeout: NetworkTimeout = 60.0
    imap_timeout: NetworkTimeout = 60.0
    drain_timeout: Annotated[float, Within(DRAIN)] = 20.0
    listen: Annotated[str, AfterValidator(_listen)] = "127.0.0.1:9842"
    max_parallel_logins: Annotated[int, AfterValidator(_parallel)] = 16
    max_parallel_sends: Annotated[int, AfterValidator(_parallel)] = 50
    look_out: bool = True
    lease: Annotated[float, Within(LEASE)] = 30.0
    public_url: Annotated[str, AfterValidator(_public_url)] | None = None
    look_out_resolution: Annotated[float, Within(LOOK_OUT_RESOLUTION)] = 0.2
    look_out_fine_for: Annotated[float, Within(LOOK_OUT_FINE_FOR)] = 30.0


class EndpointFile(BaseModel):
    model_config = _FILE

    host: str | None = None
    port: Port | None = None
    security: SecurityChoice | None = None
    timeout: NetworkTimeout | None = None


class DnsFile(BaseModel):
    model_config = _FILE

    nameservers: list[Nameserver] = []
    timeout: Annotated[float, Within(DNS_TIMEOUT)] = 5.0
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
    interval: Interval | None = None
    # A real message instead of the plain canary (#16): an RFC 5322 file or a Jinja2 template.
    message: str | None = None
    message_template: str | None = None
    subject: str | None = None
