"""TLS contexts: the system trust store plus the configured extra anchors; always verifying."""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path


def client_context(ca_files: Iterable[Path | str] = ()) -> ssl.SSLContext:
    """A verifying client context; cached per set of CA files so handshakes reuse it."""
    return _cached(tuple(sorted(str(p) for p in ca_files)))


@lru_cache(maxsize=32)
def _cached(ca_files: tuple[str, ...]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    for path in ca_files:
        ctx.load_verify_locations(cafile=path)
    return ctx
