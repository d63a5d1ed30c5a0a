"""GET /metrics from a whole running estate (tests/integration/stack.py): the real health dict, driver
counters and incident manager behind the collector, scraped the way Prometheus does (bearer token)."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from drivers.sim.generator import GeneratorModel
from gateway.runtime.broker import MosquittoProcess
from tests.integration.stack import Stack, estate_stack

pytestmark = pytest.mark.integration


async def scrape(s: Stack, role: str = "viewer") -> dict[str, list[Sample]]:
    reply = await s.api("GET", "/metrics", role=role)
    assert reply.status_code == 200, reply.text
    samples: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def one(samples: dict[str, list[Sample]], name: str, **labels: str) -> float:
    found = [x.value for x in samples.get(name, []) if all(x.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (name, labels, samples.get(name))
    return found[0]


async def test_metrics_of_a_running_estate(broker: MosquittoProcess, tmp_path: Path) -> None:
    async with estate_stack(broker, tmp_path) as s:
        assert s.app is not None
        gen = s.host.models["gen-1"]
        assert isinstance(gen, GeneratorModel)
        gen.set_mains(False)
        await s.until(lambda: gen.engine == "running" or (gen.step() and False), 6, "engine running")
        gen.oil_pressure_running = 120  # below the gateway's 150 kPa: one high incident
        await s.until(lambda: s.opened("gen_low_oil_pressure"), 6, "low-oil incident")

        m = await scrape(s)
        health = s.app.health()
        assert one(m, "estate_gateway_items_processed_total") > 0
        assert one(m, "estate_gateway_devices_online") == health["devices_online"]
        assert one(m, "estate_gateway_mqtt_connected") == 1
        assert one(m, "estate_gateway_build_info", gateway_id="test-gw") == 1
        gen_labels = {"estate": "sunshine", "device": "gen-1", "family": "generator"}
        assert one(m, "estate_gateway_device_polls_total", **gen_labels) > 0
        assert one(m, "estate_gateway_device_readings_total", **gen_labels) > 0
        assert one(m, "estate_gateway_device_online", **gen_labels) == 1
        open_high = one(m, "estate_gateway_incidents_open", estate="sunshine", priority="high", state="open")
        assert open_high >= 1
        assert one(m, "estate_gateway_incidents_open", estate="sunshine", priority="low", state="open") == 0

        assert (await s.api("GET", "/metrics", role="")).status_code == 401
        assert (await s.api("GET", "/metrics", role="supervisor")).status_code == 403  # one estate only
