"""Fixtures for tests that drive the real daemon."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.support import Daemon


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Callable[[Path], Daemon]]:
    started: list[Daemon] = []

    def make(config: Path) -> Daemon:
        d = Daemon(config, tmp_path / "daemon.log")
        started.append(d)
        return d

    yield make
    for d in started:
        d.stop()
