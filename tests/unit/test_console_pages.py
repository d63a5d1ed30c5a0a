"""The console over HTTP through the real app (ASGI transport, SQLite store with users): login
redirects, the cookie login, security headers, scoping of pages and of the recent-readings route."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from drivers.stats import StatsRegistry
from gateway.alerts import DeviceInfo, Transition
from gateway.api import ApiContext, TokenAuth, create_app
from gateway.auth import Accounts, Passwords
from gateway.config import ApiTokenConfig
from gateway.console import RecentReadings
from gateway.console.headers import CSP
from gateway.incidents import IncidentService
from gateway.model import ManualClock, Priority, Quality, Reading, Source
from gateway.store.sqlite import SqliteStore

TOKENS = [
    ApiTokenConfig(name="sun-op", token="sun-operator-token-0123456", role="operator", estates=["sunshine"]),
    ApiTokenConfig(name="maple-op", token="maple-operator-token-01234", role="operator", estates=["maple"]),
]
PASSWORD = "Qz7!control-room"
DEVICES = [
    DeviceInfo("sunshine", "gen-1", "generator", "3号楼 地下室", points=("oil_pressure", "control_mode")),
    DeviceInfo("maple", "gate-b", "access_gate", "北门", points=("door_open",)),
]


class Console:
    def __init__(self, client: httpx.AsyncClient, recent: RecentReadings, service: IncidentService) -> None:
        self.client, self.recent, self.service = client, recent, service

    async def login(self, username: str) -> httpx.Response:
        form = {"username": username, "password": PASSWORD, "next": "/console/"}
        return await self.client.post("/auth/login", data=form)


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Console]:
    clock = ManualClock(1_790_000_000.0)
    store = SqliteStore(tmp_path / "gw.db")
    await store.open()
    accounts = Accounts(store, clock=clock, passwords=Passwords(time_cost=1, memory_cost=8, parallelism=1))
    await accounts.add_user("wang", "operator", ["sunshine"], PASSWORD, "王值班")
    await accounts.add_user("li", "operator", ["maple"], PASSWORD)
    await accounts.add_user("zhou", "viewer", ["sunshine"], PASSWORD)
    await accounts.add_user("chen", "supervisor", ["sunshine"], PASSWORD)
    recent = RecentReadings()
    ctx = ApiContext(
        IncidentService(store, clock),
        DEVICES,
        StatsRegistry(),
        TokenAuth(TOKENS, accounts),
        timezones={"sunshine": "Asia/Shanghai", "maple": "Asia/Urumqi"},
        estate_names={"sunshine": ("阳光花园", "Sunshine Garden"), "maple": ("枫林苑", "Maple Court")},
        recent=recent,
    )
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield Console(client, recent, ctx.service)
    await store.close()


def reading(estate: str, device: str, point: str, value: float | str, ts: float) -> Reading:
    return Reading(int(ts * 1e9), estate, device, point, value, "kPa", Quality.GOOD, Source.MODBUS)


@pytest.mark.parametrize(
    "path",
    ["/console/", "/console/incidents/1", "/console/estates/sunshine", "/console/devices/sunshine/gen-1",
     "/console/kpis"],
)  # fmt: skip
async def test_pages_redirect_to_login_without_a_session(console: Console, path: str) -> None:
    reply = await console.client.get(path)
    assert reply.status_code == 303
    assert reply.headers["location"].startswith("/console/login?next=")
    assert httpx.URL(reply.headers["location"]).params["next"] == path


async def test_root_redirects_to_the_console(console: Console) -> None:
    reply = await console.client.get("/")
    assert reply.status_code == 307 and reply.headers["location"] == "/console/"


async def test_login_page_has_csp_and_no_inline_script(console: Console) -> None:
    reply = await console.client.get("/console/login?next=/console/")
    assert reply.status_code == 200
    assert reply.headers["content-security-policy"] == CSP
    assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP
    assert reply.headers["x-frame-options"] == "DENY"
    assert reply.headers["cache-control"] == "no-store"
    # Every <script> is either a file of ours or a JSON data block (never executed).
    for tag in re.findall(r"<script[^>]*>", reply.text):
        assert 'type="application/json"' in tag or re.search(r'src="/console/static/[a-z]+\.js\?v=', tag), tag
    assert 'action="/auth/login"' in reply.text and 'name="next" value="/console/"' in reply.text


async def test_login_page_never_redirects_off_site(console: Console) -> None:
    reply = await console.client.get("/console/login", params={"next": "//evil.example/x"})
    assert 'name="next" value="/console/"' in reply.text


async def test_static_files_are_cached_and_versioned(console: Console) -> None:
    page = await console.client.get("/console/login")
    [url] = re.findall(r'src="(/console/static/console\.js\?v=[0-9a-f]+)"', page.text)
    reply = await console.client.get(url)
    assert reply.status_code == 200
    assert "max-age=86400" in reply.headers["cache-control"]
    assert reply.headers["content-security-policy"] == CSP


async def test_cookie_login_opens_the_board_in_chinese_then_english(console: Console) -> None:
    reply = await console.login("wang")
    assert reply.status_code == 303 and reply.headers["location"] == "/console/"
    board = await console.client.get("/console/")
    assert board.status_code == 200, board.text
    assert "报警看板" in board.text and "王值班" in board.text
    assert board.headers["content-security-policy"] == CSP
    switched = await console.client.get("/console/lang", params={"to": "en", "next": "/console/"})
    assert switched.status_code == 303 and switched.cookies.get("eg_lang") == "en"
    board = await console.client.get("/console/")
    assert "Alarm board" in board.text and "报警看板" not in board.text
    assert 'lang="en"' in board.text


async def test_pages_of_another_estate_are_not_found(console: Console) -> None:
    await console.login("wang")
    assert (await console.client.get("/console/estates/sunshine")).status_code == 200
    assert (await console.client.get("/console/devices/sunshine/gen-1")).status_code == 200
    for path in ("/console/estates/maple", "/console/devices/maple/gate-b", "/console/incidents/1",
                 "/console/?estate=maple"):  # fmt: skip
        assert (await console.client.get(path)).status_code == 404, path
    board = await console.client.get("/console/")
    assert "枫林苑" not in board.text and "maple" not in board.text


async def test_readings_route_is_scoped_and_bounded_in_time(console: Console) -> None:
    now = time.time()  # the route reads the wall clock: samples half a minute away from the edges
    for k in range(10):
        console.recent.add(reading("sunshine", "gen-1", "oil_pressure", 300.0 + k, now - 570 + k * 60))
    console.recent.add(reading("maple", "gate-b", "door_open", 1.0, now))
    sun = {"Authorization": f"Bearer {TOKENS[0].token}"}
    reply = await console.client.get(
        "/devices/sunshine/gen-1/readings", params={"point": "oil_pressure", "minutes": 5}, headers=sun
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["unit"] == "kPa"
    assert [s["value"] for s in body["samples"]] == [305.0, 306.0, 307.0, 308.0, 309.0]
    other = await console.client.get(
        "/devices/maple/gate-b/readings", params={"point": "door_open"}, headers=sun
    )
    assert other.status_code == 404
    unknown = await console.client.get("/devices/sunshine/gen-1/readings", params={"point": "x"}, headers=sun)
    assert unknown.status_code == 404
    assert (
        await console.client.get("/devices/sunshine/gen-1/readings", params={"point": "x"})
    ).status_code == 401


def alarm(estate: str, device: str, rule: str, priority: Priority) -> Transition:
    return Transition(
        f"{estate}/{device}/{rule}", estate, device, rule, priority, True, time.time(), 1,
        f"{rule} 报警", f"{rule} alarm",
    )  # fmt: skip


def forms(page: str) -> set[str]:
    return set(re.findall(r'<form class="act" data-action="([a-z]+)"', page))


async def test_action_buttons_follow_role_and_state(console: Console) -> None:
    [change] = await console.service.apply([alarm("sunshine", "gen-1", "gen_not_in_auto", Priority.HIGH)])
    path = f"/console/incidents/{change.incident.id}"
    await console.login("zhou")  # viewer: reads, never acts
    page = await console.client.get(path)
    assert page.status_code == 200 and "gen_not_in_auto" in page.text
    assert forms(page.text) == set()
    await console.login("wang")
    assert forms((await console.client.get(path)).text) == {"ack", "assign", "comment", "shelve", "resolve"}
    await console.service.acknowledge(change.incident.id, "wang")
    await console.service.shelve(change.incident.id, "wang", 30, "维修中")
    assert forms((await console.client.get(path)).text) == {"assign", "comment", "unshelve", "resolve"}
    await console.service.resolve(change.incident.id, "wang", "fault")
    assert forms((await console.client.get(path)).text) == {"comment"}  # closing is a supervisor's
    await console.login("chen")
    assert forms((await console.client.get(path)).text) == {"comment", "close"}


async def test_board_lists_only_the_callers_estates(console: Console) -> None:
    changes = await console.service.apply([
        alarm("sunshine", "gen-1", "gen_fail_to_start", Priority.CRITICAL),
        alarm("maple", "gate-b", "gate_door_forced", Priority.HIGH),
    ])  # fmt: skip
    await console.login("li")
    board = (await console.client.get("/console/")).text
    # Times in the estate's timezone (maple: Asia/Urumqi, UTC+6), whatever the server's zone is.
    opened = datetime.fromtimestamp(changes[1].incident.opened_at, ZoneInfo("Asia/Urumqi"))
    assert f'<td class="c-time">{opened:%Y-%m-%d %H:%M:%S}</td>' in board
    assert "gate_door_forced 报警" in board and "gen_fail_to_start" not in board  # not even in the data
    assert re.search(r'data-priority="critical"><b>0</b>', board)
    assert re.search(r'data-priority="high"><b>1</b>', board)
    facilities = await console.client.get("/console/api/estates/maple/facilities")
    assert [f["key"] for f in facilities.json()] == ["access", "anpr", "fire", "septic", "generator", "duty"]
    assert (await console.client.get("/console/api/estates/sunshine/facilities")).status_code == 404
