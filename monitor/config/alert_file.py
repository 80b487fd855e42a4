"""The [alerts] table as written in the file, and its resolution against the accounts.

Problems are lines led by their key path, like every other config problem:
`alerts.email[0].account: unknown account "x"`. The webhook URL is never echoed (Slack-style
URLs are secrets) and neither is a secret variable's value. Like a password, a webhook's URL
and its signing secret may come from the environment, a file or a systemd credential
(passwords.py's SecretReader reads them).
"""

import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, Field, SecretStr
from pydantic_core import PydanticCustomError

from monitor.alerts.kinds import AlertKind
from monitor.config.alert_settings import FORMATS, AlertSettings, EmailChannel, WebhookChannel
from monitor.config.file_models import (
    _FILE,
    REMIND,
    SLOW_AFTER,
    WEBHOOK_TIMEOUT,
    CredentialName,
    EnvName,
    Name,
    Within,
    _email,
)
from monitor.config.passwords import SecretReader, secret_keys
from monitor.config.problems import check_table, excerpt, problem, toml_type
from monitor.config.schema import Account


def _count(value: int) -> int:
    if value < 1:
        raise problem("must be 1 or more", value)
    return value


def _kind(value: str) -> str:
    known = [k.value for k in AlertKind]
    if value not in known:
        raise problem(f"must be one of {', '.join(known)}", value)
    return value


def _format(value: str) -> str:
    if value not in FORMATS:
        raise problem(f"must be one of {', '.join(FORMATS)}", value)
    return value


def _url(value: str) -> str:
    # urlsplit drops some whitespace silently; a URL read from a file may still carry it.
    if any(c.isspace() or not c.isprintable() for c in value):
        raise problem("must be a URL without spaces or control characters")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise problem("must be an http:// or https:// URL")
    return value


# A path or query part this long and made of letters and digits mixed is a token, not a word:
# Slack's "/services/T…/B…/<24 chars>", Discord's "/api/webhooks/<id>/<68 chars>", Teams' GUIDs.
_TOKEN_PART = re.compile(r"(?=[A-Za-z0-9_-]*[0-9])(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{16,}")


def carries_token(url: str) -> bool:
    """Whether `url` looks like it holds its own secret (a password, or a token in its path or
    query), so that it should not sit in the config file."""
    parts = urlsplit(url)
    if parts.password:
        return True
    return any(
        _TOKEN_PART.fullmatch(piece)
        for piece in re.split(r"[/?&=@.+]", parts.path + "?" + parts.query)
    )


Count = Annotated[int, AfterValidator(_count)]


class AlertEmailFile(BaseModel):
    model_config = _FILE

    name: Name | None = None
    account: str
    to: list[Annotated[str, AfterValidator(_email)]] = Field(min_length=1)


class AlertWebhookFile(BaseModel):
    model_config = _FILE

    name: Name | None = None
    # Exactly one of url, url_env, url_file, url_credential (checked in _webhook).
    url: Annotated[str, AfterValidator(_url)] | None = None
    url_env: EnvName | None = None
    url_file: str | None = None
    url_credential: CredentialName | None = None
    format: Annotated[str, AfterValidator(_format)] = "json"
    secret_env: EnvName | None = None
    secret_file: str | None = None
    secret_credential: CredentialName | None = None
    timeout: Annotated[float, Within(WEBHOOK_TIMEOUT)] = 10.0


class AlertsFile(BaseModel):
    model_config = _FILE

    after_failures: Count = 2
    resolve_after: Count = 1
    remind_every: Annotated[float, Within(REMIND)] = 6 * 3600.0
    slow_after: Annotated[float, Within(SLOW_AFTER)] = 300.0
    on: list[Annotated[str, AfterValidator(_kind)]] = [k.value for k in AlertKind]
    immediate_on_settings: bool = True
    # [[alerts.email]] and [[alerts.webhook]] are checked table by table (`_channels`), so
    # one broken channel does not hide the problems of the others.
    email: list[Any] = []
    webhook: list[Any] = []


_C = TypeVar("_C", bound=BaseModel)


def _channels(
    model: type[_C], tables: list[Any], prefix: str, problems: list[str]
) -> Iterator[tuple[str, _C]]:
    """The channel tables that validate, each with its key path; lazily, so the caller's
    own problems for a table follow that table's shape problems."""
    for index, raw in enumerate(tables):
        where = f"{prefix}[{index}]"
        if not isinstance(raw, dict):
            problems.append(f"{where}: must be a table, got {toml_type(raw)}")
            continue
        checked = check_table(model, raw, where, {})
        problems += checked.problems
        if checked.model is not None and not checked.problems:
            yield where, checked.model


def _webhook_name(url: str) -> str:
    # Host and port only: the path and query of a webhook URL may be its secret.
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"webhook:{parts.hostname}{port}"


def _webhook(hook: AlertWebhookFile, reader: SecretReader, warnings: list[str]) -> tuple[str, str]:
    """The webhook's URL and where it came from ("inline", "env X", …); ("", "") after a
    problem line. A URL from a secret source is checked as an inline one is."""
    where = reader.where
    found, source = reader.either(
        "url",
        inline=None if hook.url is None else SecretStr(hook.url),
        env_key=hook.url_env,
        file_key=hook.url_file,
        credential_key=hook.url_credential,
        missing=f"set one of {', '.join(secret_keys('url'))}",
    )
    if found is None or source is None:
        return "", ""
    url = found.get_secret_value()
    if source == "inline":
        if carries_token(url):
            warnings.append(
                f"{where}.url: looks like it carries a token; "
                "prefer url_env, url_file or url_credential"
            )
        return url, source
    try:
        _url(url)
    except PydanticCustomError as exc:
        # "env X" -> url_env, "file /p" -> url_file, "credential c" -> url_credential
        reader.problems.append(f"{where}.url_{source.split()[0]}: {exc.message()}")
        return "", ""
    return url, source


def resolve_alerts(
    raw: object,
    accounts: Mapping[str, Account | None],
    env: Mapping[str, str],
    path: Callable[[str], Path],
) -> tuple[AlertSettings, list[str], list[str]]:
    """The resolved [alerts], the problems found (empty when it is usable) and the warnings;
    `path` resolves a file name as written in the config."""
    if not isinstance(raw, dict):
        return AlertSettings(), [f"alerts: must be a table ([alerts]), got {toml_type(raw)}"], []
    checked = check_table(AlertsFile, raw, "alerts", {})
    problems = list(checked.problems)
    warnings: list[str] = []
    found = checked.model or AlertsFile()
    named: dict[str, str] = {}

    def claim(name: str, where: str) -> str:
        if name in named:
            problems.append(
                f"{where}.name: duplicate channel name {excerpt(name)} (also {named[name]}); "
                "set name to tell them apart"
            )
        named.setdefault(name, where)
        return name

    emails = []
    for where, email in _channels(AlertEmailFile, found.email, "alerts.email", problems):
        if email.account not in accounts:
            problems.append(f"{where}.account: unknown account {excerpt(email.account)}")
        elif (account := accounts[email.account]) is not None and account.smtp is None:
            problems.append(f"{where}.account: account {excerpt(email.account)} has no smtp")
        name = claim(email.name or f"email:{email.account}", where)
        emails.append(EmailChannel(name=name, account=email.account, to=email.to))

    webhooks = []
    for where, hook in _channels(AlertWebhookFile, found.webhook, "alerts.webhook", problems):
        reader = SecretReader(where, env, path, problems)
        url, url_source = _webhook(hook, reader, warnings)
        secret, secret_source = reader.one(
            "secret",
            env_key=hook.secret_env,
            file_key=hook.secret_file,
            credential_key=hook.secret_credential,
        )
        if not url:
            continue
        # The host only, whatever the source: the path and query may be the secret.
        name = claim(hook.name or _webhook_name(url), where)
        webhooks.append(
            WebhookChannel(
                name=name,
                url=url,
                url_source=url_source,
                format=hook.format,
                secret=secret,
                secret_source=secret_source,
                timeout=hook.timeout,
            )
        )

    settings = AlertSettings(
        after_failures=found.after_failures,
        resolve_after=found.resolve_after,
        remind_every=found.remind_every,
        slow_after=found.slow_after,
        on=[AlertKind(kind) for kind in dict.fromkeys(found.on)],
        immediate_on_settings=found.immediate_on_settings,
        email=emails,
        webhook=webhooks,
    )
    return settings, problems, warnings
