"""Shared fixtures: a private Mosquitto and PostgreSQL per test session (free port, stopped by PID), and
the `make_store` factory parametrized over the store engines (tests/integration/postgres.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.runtime.broker import MosquittoProcess
from tests.integration.postgres import make_store, postgres, store_engine  # noqa: F401 - fixtures


@pytest.fixture(scope="session")
def broker() -> Iterator[MosquittoProcess]:
    with MosquittoProcess() as process:
        yield process
