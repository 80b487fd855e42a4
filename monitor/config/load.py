"""Read the TOML file, check everything, and resolve presets, defaults, paths and secrets.

Every problem is collected and reported at once (`ConfigError.problems`, one line each, led
by the key path) so a user fixes the file in one go. Tables are validated one by one, so a
broken account does not hide the problems of the next one or of the routes naming it.
Secret values never enter a message: only key names, variable names and file paths do.
The [monitor], [dns] and [[accounts]] tables are resolved here; passwords.py finds account
passwords, and routes.py, alert_file.py and report_file.py resolve what names the accounts.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monitor.config.alert_file import resolve_alerts
from monitor.config.file_models import (
    AccountFile,
    DnsFile,
    EndpointFile,
    MonitorFile,
    hide_database_password,
)
from monitor.config.files import (
    CONFIG_LIMIT,
    UnreadableFile,
    ca_bundle_problem,
    read_small_file,
    state_dir_problem,
)
from monitor.config.oauth_file import resolve_oauth
from monitor.config.passwords import PASSWORD_KEYS, resolve_password
from monitor.config.presets import PRESETS, Preset, PresetEndpoint, fill_endpoint
from monitor.config.problems import (
    ConfigError,
    check_table,
    excerpt,
    key_path,
    table_label,
    toml_syntax_line,
    toml_type,
    unknown_key_line,
)
from monitor.config.report_file import resolve_reports
from monitor.config.routes import resolve_routes
from monitor.config.schema import Account, Config, DnsSettings, Endpoint, MonitorSettings, Route
from monitor.config.web_file import resolve_web
from monitor.core.models import Security

__all__ = ["Account", "Config", "ConfigError", "Endpoint", "Route", "load_config", "redacted_dict"]


def load_config(path: Path | str, env: Mapping[str, str] | None = None) -> Config:
    """The resolved configuration in `path`; `env` (default os.environ) answers every lookup."""
    path = Path(path)
    return _Resolver(path, os.environ if env is None else env).resolve(_read_toml(path))


def redacted_dict(cfg: Config) -> dict[str, Any]:
    """The resolved configuration as plain data for display: no password, no database secret,
    no webhook URL."""
    data = cfg.model_dump(mode="json")
    data["monitor"]["database"] = hide_database_password(cfg.monitor.database)
    for account, shown in zip(cfg.accounts, data["accounts"], strict=True):
        shown["password"] = None if account.password is None else "***"
    for shown in data["alerts"]["webhook"]:
        shown["url"] = "***"  # Slack-style URLs are their own secret; url_source says where
    return data


# ---------------------------------------------------------------- reading and error lines


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = read_small_file(path, CONFIG_LIMIT).decode("utf-8")
    except UnreadableFile as exc:
        raise ConfigError([f"{path}: cannot read: {exc.reason}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text (byte {exc.start})"]) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([toml_syntax_line(path, text, str(exc))]) from None


# ---------------------------------------------------------------- resolution


class _Resolver:
    def __init__(self, path: Path, env: Mapping[str, str]) -> None:
        self.path = path
        self.base = Path(os.path.abspath(path)).parent
        self.env = env
        self.problems: list[str] = []
        self.warnings: list[str] = []
        self.ca_checked: dict[Path, str | None] = {}  # accounts often share one CA file

    def resolve(self, doc: dict[str, Any]) -> Config:
        sections = ["monitor", "dns", "accounts", "routes", "alerts", "reports", "web"]
        for key in doc.keys() - set(sections):
            self.problems.append(unknown_key_line(key_path("", (key,)), key, sections))
        monitor = self._monitor(doc.get("monitor", {}))
        dns = self._dns(doc.get("dns", {}))
        accounts = self._accounts(self._tables(doc, "accounts"), monitor)
        routes, problems = resolve_routes(
            self._tables(doc, "routes"), accounts, monitor.interval, base=self.base
        )
        self.problems += problems
        alerts, problems, warnings = resolve_alerts(
            doc.get("alerts", {}), accounts, self.env, self._path
        )
        self.problems += problems
        self.warnings += warnings
        reports, problems = resolve_reports(doc.get("reports", {}), accounts)
        self.problems += problems
        web, problems = resolve_web(doc.get("web", {}), monitor.listen, self.env, self._path)
        self.problems += problems
        if self.problems:
            raise ConfigError(self.problems)
        if not routes:
            self.warnings.append("routes: none configured; nothing will be sent")
        return Config(
            path=Path(os.path.abspath(self.path)),
            monitor=monitor,
            dns=dns,
            alerts=alerts,
            reports=reports,
            web=web,
            accounts=[a for a in accounts.values() if a is not None],
            routes=routes,
            warnings=self.warnings,
        )

    def _tables(self, doc: dict[str, Any], key: str) -> list[tuple[int, dict[str, Any]]]:
        value = doc.get(key, [])
        if not isinstance(value, list):
            self.problems.append(
                f"{key}: must be an array of tables ([[{key}]]), got {toml_type(value)}"
            )
            return []
        tables = []
        for index, item in enumerate(value):
            if isinstance(item, dict):
                tables.append((index, item))
            else:
                self.problems.append(f"{key}[{index}]: must be a table, got {toml_type(item)}")
        return tables

    def _path(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base / path

    def _ca_file(self, value: str | None, where: str) -> Path | None:
        if value is None:
            return None
        path = self._path(value)
        if path not in self.ca_checked:
            self.ca_checked[path] = ca_bundle_problem(path)
        reason = self.ca_checked[path]
        if reason:
            self.problems.append(f"{where}: {reason}")
        return path

    def _monitor(self, raw: object) -> MonitorSettings:
        if not isinstance(raw, dict):
            self.problems.append(f"monitor: must be a table ([monitor]), got {toml_type(raw)}")
            raw = {}
        # Monitor keys are independent: the good ones are still used to check the rest.
        checked = check_table(MonitorFile, raw, "monitor", {})
        self.problems += checked.problems
        found = checked.model or MonitorFile()
        if found.state_dir is not None:
            state_dir = self._path(found.state_dir)
        elif self.env.get("STATE_DIRECTORY"):
            # systemd joins several StateDirectory= entries with ":"; ours is the first.
            state_dir = Path(self.env["STATE_DIRECTORY"].split(":")[0])
        else:
            state_dir = Path("var")
        reason = state_dir_problem(state_dir)
        if reason:
            origin = "" if found.state_dir is not None else " (the default; set it to choose)"
            self.problems.append(f"monitor.state_dir{origin}: {reason}")
        return MonitorSettings(
            database=found.database or f"sqlite:///{state_dir}/mailcanary.db",
            state_dir=state_dir,
            interval=found.interval,
            deadline=found.deadline,
            poll_interval=found.poll_interval,
            cleanup=found.cleanup,
            ca_file=self._ca_file(found.ca_file, "monitor.ca_file"),
            instance=found.instance,
            smtp_timeout=found.smtp_timeout,
            imap_timeout=found.imap_timeout,
            drain_timeout=found.drain_timeout,
            listen=found.listen,
            max_parallel_logins=found.max_parallel_logins,
            max_parallel_sends=found.max_parallel_sends,
            look_out=found.look_out,
            lease=found.lease,
            public_url=found.public_url,
            look_out_resolution=found.look_out_resolution,
            look_out_fine_for=found.look_out_fine_for,
        )

    def _dns(self, raw: object) -> DnsSettings:
        if not isinstance(raw, dict):
            self.problems.append(f"dns: must be a table ([dns]), got {toml_type(raw)}")
            raw = {}
        checked = check_table(DnsFile, raw, "dns", {})
        self.problems += checked.problems
        found = checked.model or DnsFile()
        return DnsSettings(
            nameservers=found.nameservers, timeout=found.timeout, dnsbl_zones=found.dnsbl_zones
        )

    def _accounts(
        self, tables: list[tuple[int, dict[str, Any]]], monitor: MonitorSettings
    ) -> dict[str, Account | None]:
        """Accounts by name; None for a named account that has problems (already reported)."""
        accounts: dict[str, Account | None] = {}
        first_seen: dict[str, str] = {}
        for index, raw in tables:
            name = raw.get("name")
            named = isinstance(name, str) and bool(name)
            label = table_label("accounts", index, name)
            if named and name in first_seen:
                self.problems.append(
                    f"{label}.name: duplicate account name {excerpt(name)} "
                    f"(also {first_seen[name]})"
                )
            checked = check_table(AccountFile, raw, label, {"name": "_", "email": "_@_"})
            self.problems += checked.problems
            account = None
            if checked.model is not None:
                account = self._account(checked.model, label, monitor, checked.dropped)
            if named and name not in first_seen:
                first_seen[name] = f"accounts[{index}]"
                accounts[name] = account
        return accounts

    def _account(
        self, found: AccountFile, label: str, monitor: MonitorSettings, dropped: set[str]
    ) -> Account | None:
        """The account as far as it resolves; None when its endpoints are unknown. Keys in
        `dropped` were already reported as broken, so checks that would echo them are skipped.
        An account with other problems is still returned so routes can be checked against
        it; the caller never builds a Config once any problem is recorded."""
        before = len(self.problems)
        preset: Preset | None = None
        if found.provider is not None:
            preset = PRESETS.get(found.provider)
            if preset is None:
                known = ", ".join(sorted(PRESETS))
                self.problems.append(
                    f"{label}.provider: unknown provider {excerpt(found.provider)}; known: {known}"
                )
        smtp = self._endpoint(
            "smtp", found.smtp, preset.smtp if preset else None, label, monitor.smtp_timeout
        )
        imap = self._endpoint(
            "imap", found.imap, preset.imap if preset else None, label, monitor.imap_timeout
        )
        shape_known = len(self.problems) == before and not dropped & {"smtp", "imap", "provider"}
        wanted = found.smtp or found.imap or found.provider or dropped & {"smtp", "imap"}
        if not wanted:
            self.problems.append(f"{label}: needs smtp, imap or a provider")
        xoauth2 = found.auth == "xoauth2"  # a bearer token replaces the password
        needed = bool(wanted) and not xoauth2 and not dropped & {*PASSWORD_KEYS, "auth"}
        password = resolve_password(found, label, self.env, self._path, needed=needed)
        self.problems += password.problems
        self.warnings += password.warnings
        oauth, problems = (None, [])
        if xoauth2:
            oauth, problems = resolve_oauth(found.oauth, label, self.env, self._path)
        elif found.oauth is not None:
            problems = [f'{label}.oauth: only used with auth = "xoauth2"']
        self.problems += problems
        own_ca = self._ca_file(found.ca_file, f"{label}.ca_file")
        if not shape_known:
            return None
        return Account(
            name=found.name,
            email=found.email,
            provider=found.provider,
            username=found.username or (preset and preset.username) or found.email,
            password=password.secret,
            password_source=password.source,
            auth=found.auth,
            oauth=oauth,
            smtp=smtp,
            imap=imap,
            spam_folder=found.spam_folder,
            spam_folder_hint=preset.spam_folder_hint if preset else None,
            ca_files=tuple(p for p in (monitor.ca_file, own_ca) if p is not None),
            dkim_selectors=found.dkim_selectors,
        )

    def _endpoint(
        self,
        kind: str,
        given: EndpointFile | None,
        preset: PresetEndpoint | None,
        label: str,
        timeout: float,
    ) -> Endpoint | None:
        """Explicit keys win one by one; a changed port or security re-derives the other."""
        if given is None:
            if preset is None:
                return None
            given = EndpointFile()
        where = f"{label}.{kind}"
        host, port, security = fill_endpoint(kind, given.host, given.port, given.security, preset)
        if security is None:
            self.problems.append(f"{where}.security: required (starttls, tls or none)")
        if not host:
            missing = "must not be empty" if given.host == "" else "required key is missing"
            self.problems.append(f"{where}.host: {missing}")
        if host is None or port is None or security is None:
            return None
        endpoint = Endpoint(
            host=host, port=port, security=security, timeout=given.timeout or timeout
        )
        if security is Security.NONE and not endpoint.on_loopback:
            self.warnings.append(
                f'{where}.security: "none" sends the password to {host} unencrypted'
            )
        return endpoint
