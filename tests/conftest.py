"""Shared fixtures. The real mail stack is started once per session (about half a second)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from monitor.harness.mailstack import MailStack, missing_requirements


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
