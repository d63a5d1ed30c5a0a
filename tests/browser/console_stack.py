"""The estate stack (tests/integration/stack.py) with console users: the browser tests and
bench/console_latency.py start this subclass of the App to add users to the gateway's own store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from gateway.auth import Accounts
from gateway.runtime import app as runtime_app
from gateway.runtime.broker import MosquittoProcess
from tests.integration import stack as stack_module
from tests.integration.stack import Stack, estate_stack

PASSWORD = "Qz7!control-room"


class ConsoleApp(runtime_app.App):
    """The runtime's App (which wires the console itself) plus a way to add console users."""

    async def add_user(self, username: str, role: str, estates: list[str], display: str = "") -> None:
        await Accounts(self.store).add_user(username, role, estates, PASSWORD, display)


@asynccontextmanager
async def console_stack(broker: MosquittoProcess, tmp_path: Path, **kw: Any) -> AsyncIterator[Stack]:
    original = stack_module.App
    stack_module.App = ConsoleApp  # type: ignore[misc]
    try:
        async with estate_stack(broker, tmp_path, **kw) as s:
            yield s
    finally:
        stack_module.App = original  # type: ignore[misc]
