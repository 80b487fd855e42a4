"""The [alerts] table as written in the file, and its resolution against the accounts.

Problems are lines led by their key path, like every other config problem:
`alerts.email[0].account: unknown account "x"`. The webhook URL is never echoed (Slack-style
URLs are secrets) and neither is a secret variable's value.
"""

from collections.abc import Iterator, Mapping
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, Field, SecretStr

from monitor.alerts.kinds import AlertKind
from monitor.config.alert_settings import FORMATS, AlertSettings, EmailChannel, WebhookChannel
from monitor.config.file_models import (
    _FILE,
    REMIND,
    SLOW_AFTER,
    WEBHOOK_TIMEOUT,
    Name,
    Within,
    _email,
    _env_name,
)
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
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise problem("must be an http:// or https:// URL")
    return value


Count = Annotated[int, AfterValidator(_count)]


class AlertEmailFile(BaseModel):
    model_config = _FILE

    name: Name | None = None
    account: str
    to: list[Annotated[str, AfterValidator(_email)]] = Field(min_length=1)


class AlertWebhookFile(BaseModel):
    model_config = _FILE

    name: Name | None = None
    url: Annotated[str, AfterValidator(_url)]
    format: Annotated[str, AfterValidator(_format)] = "json"
    secret_env: Annotated[str, AfterValidator(_env_name)] | None = None
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


def resolve_alerts(
    raw: object, accounts: Mapping[str, Account | None], env: Mapping[str, str]
) -> tuple[AlertSettings, list[str]]:
    """The resolved [alerts] and the problems found (empty when it is usable)."""
    if not isinstance(raw, dict):
        return AlertSettings(), [f"alerts: must be a table ([alerts]), got {toml_type(raw)}"]
    checked = check_table(AlertsFile, raw, "alerts", {})
    problems = list(checked.problems)
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
        secret = None
        if hook.secret_env is not None:
            value = env.get(hook.secret_env)
            if value is None:
                problems.append(
                    f"{where}.secret_env: environment variable {hook.secret_env} is not set"
                )
            elif not value:
                problems.append(
                    f"{where}.secret_env: environment variable {hook.secret_env} is empty"
                )
            secret = SecretStr(value) if value else None
        name = claim(hook.name or _webhook_name(hook.url), where)
        webhooks.append(
            WebhookChannel(
                name=name,
                url=hook.url,
                format=hook.format,
                secret=secret,
                secret_env=hook.secret_env,
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
    return settings, problems
