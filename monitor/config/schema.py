"""The configuration twice: as the TOML file says it (`*File`), and resolved (what everyone reads).

The file models are strict (no "587" → 587 coercion) and forbid unknown keys, so typos are
reported instead of silently ignored. Their validators raise `PydanticCustomError("config", …)`
whose message is already the line shown to the user. The resolved models carry no optional
"maybe from a preset" fields any more: presets, defaults, secrets and paths are filled in.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from monitor.config.alert_settings import AlertSettings
from monitor.config.oauth_settings import OAuthSettings, check_auth
from monitor.config.report_settings import ReportSettings
from monitor.core.durations import parse_duration
from monitor.core.models import Security

# ---------------------------------------------------------------- validators for the file


def problem(message: str) -> PydanticCustomError:
    """A validation error whose text is shown as it is (after the key path)."""
    return PydanticCustomError("config", "{reason}", {"reason": message})


def toml_type(value: object) -> str:
    """The TOML word for a parsed value's type, for "must be X, got Y" messages."""
    names = {bool: "boolean", int: "integer", float: "float", str: "string"}
    names |= {list: "array", dict: "table"}
    return names.get(type(value), type(value).__name__)


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


# ---------------------------------------------------------------- pydantic errors → lines

_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "list_type": "an array",
    "model_type": "a table",
    "dict_type": "a table",
    "model_attributes_type": "a table",
}
_M = TypeVar("_M", bound=BaseModel)


@dataclass
class Checked(Generic[_M]):
    """A file table after validation: the model (if any), problem lines, keys set aside."""

    model: _M | None
    problems: list[str] = field(default_factory=list)
    dropped: set[str] = field(default_factory=set)


def check_table(
    model: type[_M], raw: dict[str, Any], prefix: str, placeholders: dict[str, Any]
) -> Checked[_M]:
    """Validate `raw`; on errors also build the model without the bad keys (required ones
    replaced by `placeholders`) so the caller can still check what is left."""
    try:
        return Checked(model.model_validate(raw))
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    problems = [_error_line(model, prefix, error) for error in errors]
    dropped = {str(error["loc"][0]) for error in errors if error["loc"]}
    rest = {k: v for k, v in raw.items() if k not in dropped}
    rest |= {k: v for k, v in placeholders.items() if k in dropped}
    try:
        return Checked(model.model_validate(rest), problems, dropped)
    except ValidationError:
        return Checked(None, problems, dropped)


def toml_syntax_line(path: Path, text: str, message: str) -> str:
    """`FILE:LINE:COL: message` from a TOMLDecodeError's text (3.11 has no lineno/colno)."""
    found = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
    if found:
        return f"{path}:{found[1]}:{found[2]}: {message[: found.start()]}"
    end = re.search(r"\s*\(at end of document\)$", message)
    if end:
        lines = text.split("\n")
        return f"{path}:{len(lines)}:{len(lines[-1]) + 1}: {message[: end.start()]}"
    return f"{path}: {message}"


def key_path(prefix: str, loc: tuple[int | str, ...]) -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            key = part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else f'"{part}"'
            out = f"{out}.{key}" if out else key
    return out


def unknown_key_line(where: str, key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f"{where}: unknown key" + (f'; did you mean "{close[0]}"?' if close else "")


def _keys_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The keys allowed in the table at `loc` below `model` (for "did you mean")."""
    for part in loc:
        info = {f.alias or n: f for n, f in model.model_fields.items()}.get(str(part))
        if info is None:
            return []
        options = (info.annotation, *typing.get_args(info.annotation))
        nested = [t for t in options if isinstance(t, type) and issubclass(t, BaseModel)]
        if not nested:
            return []
        model = nested[0]
    return [f.alias or n for n, f in model.model_fields.items()]


def _error_line(model: type[BaseModel], prefix: str, error: Any) -> str:
    loc, kind = tuple(error["loc"]), error["type"]
    where = key_path(prefix, loc)
    if kind == "config":
        return f"{where}: {error['ctx']['reason']}"
    if kind == "extra_forbidden":
        return unknown_key_line(where, str(loc[-1]), _keys_at(model, loc[:-1]))
    if kind == "missing":
        return f"{where}: required key is missing"
    if kind in _EXPECTED:
        return f"{where}: must be {_EXPECTED[kind]}, got {toml_type(error['input'])}"
    if kind == "too_short":
        return f"{where}: must not be empty"
    return f"{where}: {error['msg']}"  # pydantic's own wording; it does not quote the input


# ---------------------------------------------------------------- resolved (what others read)

_RESOLVED = ConfigDict(frozen=True, extra="forbid")


class Endpoint(BaseModel):
    model_config = _RESOLVED

    host: str
    port: int
    security: Security
    timeout: float = 60.0


class MonitorSettings(BaseModel):
    model_config = _RESOLVED

    # Out of repr: a PostgreSQL URL may carry a password (redacted_dict shows it masked).
    database: str = Field(default="sqlite:///var/mailcanary.db", repr=False)
    state_dir: Path = Path("var")
    interval: float = 300.0
    deadline: float = 600.0
    poll_interval: float = 15.0
    cleanup: bool = True
    ca_file: Path | None = None
    instance: str = "default"
    smtp_timeout: float = 60.0
    imap_timeout: float = 60.0
    drain_timeout: float = 20.0  # SIGTERM: how long in-flight probes may finish
    listen: str = "127.0.0.1:9842"  # /metrics and /healthz; "" turns the HTTP server off


class DnsSettings(BaseModel):
    model_config = _RESOLVED

    nameservers: list[tuple[str, int]] = []  # empty: the system resolver (/etc/resolv.conf)
    timeout: float = 5.0
    dnsbl_zones: list[str] = list(DEFAULT_DNSBL_ZONES)


class Account(BaseModel):
    model_config = _RESOLVED

    name: str
    email: str
    provider: str | None = None
    username: str
    password: SecretStr | None = None
    # Where the password came from ("env ALICE_PASSWORD", "file /…", "credential x", "inline"):
    # safe to show, and what `redacted_dict` prints instead of the secret.
    password_source: str | None = None
    auth: str = "password"  # password | xoauth2
    oauth: OAuthSettings | None = None  # set when auth = "xoauth2"
    smtp: Endpoint | None = None
    imap: Endpoint | None = None
    spam_folder: str | None = None
    spam_folder_hint: str | None = None
    ca_files: tuple[Path, ...] = ()
    dkim_selectors: list[str] = []  # `mailcanary dns` checks <selector>._domainkey.<domain>

    @model_validator(mode="before")
    @classmethod
    def _username_defaults_to_email(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("username") is None and "email" in data:
            data = {**data, "username": data["email"]}
        return data


class Route(BaseModel):
    model_config = _RESOLVED

    name: str
    sender: str
    recipients: list[str]
    interval: float = 300.0


class Config(BaseModel):
    model_config = _RESOLVED

    path: Path
    monitor: MonitorSettings = MonitorSettings()
    dns: DnsSettings = DnsSettings()
    alerts: AlertSettings = AlertSettings()
    reports: ReportSettings = ReportSettings()
    accounts: list[Account] = []
    routes: list[Route] = []
    warnings: list[str] = []

    def account(self, name: str) -> Account:
        for account in self.accounts:
            if account.name == name:
                return account
        raise KeyError(f"no account named {name!r}")

    def route(self, name: str) -> Route:
        for route in self.routes:
            if route.name == name:
                return route
        raise KeyError(f"no route named {name!r}")
