"""An account's password: found inline, in an environment variable, a file or a systemd credential.
SecretReader reads the OAuth client secrets and refresh tokens, the web credentials and the alert
webhooks' URLs and signing secrets the same way.

Problem lines name the key, the variable or the file, never the value. `source` says where the
password came from ("env ALICE_PASSWORD", "file /…", "credential x", "inline"): safe to show,
and what is shown instead of the secret.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from pydantic import SecretStr

from monitor.config.file_models import AccountFile
from monitor.config.files import SECRET_LIMIT, UnreadableFile, read_small_file


def secret_keys(name: str) -> tuple[str, str, str, str]:
    """The four keys that may give the secret `name`."""
    return (name, f"{name}_env", f"{name}_file", f"{name}_credential")


PASSWORD_KEYS = secret_keys("password")


class FoundPassword(NamedTuple):
    secret: SecretStr | None
    source: str | None
    problems: list[str]
    warnings: list[str]


def resolve_password(
    found: AccountFile,
    label: str,
    env: Mapping[str, str],
    path: Callable[[str], Path],
    *,
    needed: bool,
) -> FoundPassword:
    """The password of the account `found` (labelled `label` in problem lines); `path` resolves
    a file name as written in the config. With `needed` False a missing password is no problem
    (no endpoint to log in to, or a bearer token replaces it)."""
    search = _Search(label, env, path)
    secret, source = search.password(found, needed=needed)
    return FoundPassword(secret, source, search.problems, search.warnings)


@dataclass
class _Search:
    """One account's password lookup; it collects problem lines and warnings as it goes."""

    label: str
    env: Mapping[str, str]
    path: Callable[[str], Path]
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def password(self, found: AccountFile, *, needed: bool) -> tuple[SecretStr | None, str | None]:
        reader = SecretReader(self.label, self.env, self.path, self.problems)
        missing = "no password; set password_env, password_file or password_credential"
        secret, source = reader.either(
            "password",
            inline=found.password,
            env_key=found.password_env,
            file_key=found.password_file,
            credential_key=found.password_credential,
            missing=missing if needed else None,
        )
        if source == "inline":
            self.warnings.append(
                f"{self.label}.password: plaintext password in the config file; "
                "prefer password_env, password_file or password_credential"
            )
        return secret, source


@dataclass
class SecretReader:
    """Reads one secret named by `<name>_env`, `<name>_file` or `<name>_credential` (a systemd
    credential), adding a problem line under `where` when it cannot; the same for passwords and
    OAuth client secrets and refresh tokens."""

    where: str
    env: Mapping[str, str]
    path: Callable[[str], Path]
    problems: list[str]

    def one(
        self,
        name: str,
        *,
        env_key: str | None = None,
        file_key: str | None = None,
        credential_key: str | None = None,
    ) -> tuple[SecretStr | None, str | None]:
        given = {
            f"{name}_env": env_key,
            f"{name}_file": file_key,
            f"{name}_credential": credential_key,
        }
        set_keys = [key for key, value in given.items() if value is not None]
        if len(set_keys) > 1:
            self.problems.append(f"{self.where}: set only one of {', '.join(set_keys)}")
            return None, None
        if env_key is not None:
            value = self.env.get(env_key)
            if not value:
                state = "is not set" if value is None else "is empty"
                self.problems.append(
                    f"{self.where}.{name}_env: environment variable {env_key} {state}"
                )
                return None, None
            return SecretStr(value), f"env {env_key}"
        if file_key is not None:
            file = self.path(file_key)
            return self._file(file, f"{self.where}.{name}_file"), f"file {file}"
        if credential_key is not None:
            directory = self.env.get("CREDENTIALS_DIRECTORY")
            if not directory:
                self.problems.append(
                    f"{self.where}.{name}_credential: CREDENTIALS_DIRECTORY is not set "
                    "(systemd sets it for LoadCredential=)"
                )
                return None, None
            file = Path(directory) / credential_key
            secret = self._file(file, f"{self.where}.{name}_credential")
            return secret, f"credential {credential_key}"
        return None, None

    def either(
        self,
        name: str,
        *,
        inline: SecretStr | None,
        env_key: str | None,
        file_key: str | None,
        credential_key: str | None,
        missing: str | None,
    ) -> tuple[SecretStr | None, str | None]:
        """The secret set by exactly one of `<name>` (inline in the config), `<name>_env`,
        `<name>_file` and `<name>_credential`; `missing` is the problem when none is set
        (None: the secret is optional)."""
        keys = secret_keys(name)
        given = (inline, env_key, file_key, credential_key)
        sources = [key for key, value in zip(keys, given, strict=True) if value is not None]
        if len(sources) > 1:
            self.problems.append(
                f"{self.where}: set only one of {', '.join(keys)} (found {', '.join(sources)})"
            )
            return None, None
        if not sources:
            if missing is not None:
                self.problems.append(f"{self.where}: {missing}")
            return None, None
        if inline is not None:
            if not inline.get_secret_value():
                self.problems.append(f"{self.where}.{name}: is empty")
                return None, None
            return inline, "inline"
        return self.one(name, env_key=env_key, file_key=file_key, credential_key=credential_key)

    def _file(self, path: Path, where: str) -> SecretStr | None:
        try:
            text = read_small_file(path, SECRET_LIMIT).decode("utf-8")
        except UnreadableFile as exc:
            self.problems.append(f"{where}: cannot read {path}: {exc.reason}")
            return None
        except UnicodeDecodeError:
            self.problems.append(f"{where}: {path} is not UTF-8 text")
            return None
        # Editors and `echo` end files with a newline; it is never part of the secret.
        text = text.removesuffix("\n").removesuffix("\r")
        if not text:
            self.problems.append(f"{where}: {path} is empty")
            return None
        return SecretStr(text)
