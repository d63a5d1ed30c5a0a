"""A commander that raises (a driver bug) is a 502 with an audit entry, not a bare 500 with none."""

from __future__ import annotations

import httpx

from drivers.commands import CommandResult
from drivers.stats import StatsRegistry
from gateway.alerts import DeviceInfo
from gateway.api import ApiContext, TokenAuth, create_app
from gateway.config import ApiTokenConfig
from gateway.incidents import IncidentService
from gateway.model import ManualClock
from gateway.store.sqlite import SqliteStore

TOKEN = ApiTokenConfig(name="duty", token="operator-token-0123456789", role="operator", estates=["*"])


class Broken:
    @property
    def commands(self) -> list[str]:
        return ["start"]

    async def execute(self, command: str) -> CommandResult:
        raise RuntimeError("driver bug")


async def test_a_raising_commander_is_a_502_and_audited() -> None:
    store = SqliteStore(":memory:")
    await store.open()
    try:
        ctx = ApiContext(
            IncidentService(store, ManualClock()),
            [DeviceInfo("sunshine", "gen-1", "generator")],
            StatsRegistry(),
            TokenAuth([TOKEN]),
            commanders={("sunshine", "gen-1"): Broken()},
            command_policy={("sunshine", "gen-1"): {"start": "operator"}},
        )
        transport = httpx.ASGITransport(app=create_app(ctx), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            reply = await client.post(
                "/devices/sunshine/gen-1/commands",
                json={"command": "start", "reason": "月度试机 monthly test"},
                headers={"Authorization": f"Bearer {TOKEN.token}"},
            )
        assert reply.status_code == 502, reply.text
        [entry] = await store.list_audit(None)
        assert (entry.action, entry.outcome, entry.actor) == ("command:start", "error", "duty")
        assert entry.detail["reason"] == "月度试机 monthly test"
    finally:
        await store.close()
