"""GET /metrics through the real app (ASGI transport): families, labels and values against the health
dict, the driver counters and the incident manager; 401 without a token, 403 for an estate-scoped one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from drivers.stats import StatsRegistry
from gateway.alerts import DeviceInfo
from gateway.api import ApiContext, TokenAuth, create_app
from gateway.config import ApiTokenConfig
from gateway.incidents import IncidentService
from gateway.model import Incident, IncidentState, ManualClock, Priority
from gateway.store.sqlite import SqliteStore

TOKENS = {
    "prometheus": ApiTokenConfig(
        name="prometheus", token="prometheus-token-0123456789", role="viewer", estates=["*"]
    ),
    "guard": ApiTokenConfig(name="guard", token="guard-token-0123456789", role="admin", estates=["sunshine"]),
}

HEALTH: dict[str, Any] = {
    "gateway_id": "gw-1",
    "queue_depth": 3,
    "queue_high_water": 17,
    "items_processed": 1234,
    "store_failures": 1,
    "core_errors": 0,
    "mqtt_connected": True,
    "mqtt_unrouted": 5,
    "devices": 3,
    "devices_online": 2,
    "devices_offline": 1,
    "notifications_sent": 9,
    "notifications_failed": 2,
    "notify_delay_s": {"p50": 0.25, "p99": 1.5},
    "notify_engine_delay_s": {"p50": None, "p99": None},
    "channels_failing": ["sms"],
    "channels": {"sms": {"sent": 1, "failed": 4, "consecutive_failures": 3, "last_error": "503"}},
    "sink_lag_s": 2.5,
    "sink_spool_points": 420,
    "sink_points_written": 9000,
    "sink_points_dropped": 3,
    "sink_points_dropped_queue_full": 2,
    "sink_points_dropped_nonfinite": 1,
    "sink_new_figure": 7,
    "incidents_open": 99,  # would clash with the collector's own family: left out
}


def _incident(id_: int, estate: str, priority: Priority, state: IncidentState) -> Incident:
    return Incident(
        id=id_, estate=estate, device="gen-1", rule="r", alarm_key=f"k{id_}", priority=priority,
        state=state, title="t", opened_at=1.0, updated_at=1.0,
    )  # fmt: skip


@pytest.fixture
async def api() -> AsyncIterator[httpx.AsyncClient]:
    stats = StatsRegistry()
    gen = stats.for_device("sunshine", "gen-1")
    gen.readings, gen.polls, gen.last_seen, gen.online = 40, 12, 1_700_000_000.0, True
    gen.error("timeout")
    gen.error("timeout")
    gen.error("exception_2")
    stats.for_device("riverside", "gate-1").events = 7
    service = IncidentService(SqliteStore(":memory:"), ManualClock())  # never opened: no store reads
    for incident in (
        _incident(1, "sunshine", Priority.CRITICAL, IncidentState.OPEN),
        _incident(2, "sunshine", Priority.CRITICAL, IncidentState.OPEN),
        _incident(3, "sunshine", Priority.LOW, IncidentState.ACKNOWLEDGED),
        _incident(4, "riverside", Priority.HIGH, IncidentState.RESOLVED),  # not open: not counted
    ):
        service.manager.by_id[incident.id] = incident
        service.manager.by_key[incident.alarm_key] = incident
    ctx = ApiContext(
        service,
        [DeviceInfo("sunshine", "gen-1", "generator"), DeviceInfo("riverside", "gate-1", "access_gate")],
        stats,
        TokenAuth(list(TOKENS.values())),
        online=lambda estate, device: False if device == "gate-1" else None,
        health=lambda: HEALTH,
    )
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client


async def scrape(api: httpx.AsyncClient) -> dict[str, list[Sample]]:
    reply = await api.get("/metrics", headers={"Authorization": f"Bearer {TOKENS['prometheus'].token}"})
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain")
    samples: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def value(samples: dict[str, list[Sample]], name: str, **labels: str) -> float:
    found = [s.value for s in samples[name] if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (name, labels, samples[name])
    return found[0]


async def test_health_figures(api: httpx.AsyncClient) -> None:
    m = await scrape(api)
    assert value(m, "estate_gateway_queue_depth") == 3
    assert value(m, "estate_gateway_queue_high_water") == 17
    assert value(m, "estate_gateway_items_processed_total") == 1234
    assert value(m, "estate_gateway_store_failures_total") == 1
    assert value(m, "estate_gateway_core_errors_total") == 0
    assert value(m, "estate_gateway_mqtt_connected") == 1
    assert value(m, "estate_gateway_mqtt_unrouted_total") == 5
    assert value(m, "estate_gateway_devices_online") == 2
    assert value(m, "estate_gateway_devices_offline") == 1
    assert value(m, "estate_gateway_notifications_failed_total") == 2
    assert value(m, "estate_gateway_sink_lag_seconds") == 2.5
    assert value(m, "estate_gateway_sink_spool_points") == 420
    assert value(m, "estate_gateway_sink_points_written_total") == 9000
    assert value(m, "estate_gateway_sink_points_dropped_total") == 3
    assert value(m, "estate_gateway_sink_points_dropped_by_reason_total", reason="queue_full") == 2
    assert value(m, "estate_gateway_sink_points_dropped_by_reason_total", reason="nonfinite") == 1
    assert value(m, "estate_gateway_sink_new_figure") == 7  # unknown keys still exported, as gauges
    assert value(m, "estate_gateway_build_info", version="0.1.0", gateway_id="gw-1") == 1
    assert value(m, "estate_gateway_notify_delay_seconds", stage="all", quantile="0.99") == 1.5
    assert not [s for s in m["estate_gateway_notify_delay_seconds"] if s.labels["stage"] == "engine"]
    assert value(m, "estate_gateway_channel_failed_total", channel="sms") == 4
    assert value(m, "estate_gateway_channel_consecutive_failures", channel="sms") == 3
    assert "estate_gateway_gateway_id" not in m
    assert not [x for x in m["estate_gateway_incidents_open"] if not x.labels]
    assert not [name for name in m if "channels_failing" in name]


async def test_device_counters(api: httpx.AsyncClient) -> None:
    m = await scrape(api)
    gen = {"estate": "sunshine", "device": "gen-1", "family": "generator"}
    assert value(m, "estate_gateway_device_readings_total", **gen) == 40
    assert value(m, "estate_gateway_device_polls_total", **gen) == 12
    assert value(m, "estate_gateway_device_errors_total", **gen, reason="timeout") == 2
    assert value(m, "estate_gateway_device_errors_total", **gen, reason="exception_2") == 1
    assert value(m, "estate_gateway_device_online", **gen) == 1  # engine unknown: the driver's view
    assert value(m, "estate_gateway_device_last_seen_seconds", **gen) == 1_700_000_000
    gate = {"estate": "riverside", "device": "gate-1", "family": "access_gate"}
    assert value(m, "estate_gateway_device_events_total", **gate) == 7
    assert value(m, "estate_gateway_device_online", **gate) == 0  # the engine's verdict wins


async def test_incidents_open_by_priority(api: httpx.AsyncClient) -> None:
    m = await scrape(api)
    name = "estate_gateway_incidents_open"
    assert value(m, name, estate="sunshine", priority="critical", state="open") == 2
    assert value(m, name, estate="sunshine", priority="low", state="acknowledged") == 1
    assert value(m, name, estate="sunshine", priority="high", state="open") == 0
    assert value(m, name, estate="riverside", priority="high", state="open") == 0  # resolved ones drop out
    assert len(m[name]) == 2 * 4 * 2  # every estate x priority x unresolved state


async def test_needs_an_all_estates_token(api: httpx.AsyncClient) -> None:
    assert (await api.get("/metrics")).status_code == 401
    scoped = await api.get("/metrics", headers={"Authorization": f"Bearer {TOKENS['guard'].token}"})
    assert scoped.status_code == 403
    wrong = await api.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401


async def test_registries_are_per_app() -> None:
    """Two apps in one process: no duplicate-registration error, no global registry pollution."""
    before = {m.name for m in REGISTRY.collect()}
    for _ in range(2):
        ctx = ApiContext(
            IncidentService(SqliteStore(":memory:"), ManualClock()), [], StatsRegistry(), TokenAuth([])
        )
        create_app(ctx)
    assert {m.name for m in REGISTRY.collect()} == before
