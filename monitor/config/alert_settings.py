"""The resolved [alerts] section (what the alerting service reads); see alert_file.py for the
file's own shape and its checks."""

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from monitor.alerts.kinds import AlertKind

if TYPE_CHECKING:
    from monitor.alerts.state import Policy

_RESOLVED = ConfigDict(frozen=True, extra="forbid")
# The webhook body formats (alerts/message.py renders them); here so that loading a config
# does not import the renderer and its templates.
FORMATS = ("json", "slack", "alertmanager")


class EmailChannel(BaseModel):
    model_config = _RESOLVED

    name: str  # stable: the outbox remembers deliveries by it
    account: str  # an account with smtp; it sends the alert
    to: list[str]


class WebhookChannel(BaseModel):
    model_config = _RESOLVED

    name: str
    # Out of repr and never logged: Slack-style webhook URLs carry their own secret.
    url: str = Field(repr=False)
    url_source: str = "inline"  # "env X", "file /p", "credential c": safe to show
    format: str = "json"  # json | slack | alertmanager
    secret: SecretStr | None = None  # from secret_env, _file or _credential; signs the body
    secret_source: str | None = None
    timeout: float = 10.0


class AlertSettings(BaseModel):
    model_config = _RESOLVED

    after_failures: int = 2
    resolve_after: int = 1
    remind_every: float = 6 * 3600.0  # 0: never
    slow_after: float = 300.0
    on: list[AlertKind] = list(AlertKind)
    immediate_on_settings: bool = True
    email: list[EmailChannel] = []
    webhook: list[WebhookChannel] = []

    def policy(self) -> "Policy":
        from monitor.alerts.state import Policy  # the state machine: only where it runs

        return Policy(
            after_failures=self.after_failures,
            resolve_after=self.resolve_after,
            remind_every=self.remind_every,
            slow_after=self.slow_after,
            on=frozenset(self.on),
            immediate_on_settings=self.immediate_on_settings,
        )

    @property
    def channels(self) -> list[EmailChannel | WebhookChannel]:
        return [*self.email, *self.webhook]
