"""Shared fixtures: a private Mosquitto per test session (free port, stopped by PID)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.runtime.broker import MosquittoProcess


@pytest.fixture(scope="session")
def broker() -> Iterator[MosquittoProcess]:
    with MosquittoProcess() as process:
        yield process
