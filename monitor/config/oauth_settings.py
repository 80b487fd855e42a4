"""An account's resolved OAuth2 settings (what the token provider reads); see oauth_file.py
for the file's own `oauth = {…}` table and its checks."""

from pydantic import BaseModel, ConfigDict, SecretStr
from pydantic_core import PydanticCustomError

_RESOLVED = ConfigDict(frozen=True, extra="forbid")

AUTH_METHODS = ("password", "xoauth2")


class OAuthSettings(BaseModel):
    model_config = _RESOLVED

    issuer: str  # google | microsoft | custom
    client_id: str
    tenant: str | None = None  # Microsoft: "organizations", "consumers", "common" or a tenant id
    client_secret: SecretStr | None = None
    client_secret_source: str | None = None  # "env X", "file /…", "credential x": safe to show
    token_url: str  # filled in for google and microsoft
    device_url: str | None = None
    auth_url: str | None = None
    scopes: list[str] = []
    # A refresh token given from outside (environment or systemd credential). One saved in the
    # state directory wins over it: that one may have been rotated since.
    refresh_token: SecretStr | None = None
    refresh_token_source: str | None = None


def check_auth(value: str) -> str:
    """The account's `auth` key (in the file): "password" (default) or "xoauth2"."""
    if value not in AUTH_METHODS:
        # The same shape as monitor.config.problems.problem; the value is not echoed: a
        # password typed here by mistake would be printed.
        reason = 'must be "password" or "xoauth2"'
        raise PydanticCustomError("config", "{reason}", {"reason": reason})
    return value
