"""Shared fixtures. The real mail stack and PostgreSQL start once per session, when used."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from monitor.harness.mailstack import MailStack, missing_requirements
from monitor.harness.postgres import Postgres
from monitor.harness.postgres import missing_requirements as postgres_missing


@pytest.fixture(scope="session")
def mailstack() -> Iterator[MailStack]:
    reason = missing_requirements()
    if reason is not None:
        pytest.skip(reason)
    stack = MailStack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A private PostgreSQL cluster (Debian's binaries, temp dir, free port)."""
    reason = postgres_missing()
    if reason is not None:
        pytest.skip(reason)
    server = Postgres.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres: Postgres) -> str:
    return postgres.url("mailcanary")
