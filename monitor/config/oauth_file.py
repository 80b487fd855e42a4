"""An account's `oauth = {…}` table as written in the file, and its resolution.

    auth = "xoauth2"
    oauth = { issuer = "microsoft", client_id = "…", tenant = "organizations" }

Problems are lines led by their key path (`accounts[2] (m365).oauth.client_id: required for
auth = "xoauth2"`). Secrets (client secret, refresh token) come from *_env, *_file or
*_credential keys only, and their values are never echoed.
"""

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel

from monitor.config.file_models import CredentialName, EnvName
from monitor.config.oauth_settings import OAuthSettings
from monitor.config.passwords import SecretReader
from monitor.config.schema import (
    _FILE,
    check_table,
    problem,
    toml_type,
)
from monitor.core.oauth import ISSUERS, issuer_endpoints


def _issuer(value: str) -> str:
    if value not in ISSUERS:
        raise problem(f'must be one of {", ".join(ISSUERS)}, got "{value}"')
    return value


def _url(value: str) -> str:
    # http only for loopback: a token endpoint reached in clear text leaks every token.
    loopback = value.startswith(("http://127.", "http://localhost", "http://[::1]"))
    if not (value.startswith("https://") or loopback):
        raise problem("must be an https:// URL (http:// only on loopback)")
    return value


Url = Annotated[str, AfterValidator(_url)]


class OAuthFile(BaseModel):
    model_config = _FILE

    issuer: Annotated[str, AfterValidator(_issuer)]
    client_id: str | None = None
    tenant: str | None = None
    client_secret_env: EnvName | None = None
    client_secret_file: str | None = None
    client_secret_credential: CredentialName | None = None
    token_url: Url | None = None
    device_url: Url | None = None
    auth_url: Url | None = None
    scopes: list[str] | None = None
    refresh_token_env: EnvName | None = None
    refresh_token_credential: CredentialName | None = None


def resolve_oauth(
    raw: object,
    label: str,
    env: Mapping[str, str],
    path: Callable[[str], Path],
) -> tuple[OAuthSettings | None, list[str]]:
    """The settings for one xoauth2 account (None when unusable) and the problems found."""
    where = f"{label}.oauth"
    if raw is None:
        return None, [f'{where}: required for auth = "xoauth2" (e.g. oauth = {{ issuer = …}})']
    if not isinstance(raw, dict):
        return None, [f"{where}: must be a table, got {toml_type(raw)}"]
    checked = check_table(OAuthFile, raw, where, {"issuer": "custom"})
    problems = list(checked.problems)
    found = checked.model
    if found is None:
        return None, problems
    if not found.client_id and "client_id" not in checked.dropped:
        problems.append(f'{where}.client_id: required for auth = "xoauth2"')
    if found.issuer == "microsoft" and not found.tenant:
        problems.append(f'{where}.tenant: required for issuer = "microsoft" (e.g. "organizations")')
    try:
        endpoints = issuer_endpoints(
            found.issuer,
            tenant=found.tenant,
            token_url=found.token_url,
            device_url=found.device_url,
            auth_url=found.auth_url,
            scopes=tuple(found.scopes) if found.scopes is not None else None,
        )
    except ValueError as exc:
        if "issuer" not in checked.dropped and "token_url" not in checked.dropped:
            problems.append(f"{where}.{exc}")
        return None, problems
    secrets = SecretReader(where, env, path, problems)
    client_secret, client_source = secrets.one(
        "client_secret",
        env_key=found.client_secret_env,
        file_key=found.client_secret_file,
        credential_key=found.client_secret_credential,
    )
    refresh, refresh_source = secrets.one(
        "refresh_token",
        env_key=found.refresh_token_env,
        file_key=None,
        credential_key=found.refresh_token_credential,
    )
    if problems:
        return None, problems
    settings = OAuthSettings(
        issuer=found.issuer,
        client_id=found.client_id or "",
        tenant=found.tenant,
        client_secret=client_secret,
        client_secret_source=client_source,
        token_url=endpoints.token_url,
        device_url=endpoints.device_url,
        auth_url=endpoints.auth_url,
        scopes=list(endpoints.scopes),
        refresh_token=refresh,
        refresh_token_source=refresh_source,
    )
    return settings, []
