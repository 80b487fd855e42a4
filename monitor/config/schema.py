"""The resolved configuration: what everyone else reads.

These models carry no optional "maybe from a preset" fields any more: presets, defaults,
secrets and paths are filled in. What the TOML file itself may say is in file_models.py, how
its problems are worded in problems.py, and load.py turns the one into the other.
"""

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from monitor.config import file_models, problems
from monitor.config.alert_settings import AlertSettings
from monitor.config.file_models import DEFAULT_DNSBL_ZONES
from monitor.config.oauth_settings import OAuthSettings
from monitor.config.report_settings import ReportSettings
from monitor.config.web_settings import WebSettings
from monitor.core.models import Security

# monitor.config.oauth_file still imports these file-side helpers from here, where they lived
# before file_models.py and problems.py were split off.
_FILE = file_models._FILE
_credential_name = file_models._credential_name
_env_name = file_models._env_name
check_table = problems.check_table
problem = problems.problem
toml_type = problems.toml_type

_RESOLVED = ConfigDict(frozen=True, extra="forbid")


class Endpoint(BaseModel):
    model_config = _RESOLVED

    host: str
    port: int
    security: Security
    timeout: float = 60.0

    @property
    def on_loopback(self) -> bool:
        """Is the server on this machine (a test stack, the demo)?"""
        host = self.host
        return host == "localhost" or host.startswith("127.") or host == "::1"


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
    max_parallel_logins: int = 16  # IMAP connects + logins at once (startup, reconnects)
    max_parallel_sends: int = 50  # SMTP conversations at once
    look_out: bool = True  # look for a canary on its way, not only wait for the IDLE push
    lease: float = 30.0  # PostgreSQL: a silent instance's mailboxes and probes go after this
    public_url: str | None = None  # where people reach the status page; alerts and reports link it
    look_out_resolution: float = 0.2  # widest arrival window while the look-out is fine
    look_out_fine_for: float = 30.0  # seconds after the hand-off it is fine; 0: never


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
    message: Path | None = None  # the user's own message file (absolute), see monitor.content
    message_template: Path | None = None
    subject: str | None = None


class Config(BaseModel):
    model_config = _RESOLVED

    path: Path
    monitor: MonitorSettings = MonitorSettings()
    dns: DnsSettings = DnsSettings()
    alerts: AlertSettings = AlertSettings()
    reports: ReportSettings = ReportSettings()
    web: WebSettings = WebSettings()
    accounts: list[Account] = []
    routes: list[Route] = []
    warnings: list[str] = []

    def require_routes(self) -> None:
        """For the commands that send (probe, run): ConfigError when there is nothing to send,
        so a check that checks nothing cannot pass. check-config only warns about it."""
        if not self.routes:
            raise problems.ConfigError(
                [f"routes: none in {self.path}; probe and run need at least one [[routes]] table"]
            )

    def account(self, name: str) -> Account:
        found = self._named("accounts", self.accounts).get(name)
        if found is None:
            raise KeyError(f"no account named {name!r}")
        return found

    def route(self, name: str) -> Route:
        found = self._named("routes", self.routes).get(name)
        if found is None:
            raise KeyError(f"no route named {name!r}")
        return found

    def _named(self, key: str, items: list[Any]) -> dict[str, Any]:
        # Looked up for every probe: scanning a thousand accounts cost 1 % of the daemon's
        # CPU. The index sits beside the fields (no field, so equality and dumps ignore it)
        # and is rebuilt when the list is another one (model_copy(update=...) copies it).
        index = self.__dict__.get(f"_index_{key}")
        if index is None or index[0] is not items:
            index = (items, {item.name: item for item in items})
            self.__dict__[f"_index_{key}"] = index
        return index[1]
