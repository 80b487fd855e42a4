"""One structlog configuration for the daemon and the CLI.

JSON lines when stderr is not a terminal (journald keeps them), a readable console
otherwise. Standard-library loggers (apscheduler, sqlalchemy, aioimaplib) go through
the same pipeline, and a redaction step drops anything that looks like a secret.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_KEYS = re.compile(r"pass|secret|token_value|authorization|credential|api_key", re.I)
# SMTP/IMAP AUTH lines carry base64 credentials after the mechanism name.
_AUTH_LINE = re.compile(r"(\bAUTH(?:ENTICATE)?\s+(?:PLAIN|LOGIN|XOAUTH2)\s+)\S+", re.I)
# An IMAP LOGIN command: a tag, then LOGIN (upper case on the wire), user, password.
_LOGIN_CMD = re.compile(r"(\b[A-Za-z0-9.]+ LOGIN \S+ )\S+")


# Values known to be secret wherever they turn up, e.g. alert webhook URLs (Slack and Teams
# put the token in the path): a library naming one in a message is scrubbed too.
_hidden: set[str] = set()


def hide(*values: str) -> None:
    """Never log these strings, whoever logs them; for secrets that are not keyword values."""
    _hidden.update(v for v in values if len(v) >= 8)


def _scrub(text: str) -> str:
    for value in _hidden:
        if value in text:
            text = text.replace(value, "***")
    return _LOGIN_CMD.sub(r"\1***", _AUTH_LINE.sub(r"\1***", text))


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if _SECRET_KEYS.search(key):
            event[key] = "***"
        elif isinstance(event[key], str):
            event[key] = _scrub(event[key])
    return event


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is now, so a live terminal view can redirect it."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _: Any) -> None:
        pass


def configure(level: str = "INFO", *, json: bool | None = None) -> None:
    """Idempotent; call once per process before logging."""
    use_json = not sys.stderr.isatty() if json is None else json
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    # Below the level an event is dropped first: the rest of the chain (time stamp, redaction)
    # would otherwise run for every debug line a probe passes, to be thrown away at the end.
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = _StderrHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.processors.format_exc_info],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Libraries speak at WARNING (SQLAlchemy echoes every statement at INFO); with -v at INFO,
    # never DEBUG: aioimaplib logs the base64 login string there.
    library_level = logging.INFO if root.level <= logging.DEBUG else logging.WARNING
    for noisy in ("aioimaplib", "aiosmtplib", "apscheduler", "sqlalchemy", "aiosqlite", "alembic"):
        logging.getLogger(noisy).setLevel(library_level)
    # httpx names every request's full URL at INFO ("HTTP Request: POST https://…"), and a
    # webhook's URL is often its secret: these two stay at WARNING even with -v.
    for quiet in ("httpx", "httpcore"):
        logging.getLogger(quiet).setLevel(logging.WARNING)
