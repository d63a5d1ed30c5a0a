"""GET /kpis and GET /estates/{estate}/report through the real app on a real SQLite file: a scripted
November (incidents through the real IncidentService, so the engine hears them as the listener it is),
scoping (out of scope is 404, lists hold only the caller's estates), JSON / CSV / HTML, zh-CN / en."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI

from drivers.stats import StatsRegistry
from gateway.alerts import DeviceInfo, Transition
from gateway.api import ApiContext, TokenAuth, create_app
from gateway.config import ApiTokenConfig
from gateway.config.kpi import KpiConfig
from gateway.incidents import IncidentService
from gateway.kpi import KpiEngine, KpiEstate
from gateway.model import DeviceEvent, ManualClock, Priority, Reading, Value
from gateway.store.sqlite import SqliteStore

TZ = ZoneInfo("Asia/Shanghai")
TOKENS = {
    "viewer": ApiTokenConfig(
        name="guard", token="viewer-token-0123456789", role="viewer", estates=["sunshine"]
    ),
    "admin": ApiTokenConfig(name="boss", token="admin-token-0123456789", role="admin", estates=["*"]),
    "other": ApiTokenConfig(
        name="other", token="other-estate-token-0123", role="admin", estates=["riverside"]
    ),
}
PANEL_POINTS = tuple(f"1-{i:03d}.{s}" for i in range(1, 41) for s in ("fire", "fault", "disabled"))
SUNSHINE = (
    DeviceInfo("sunshine", "gate-1", "access_gate"),
    DeviceInfo("sunshine", "gate-2", "access_gate"),
    DeviceInfo("sunshine", "panel-1", "fire_panel", points=PANEL_POINTS),
    DeviceInfo("sunshine", "gen-1", "generator"),
    DeviceInfo("sunshine", "septic-1", "septic_pressure"),
    DeviceInfo("sunshine", "cam-1", "plate_barrier"),
)
RIVERSIDE = (DeviceInfo("riverside", "gate-r", "access_gate"),)


def local(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=TZ).timestamp()


@dataclass
class Estate:
    """A gateway without drivers: the real incident service and store, the KPI engine as its listener."""

    clock: ManualClock
    store: SqliteStore
    service: IncidentService
    kpi: KpiEngine

    def at(self, text: str) -> None:
        self.clock.advance(local(text) - self.clock.now())

    def read(self, device: str, point: str, value: Value, estate: str = "sunshine") -> None:
        self.kpi.observe([Reading(int(self.clock.now() * 1e9), estate, device, point, value)], [])

    def event(self, device: str, kind: str, **attrs: object) -> None:
        self.kpi.observe(
            [DeviceEvent(int(self.clock.now() * 1e9), "sunshine", device, kind, dict(attrs))], []
        )

    async def alarm(
        self,
        device: str,
        rule: str,
        priority: Priority,
        active: bool,
        point: str = "",
        zh: str = "",
        en: str = "",
    ) -> int:
        """A transition as the pipeline hands it on: committed as incidents first, then observed."""
        key = f"sunshine/{device}/{rule}" + (f"/{point}" if point else "")
        t = Transition(key, "sunshine", device, rule, priority, active, self.clock.now(), None,
                       zh or f"{device} {rule}", en or f"{device} {rule}")  # fmt: skip
        await self.service.apply([t])
        self.kpi.observe([], [t])
        incident = self.service.manager.by_key.get(key)
        return incident.id if incident else 0


async def gate_outage(e: Estate) -> None:
    """3 Nov: gate-2 loses its network for 3 h; acknowledged in 4 min, repaired the same day."""
    e.at("2026-11-03T10:00")
    e.read("gate-2", "online", False)
    gate = await e.alarm("gate-2", "offline_access_gate", Priority.MEDIUM, True, zh="门禁 gate-2 通讯中断",
                         en="Access gate gate-2 offline")  # fmt: skip
    e.at("2026-11-03T10:04")
    await e.service.acknowledge(gate, "li")
    e.at("2026-11-03T13:00")
    e.read("gate-2", "online", True)
    await e.alarm("gate-2", "offline_access_gate", Priority.MEDIUM, False)
    e.at("2026-11-03T13:10")
    await e.service.resolve(gate, "li", "fault")


async def detector_fault(e: Estate) -> None:
    """6 Nov: a detector in fault for 6 h; acknowledged late (15 min > 10 min)."""
    e.at("2026-11-06T10:00")
    fault = await e.alarm("panel-1", "fire_point_fault", Priority.MEDIUM, True, "1-007.fault",
                          "消防设施故障：panel-1 1-007", "Fire-system fault: panel-1 1-007")  # fmt: skip
    e.at("2026-11-06T10:15")
    await e.service.acknowledge(fault, "wang")
    e.at("2026-11-06T16:00")
    await e.alarm("panel-1", "fire_point_fault", Priority.MEDIUM, False, "1-007.fault")
    e.at("2026-11-06T16:10")
    await e.service.resolve(fault, "wang", "fault")


def fire_alarm(point: str, ack_s: float, cause: str) -> Callable[[Estate], Awaitable[None]]:
    async def script(e: Estate) -> None:
        fire = await e.alarm("panel-1", "fire_point_fire", Priority.CRITICAL, True, point,
                             f"火警：panel-1 {point}", f"FIRE: panel-1 {point}")  # fmt: skip
        e.clock.advance(ack_s)
        await e.service.acknowledge(fire, "li")
        await e.alarm("panel-1", "fire_point_fire", Priority.CRITICAL, False, point)
        e.clock.advance(600)
        await e.service.resolve(fire, "li", cause)

    return script


async def generator_manual(e: Estate) -> None:
    """14 Nov: the generator left in manual for 3 h."""
    e.read("gen-1", "control_mode", "manual")
    e.clock.advance(60)
    manual = await e.alarm("gen-1", "gen_not_in_auto", Priority.MEDIUM, True,
                           zh="发电机 gen-1 未处于自动模式", en="Generator gen-1 not in auto")  # fmt: skip
    e.clock.advance(8 * 60)
    await e.service.acknowledge(manual, "zhao")
    e.clock.advance(3 * 3600 - 9 * 60)
    e.read("gen-1", "control_mode", "auto")
    await e.alarm("gen-1", "gen_not_in_auto", Priority.MEDIUM, False)
    await e.service.resolve(manual, "zhao", "real")


async def septic_high(e: Estate) -> None:
    """17 Nov: septic tank high for 90 min."""
    high = await e.alarm("septic-1", "septic_high", Priority.MEDIUM, True, zh="化粪池 septic-1 液位高",
                         en="Septic tank septic-1 level high")  # fmt: skip
    e.clock.advance(30 * 60)
    await e.service.acknowledge(high, "li")
    e.clock.advance(60 * 60)
    await e.alarm("septic-1", "septic_high", Priority.MEDIUM, False)
    await e.service.resolve(high, "li", "real")


async def monthly_test_run(e: Estate) -> None:
    """20 Nov: the monthly test run, 25 min."""
    e.read("gen-1", "engine_state", "running")
    e.clock.advance(25 * 60)
    e.read("gen-1", "engine_state", "stopped")


async def door_flood(e: Estate) -> None:
    """21 Nov: 14 held-door alarms in 7 minutes: an alarm flood."""
    for i in range(14):
        held = await e.alarm("gate-1", "gate_door_held", Priority.LOW, True, zh="gate-1 门长时间未关",
                             en="Door held open at gate-1")  # fmt: skip
        await e.alarm("gate-1", "gate_door_held", Priority.LOW, False)
        e.clock.advance(30)
        if i == 0:
            await e.service.acknowledge(held, "li")


SPECIALS: dict[int, Callable[[Estate], Awaitable[None]]] = {
    3: gate_outage, 6: detector_fault, 9: fire_alarm("1-012.fire", 40, "false_alarm"), 14: generator_manual,
    17: septic_high, 18: fire_alarm("1-031.fire", 90, "real"), 20: monthly_test_run, 21: door_flood,
}  # fmt: skip


async def scripted_november(e: Estate) -> None:
    """1-23 November 2026 at Sunshine Garden (until the 23rd, 12:00 local)."""
    for device in SUNSHINE:
        e.read(device.device, "online", True)
    e.read("gen-1", "control_mode", "auto")
    e.read("gen-1", "fuel_level", 85)
    e.read("gen-1", "engine_state", "stopped")
    e.read("gate-r", "online", True, estate="riverside")
    for day in range(1, 23):
        e.at(f"2026-11-{day:02d}T08:00")
        for i in range(30 + day % 7):
            e.event("cam-1", "plate_resident", plate=f"粤B{i:05d}", direction="in", decision="open")
            e.event("cam-1", "plate_resident", plate=f"粤B{i:05d}", direction="out", decision="open")
        e.event("cam-1", "plate_unknown", plate="粤A99999", direction="in", decision="hold")
        e.event("gate-1", "card_denied", card="77")
        if day % 4 == 0:
            e.event("gate-2", "door_held")
        e.at(f"2026-11-{day:02d}T09:00")
        if day in SPECIALS:
            await SPECIALS[day](e)
        if day % 6 == 0:
            e.at(f"2026-11-{day:02d}T23:30")
            e.event("gate-1", "card_granted", card="1502")
    e.at("2026-11-23T12:00")


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Estate]:
    clock = ManualClock(local("2026-11-01T00:00"))
    store = SqliteStore(tmp_path / "gateway.db")
    await store.open()
    service = IncidentService(store, clock)
    await service.start()
    estates = [KpiEstate("sunshine", "阳光花园", "Sunshine Garden", devices=SUNSHINE),
               KpiEstate("riverside", "滨江苑", "Riverside Court", devices=RIVERSIDE)]  # fmt: skip
    kpi = KpiEngine(estates, KpiConfig(), clock, store)
    service.listeners.append(kpi.on_incident_changes)
    estate = Estate(clock, store, service, kpi)
    try:
        await scripted_november(estate)
        await kpi.close()  # saved: the API below reads a fresh engine loaded from the file
        fresh = KpiEngine(estates, KpiConfig(), clock, store)
        await fresh.load()
        estate.kpi = fresh
        yield estate
    finally:
        await store.close()


def api_app(estate: Estate, kpi: KpiEngine | None) -> FastAPI:
    auth = TokenAuth(list(TOKENS.values()))
    return create_app(ApiContext(estate.service, [*SUNSHINE, *RIVERSIDE], StatsRegistry(), auth, kpi=kpi))


def app_for(estate: Estate, kpi: KpiEngine | None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api_app(estate, kpi)), base_url="http://gateway"
    )


@pytest.fixture
async def api(gateway: Estate) -> AsyncIterator[httpx.AsyncClient]:
    async with app_for(gateway, gateway.kpi) as client:
        yield client


async def get(api: httpx.AsyncClient, who: str, path: str, **params: str) -> httpx.Response:
    return await api.get(path, params=params, headers={"Authorization": f"Bearer {TOKENS[who].token}"})


async def test_kpis_are_scoped(api: httpx.AsyncClient) -> None:
    reply = await get(api, "viewer", "/kpis")
    assert reply.status_code == 200, reply.text
    assert [s["estate"] for s in reply.json()] == ["sunshine"]
    assert [s["estate"] for s in (await get(api, "admin", "/kpis")).json()] == ["sunshine", "riverside"]
    assert [s["estate"] for s in (await get(api, "other", "/kpis")).json()] == ["riverside"]
    for who, estate in (("viewer", "riverside"), ("other", "sunshine"), ("admin", "nowhere")):
        assert (await get(api, who, "/kpis", estate=estate)).status_code == 404
        assert (await get(api, who, f"/estates/{estate}/report")).status_code == 404
    assert (await api.get("/kpis")).status_code == 401


async def test_day_month_and_rolling_figures(api: httpx.AsyncClient) -> None:
    reply = await get(api, "viewer", "/kpis", estate="sunshine", period="day", date="2026-11-03")
    assert reply.status_code == 200, reply.text
    (day,) = reply.json()
    assert day["label"] == "2026-11-03"
    # 6 devices x 24 h, gate-2 offline 3 h: 141 / 144
    assert day["values"]["equipment_intact_rate"] == pytest.approx(100 * 141 / 144, abs=1e-3)
    assert day["values"]["vehicle_entries"] == 30 + 3 % 7
    (month,) = (await get(api, "viewer", "/kpis", estate="sunshine", period="month", month="2026-11")).json()
    values = month["values"]
    assert values["fire_alarms"] == 2
    assert values["fire_alarms_per_1000_points"] == pytest.approx(50.0)  # 2 per 40 points
    assert values["fire_false_alarm_share"] == 50.0
    assert values["generator_test_runs"] == 1
    assert values["mtta_s_critical"] == pytest.approx(65.0)  # 40 s and 90 s
    assert values["fire_intact_rate"] < 100.0
    assert values["alarms_per_10min_peak"] >= 11
    (rolling,) = (await get(api, "viewer", "/kpis", estate="sunshine", period="rolling_24h")).json()
    assert rolling["values"]["equipment_intact_rate"] == 100.0
    assert (await get(api, "viewer", "/kpis", period="month", month="2026-13")).status_code == 422
    assert (await get(api, "viewer", "/kpis", period="week")).status_code == 422


async def test_report_json(api: httpx.AsyncClient) -> None:
    reply = await get(api, "viewer", "/estates/sunshine/report", month="2026-11", format="json", lang="en")
    assert reply.status_code == 200, reply.text
    report = reply.json()
    assert report["estate_name"] == "Sunshine Garden" and report["month"] == "2026-11"
    rows = {r["kpi"]: r for r in report["rows"]}
    assert rows["fire_intact_rate"]["target"] == "≥ 100%" and rows["fire_intact_rate"]["pass"] is False
    assert rows["generator_test_runs"]["pass"] is True
    assert len(report["daily"]) == 23 and report["daily"][2]["date"] == "2026-11-03"
    assert report["daily"][2]["equipment_intact_rate"] == pytest.approx(100 * 141 / 144, abs=1e-3)
    assert report["top_alarms"][0] == {
        "rank": 1, "alarm": "gate-1/gate_door_held", "label": "Door held open at gate-1", "count": 14
    }  # fmt: skip
    by_priority = {p["priority"]: p for p in report["incidents_by_priority"]}
    assert by_priority["critical"]["incidents"] == 2
    assert by_priority["critical"]["mtta_s_p90"] == 90.0


async def test_report_csv_opens_in_excel(api: httpx.AsyncClient) -> None:
    reply = await get(api, "viewer", "/estates/sunshine/report", month="2026-11", format="csv")
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/csv")
    assert "kpi-report-sunshine-2026-11.csv" in reply.headers["content-disposition"]
    assert reply.content.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM
    rows = list(csv.reader(io.StringIO(reply.content.decode("utf-8-sig"))))
    assert rows[0] == ["每月考核报告", "阳光花园", "2026-11"]
    by_kpi = {r[1]: r for r in rows if len(r) == 7}
    assert by_kpi["equipment_intact_rate"][2] == "设备完好率"
    assert by_kpi["fire_intact_rate"][6] == "未达标"
    english = await get(api, "viewer", "/estates/sunshine/report", month="2026-11", format="csv", lang="en")
    assert "Equipment intact rate" in english.content.decode("utf-8-sig")


async def test_report_html_is_self_contained(api: httpx.AsyncClient) -> None:
    for lang, title in (("zh-CN", "每月考核报告"), ("en", "Monthly assessment report")):
        reply = await get(
            api, "viewer", "/estates/sunshine/report", month="2026-11", format="html", lang=lang
        )
        assert reply.status_code == 200, reply.text
        assert reply.headers["content-type"].startswith("text/html")
        page = reply.text
        assert title in page and "<svg" in page and "@page" in page
        assert "<script" not in page and "src=" not in page
        assert "<link" not in page.replace('<link rel="icon" href="data:,">', "")  # no favicon fetch
        assert "https://" not in page and "http://" not in page.replace(
            'xmlns="http://www.w3.org/2000/svg"', ""
        )


async def test_without_an_engine_kpis_are_unavailable(gateway: Estate) -> None:
    async with app_for(gateway, None) as client:
        assert (await get(client, "viewer", "/kpis")).status_code == 503
