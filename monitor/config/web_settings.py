"""The resolved [web] section (what the status page reads); see web_file.py for the file."""

from pydantic import BaseModel, ConfigDict, Field, SecretStr

AUTH_KINDS = ("none", "token", "password")


class WebSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True  # the status page beside /metrics and /healthz
    auth: str = "none"  # none | token (Authorization: Bearer) | password (HTTP Basic)
    token: SecretStr | None = Field(default=None, repr=False)
    user: str | None = None
    password_hash: SecretStr | None = Field(default=None, repr=False)  # `mailcanary web-password`
