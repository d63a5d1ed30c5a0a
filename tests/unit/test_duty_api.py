"""GET /estates/{estate}/duty through the real app (ASGI transport): scope, roles, contacts, `at`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from drivers.stats import StatsRegistry
from gateway.api import ApiContext, TokenAuth, create_app
from gateway.config import ApiTokenConfig
from gateway.escalation.roster import Roster
from gateway.incidents import IncidentService
from gateway.model import ManualClock
from gateway.store.sqlite import SqliteStore
from tests.unit.test_roster import duty_config, local

TOKENS = {
    "viewer": ApiTokenConfig(
        name="guard", token="viewer-token-0123456789", role="viewer", estates=["sunshine"]
    ),
    "supervisor": ApiTokenConfig(
        name="supervisor", token="supervisor-token-0123456789", role="supervisor", estates=["sunshine"]
    ),
    "other": ApiTokenConfig(
        name="other", token="other-estate-token-0123", role="admin", estates=["riverside"]
    ),
}


@pytest.fixture
async def api() -> AsyncIterator[httpx.AsyncClient]:
    ctx = ApiContext(
        IncidentService(SqliteStore(":memory:"), ManualClock()),  # never opened: duty reads no store
        [],
        StatsRegistry(),
        TokenAuth(list(TOKENS.values())),
        rosters={"sunshine": Roster(duty_config()), "riverside": Roster(duty_config())},
    )
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client


async def get(api: httpx.AsyncClient, who: str, path: str, **params: str) -> httpx.Response:
    return await api.get(path, params=params, headers={"Authorization": f"Bearer {TOKENS[who].token}"})


def by_role(body: dict[str, object]) -> dict[str, dict[str, object]]:
    roles = body["roles"]
    assert isinstance(roles, list)
    return {r["role"]: r for r in roles}


async def test_viewer_sees_who_but_no_contacts(api: httpx.AsyncClient) -> None:
    reply = await get(api, "viewer", "/estates/sunshine/duty", at="2026-11-02T03:00")  # local time
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["at"] == local("2026-11-02T03:00")
    assert body["local_time"] == "2026-11-02T03:00:00+08:00"
    control = by_role(body)["control_room"]
    assert control["people"] == [{"id": "zhang", "name": "张伟", "contact": None}]
    assert control["shift"] == "night"
    assert control["shift_end"] == local("2026-11-02T08:00")
    assert control["shift_end_local"] == "2026-11-02T08:00:00+08:00"
    assert control["label"] == "控制室值班员"
    assert "+86" not in reply.text
    assert by_role(body)["estate_manager"] == {
        "role": "estate_manager", "label": "项目经理", "people": [], "shift": None, "shift_start": None,
        "shift_end": None, "shift_end_local": None, "notes": [],
    }  # fmt: skip


async def test_supervisor_sees_contacts(api: httpx.AsyncClient) -> None:
    reply = await get(api, "supervisor", "/estates/sunshine/duty", at=str(local("2026-11-02T03:00")))
    assert reply.status_code == 200, reply.text
    control = by_role(reply.json())["control_room"]
    assert control["people"] == [
        {"id": "zhang", "name": "张伟", "contact": {"phone": "+8613800000002", "email": None, "im": {}}}
    ]


async def test_holiday_notes_and_explicit_offset(api: httpx.AsyncClient) -> None:
    reply = await get(api, "viewer", "/estates/sunshine/duty", at="2027-02-06T02:00:00Z")  # 10:00 local
    manager = by_role(reply.json())["duty_manager"]
    assert [p["id"] for p in manager["people"]] == ["chen"]
    assert manager["notes"] == ["春节值班"]


async def test_scope_and_bad_input(api: httpx.AsyncClient) -> None:
    assert (await get(api, "other", "/estates/sunshine/duty")).status_code == 404
    assert (await get(api, "other", "/estates/riverside/duty")).status_code == 200
    assert (await get(api, "viewer", "/estates/nowhere/duty")).status_code == 404
    assert (await api.get("/estates/sunshine/duty")).status_code == 401
    assert (await get(api, "viewer", "/estates/sunshine/duty", at="tomorrow")).status_code == 422
    assert (await get(api, "viewer", "/estates/sunshine/duty", at="nan")).status_code == 422
    now = await get(api, "viewer", "/estates/sunshine/duty")
    assert now.status_code == 200 and len(by_role(now.json())) == 6
