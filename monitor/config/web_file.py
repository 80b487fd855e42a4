"""The [web] table as written in the file: the status page and who may read it.

[web]
enabled = true                       # false: only /metrics and /healthz
auth = "password"                    # none | token | password
user = "ops"                         # with auth = "password" (HTTP Basic)
password_hash_env = "MAILCANARY_WEB_HASH"   # or _file / _credential: `mailcanary web-password`
# token_env / token_file / token_credential  with auth = "token" (Authorization: Bearer …)

The page refuses to run on a listen address that is not loopback without auth: anyone who
can reach the port would see every mailbox and route.
"""

import ipaddress
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel

from monitor.config.file_models import _FILE, _credential_name, _env_name, _name
from monitor.config.passwords import SecretReader
from monitor.config.problems import check_table, toml_type
from monitor.config.web_settings import WebSettings


class WebFile(BaseModel):
    model_config = _FILE

    enabled: bool = True
    auth: Literal["none", "token", "password"] = "none"
    user: Annotated[str, AfterValidator(_name)] | None = None
    token_env: Annotated[str, AfterValidator(_env_name)] | None = None
    token_file: str | None = None
    token_credential: Annotated[str, AfterValidator(_credential_name)] | None = None
    password_hash_env: Annotated[str, AfterValidator(_env_name)] | None = None
    password_hash_file: str | None = None
    password_hash_credential: Annotated[str, AfterValidator(_credential_name)] | None = None


def is_loopback(listen: str) -> bool:
    host = listen.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name may resolve to anything


def resolve_web(
    raw: object, listen: str, env: Mapping[str, str], path: Callable[[str], Path]
) -> tuple[WebSettings, list[str]]:
    """The resolved [web] and the problems found (empty when it is usable)."""
    if not isinstance(raw, dict):
        return WebSettings(), [f"web: must be a table ([web]), got {toml_type(raw)}"]
    checked = check_table(WebFile, raw, "web", {})
    problems = list(checked.problems)
    found = checked.model or WebFile()
    reader = SecretReader("web", env, path, problems)
    token = user = digest = None
    if found.auth == "token":
        token, _ = reader.one(
            "token",
            env_key=found.token_env,
            file_key=found.token_file,
            credential_key=found.token_credential,
        )
        if token is None and len(problems) == len(checked.problems):
            problems.append('web.token_env: required with auth = "token" (or token_file, …)')
    elif found.auth == "password":
        user = found.user
        if user is None:
            problems.append('web.user: required with auth = "password"')
        digest, _ = reader.one(
            "password_hash",
            env_key=found.password_hash_env,
            file_key=found.password_hash_file,
            credential_key=found.password_hash_credential,
        )
        if digest is None and not any(p.startswith("web.password_hash") for p in problems):
            problems.append(
                'web.password_hash_env: required with auth = "password" '
                "(a hash from `mailcanary web-password`; or password_hash_file, …)"
            )
        elif digest is not None and not digest.get_secret_value().startswith("scrypt$"):
            problems.append("web.password_hash: not a hash from `mailcanary web-password`")
    enabled = found.enabled and bool(listen)
    if enabled and found.auth == "none" and not is_loopback(listen):
        problems.append(
            f'web.auth: required when monitor.listen ("{listen}") is not a loopback address; '
            'set auth = "token" or "password", or enabled = false'
        )
    return WebSettings(
        enabled=enabled, auth=found.auth, token=token, user=user, password_hash=digest
    ), problems
