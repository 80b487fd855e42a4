"""What the IMAP adapter (imap.py) says when a session fails: one exception type, and
messages with the password and tokens scrubbed out."""

from __future__ import annotations

import ssl
from typing import Any

from monitor.core.models import Failure, Phase


class ImapError(Exception):
    """The session could not do what was asked; `.failure` says why (never the password)."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(f"{failure.kind} ({failure.phase}): {failure.message}")
        self.failure = failure


def status_text(response: Any) -> str:
    """The tagged status line of an aioimaplib response, as text."""
    last = response.lines[-1] if response.lines else b""
    return bytes(last).decode("utf-8", errors="replace").strip()


class Failures:
    """One session's failures; `secrets` (password, tokens) never reach a message."""

    __slots__ = ("secrets", "where")

    def __init__(self, where: str) -> None:
        self.where = where  # host:port
        self.secrets: list[str] = []

    def failure(self, kind: str, phase: Phase, message: str, transient: bool = True) -> Failure:
        for secret in filter(None, self.secrets):
            message = message.replace(secret, "***")
        return Failure(kind=kind, phase=phase, transient=transient, message=message)

    def error(self, kind: str, phase: Phase, message: str, transient: bool = True) -> ImapError:
        return ImapError(self.failure(kind, phase, message, transient))

    def tls(self, exc: ssl.SSLError) -> Failure:
        reason = getattr(exc, "verify_message", None) or exc.reason or str(exc)
        return self.failure("tls_failed", Phase.IMAP_TLS, f"{self.where}: {reason}", False)
