"""An account's password: found inline, in an environment variable, a file or a systemd credential.

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

PASSWORD_KEYS = ("password", "password_env", "password_file", "password_credential")


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
        label = self.label
        sources = [key for key in PASSWORD_KEYS if getattr(found, key) is not None]
        if len(sources) > 1:
            self.problems.append(
                f"{label}: set only one of {', '.join(PASSWORD_KEYS)} (found {', '.join(sources)})"
            )
            return None, None
        if not sources:
            if needed:
                self.problems.append(
                    f"{label}: no password; set password_env, password_file or password_credential"
                )
            return None, None
        if found.password is not None:
            self.warnings.append(
                f"{label}.password: plaintext password in the config file; "
                "prefer password_env, password_file or password_credential"
            )
            if not found.password.get_secret_value():
                self.problems.append(f"{label}.password: is empty")
            return found.password, "inline"
        if found.password_env is not None:
            variable = found.password_env
            value = self.env.get(variable)
            if value is None:
                self.problems.append(
                    f"{label}.password_env: environment variable {variable} is not set"
                )
            elif not value:
                self.problems.append(
                    f"{label}.password_env: environment variable {variable} is empty"
                )
            return SecretStr(value or ""), f"env {variable}"
        if found.password_file is not None:
            path = self.path(found.password_file)
            return self._secret_file(path, f"{label}.password_file"), f"file {path}"
        credential = found.password_credential or ""
        directory = self.env.get("CREDENTIALS_DIRECTORY")
        if not directory:
            self.problems.append(
                f"{label}.password_credential: CREDENTIALS_DIRECTORY is not set "
                "(systemd sets it for LoadCredential=)"
            )
            return None, None
        path = Path(directory) / credential
        return self._secret_file(path, f"{label}.password_credential"), f"credential {credential}"

    def _secret_file(self, path: Path, where: str) -> SecretStr | None:
        try:
            text = path.read_bytes().decode("utf-8")
        except OSError as exc:
            self.problems.append(f"{where}: cannot read {path}: {exc.strerror or 'error'}")
            return None
        except UnicodeDecodeError:
            self.problems.append(f"{where}: {path} is not UTF-8 text")
            return None
        # Editors and `echo` end files with a newline; it is never part of the password.
        text = text.removesuffix("\n").removesuffix("\r")
        if not text:
            self.problems.append(f"{where}: {path} is empty")
        return SecretStr(text)
