"""Assign, comment and bulk acknowledge through the real app on a real SQLite file: scope, roles, states,
timeline entries, one commit per bulk ack, and the live feed seeing every change."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from drivers.stats import StatsRegistry
from gateway.alerts import Transition
from gateway.api import ApiContext, TokenAuth, create_app
from gateway.config import ApiTokenConfig
from gateway.incidents import IncidentService, IncidentUpdate, LiveItem
from gateway.model import ManualClock, Priority
from gateway.store import SqliteStore

TOKENS = {
    "operator": ApiTokenConfig(name="control-room", token="operator-token-0123456789", role="operator"),
    "maple-op": ApiTokenConfig(
        name="maple-op", token="maple-op-token-0123456789", role="operator", estates=["maple"]
    ),
    "viewer": ApiTokenConfig(name="auditor", token="viewer-token-0123456789ab", role="viewer"),
    "supervisor": ApiTokenConfig(name="duty-manager", token="supervisor-token-01234567", role="supervisor"),
}


@dataclass
class Api:
    client: httpx.AsyncClient
    service: IncidentService
    store: SqliteStore
    clock: ManualClock

    async def post(self, path: str, who: str = "operator", **kw: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {TOKENS[who].token}"}
        return await self.client.post(path, headers=headers, **kw)  # type: ignore[arg-type]

    async def get(self, path: str, who: str = "operator") -> httpx.Response:
        return await self.client.get(path, headers={"Authorization": f"Bearer {TOKENS[who].token}"})

    async def open(self, estate: str, device: str, priority: Priority = Priority.HIGH) -> int:
        self.clock.advance(1)
        key = f"{estate}/{device}/r1"
        transition = Transition(
            key, estate, device, "r1", priority, True, self.clock.now(), 1, "报警", "alarm"
        )
        [change] = await self.service.apply([transition])
        return change.incident.id


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    store = SqliteStore(tmp_path / "gw.db")
    await store.open()
    clock = ManualClock()
    service = IncidentService(store, clock)
    await service.start()
    ctx = ApiContext(service, [], StatsRegistry(), TokenAuth(list(TOKENS.values())))
    transport = httpx.ASGITransport(app=create_app(ctx), client=("10.0.0.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield Api(client, service, store, clock)
    await store.close()


def actions(body: dict[str, object]) -> list[tuple[str, str]]:
    timeline = body["timeline"]
    assert isinstance(timeline, list)
    return [(e["action"], e["actor"]) for e in timeline]


async def test_assign_and_unassign_are_in_the_timeline_and_stored(api: Api) -> None:
    incident_id = await api.open("sunshine", "gen-1")
    r = await api.post(f"/incidents/{incident_id}/assign", json={"assignee": "li.wei"})
    assert r.status_code == 200 and r.json()["assignee"] == "li.wei"
    again = await api.post(f"/incidents/{incident_id}/assign", json={"assignee": "li.wei"})
    assert actions(again.json()).count(("assigned", "control-room")) == 1  # the same assignee: no-op
    r = await api.post(f"/incidents/{incident_id}/assign", json={"assignee": None})
    assert r.status_code == 200 and r.json()["assignee"] is None
    assert actions(r.json())[-2:] == [("assigned", "control-room"), ("unassigned", "control-room")]
    assert r.json()["timeline"][-1]["detail"] == {"assignee": None, "previous": "li.wei"}
    await api.post(f"/incidents/{incident_id}/assign", json={"assignee": "wang.fang"})
    restarted = IncidentService(api.store, api.clock)  # a restart reads the same from the file
    await restarted.start()
    assert restarted.manager.by_id[incident_id].assignee == "wang.fang"
    listed = (await api.get("/incidents")).json()
    assert listed[0]["assignee"] == "wang.fang"


async def test_assign_roles_scope_and_states(api: Api) -> None:
    incident_id = await api.open("sunshine", "gen-1")
    assert (
        await api.post(f"/incidents/{incident_id}/assign", "viewer", json={"assignee": "x"})
    ).status_code == 403
    assert (
        await api.post(f"/incidents/{incident_id}/assign", "maple-op", json={"assignee": "x"})
    ).status_code == 404
    assert (await api.post("/incidents/999/assign", json={"assignee": "x"})).status_code == 404
    for bad in ({"assignee": ""}, {"assignee": " padded "}, {"assignee": "x" * 65}, {}):
        assert (await api.post(f"/incidents/{incident_id}/assign", json=bad)).status_code == 422, bad
    resolved = await api.post(f"/incidents/{incident_id}/resolve", json={"cause": "fault"})
    assert resolved.status_code == 200
    r = await api.post(f"/incidents/{incident_id}/assign", json={"assignee": "repair.team"})
    assert r.status_code == 200 and r.json()["assignee"] == "repair.team"  # follow-up after resolve
    assert (await api.post(f"/incidents/{incident_id}/close", "supervisor")).status_code == 200
    closed = await api.post(f"/incidents/{incident_id}/assign", json={"assignee": "x"})
    assert closed.status_code == 409


async def test_comment_in_any_state_but_closed(api: Api) -> None:
    incident_id = await api.open("sunshine", "gen-1")
    r = await api.post(f"/incidents/{incident_id}/comment", json={"text": "  保安已到现场  "})
    assert r.status_code == 200
    last = r.json()["timeline"][-1]
    assert (last["action"], last["actor"], last["detail"]) == (
        "commented",
        "control-room",
        {"text": "保安已到现场"},
    )
    for bad in ({"text": ""}, {"text": "   "}, {"text": "x" * 2001}, {}):
        assert (await api.post(f"/incidents/{incident_id}/comment", json=bad)).status_code == 422, bad
    assert (await api.post(f"/incidents/{incident_id}/comment", json={"text": "x" * 2000})).status_code == 200
    assert (
        await api.post(f"/incidents/{incident_id}/comment", "viewer", json={"text": "x"})
    ).status_code == 403
    assert (
        await api.post(f"/incidents/{incident_id}/comment", "maple-op", json={"text": "x"})
    ).status_code == 404
    await api.post(f"/incidents/{incident_id}/ack")
    await api.post(f"/incidents/{incident_id}/resolve", json={"cause": "false_alarm"})
    r = await api.post(f"/incidents/{incident_id}/comment", json={"text": "复核：误报"})
    assert r.status_code == 200 and r.json()["state"] == "resolved"
    await api.post(f"/incidents/{incident_id}/close", "supervisor")
    assert (await api.post(f"/incidents/{incident_id}/comment", json={"text": "x"})).status_code == 409
    stored = await api.service.get(incident_id)
    assert stored is not None
    assert [e.action for e in stored.timeline].count("commented") == 3


async def test_bulk_ack_by_ids_reports_each_outcome_in_one_commit(api: Api) -> None:
    sun = [await api.open("sunshine", f"gate-{n}") for n in range(3)]
    maple = await api.open("maple", "gate-b")
    resolved = await api.open("sunshine", "gen-1")
    await api.post(f"/incidents/{resolved}/resolve", json={"cause": "test"})
    await api.post(f"/incidents/{sun[0]}/ack")
    feed = api.service.live.subscribe()
    commits = api.store.commits
    body = {"ids": [*sun, maple, resolved, 999, sun[1]], "note": "flood at the north gate"}
    r = await api.post("/incidents/ack", "maple-op", json={"ids": sun})  # none of them in its scope
    assert {x["outcome"] for x in r.json()["results"]} == {"not_found"} and r.json()["acknowledged"] == 0
    r = await api.post("/incidents/ack", json=body)
    assert r.status_code == 200
    assert r.json() == {
        "acknowledged": 3,
        "results": [
            {"id": sun[0], "outcome": "already_acknowledged"},
            {"id": sun[1], "outcome": "acknowledged"},
            {"id": sun[2], "outcome": "acknowledged"},
            {"id": maple, "outcome": "acknowledged"},
            {"id": resolved, "outcome": "resolved"},
            {"id": 999, "outcome": "not_found"},
        ],
    }
    assert api.store.commits == commits + 1  # one transaction for the batch
    got = []
    while (item := feed.get_nowait()) is not None:
        assert isinstance(item, LiveItem) and isinstance(item.body, IncidentUpdate)
        got.append(item.body.incident.id)
    assert got == [sun[1], sun[2], maple]
    detail = (await api.get(f"/incidents/{sun[1]}")).json()
    assert detail["state"] == "acknowledged"
    ack = detail["timeline"][-1]
    assert (ack["action"], ack["actor"], ack["detail"]) == (
        "acknowledged", "control-room", {"source": "10.0.0.7", "note": "flood at the north gate"}
    )  # fmt: skip


async def test_bulk_ack_by_filter_stays_in_scope(api: Api) -> None:
    high = [await api.open("sunshine", f"gate-{n}") for n in range(2)]
    low = await api.open("sunshine", "septic-1", Priority.LOW)
    maple = await api.open("maple", "gate-b")
    r = await api.post("/incidents/ack", "maple-op", json={"estate": "sunshine"})
    assert r.json() == {"acknowledged": 0, "results": []}  # another estate's filter matches nothing
    r = await api.post("/incidents/ack", json={"estate": "sunshine", "priority": "high"})
    assert sorted(x["id"] for x in r.json()["results"]) == sorted(high) and r.json()["acknowledged"] == 2
    r = await api.post("/incidents/ack", "maple-op", json={"priority": "high"})
    assert r.json()["results"] == [{"id": maple, "outcome": "acknowledged"}]
    state = (await api.get(f"/incidents/{low}")).json()["state"]
    assert state == "open"


async def test_bulk_ack_needs_an_operator_and_a_selection(api: Api) -> None:
    incident_id = await api.open("sunshine", "gate-1")
    assert (await api.post("/incidents/ack", "viewer", json={"ids": [incident_id]})).status_code == 403
    assert (await api.post("/incidents/ack", json={})).status_code == 422
    assert (await api.post("/incidents/ack", json={"ids": []})).status_code == 422
    assert (await api.post("/incidents/ack", json={"ids": list(range(1001))})).status_code == 422
    anonymous = await api.client.post("/incidents/ack", json={"ids": [incident_id]})
    assert anonymous.status_code == 401
    assert (await api.get(f"/incidents/{incident_id}")).json()["state"] == "open"
