"""MQTT cameras (Frigate LPR on a shared topic, generic JSON) decided by the same vehicle registry as the
pushing cameras, with the exit lane's relay pulsed on an open decision: real Mosquitto, real Modbus."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from drivers.sim.barrier import BarrierModel
from drivers.sim.host import SimulationHost
from gateway.config import parse_config
from gateway.runtime.app import App
from gateway.runtime.broker import MosquittoProcess, free_port

pytestmark = pytest.mark.integration


def site(mqtt_port: int, modbus_port: int, db: Path) -> str:
    return f"""\
mqtt: {{host: 127.0.0.1, port: {mqtt_port}, client_id: eg-anpr-{uuid.uuid4().hex[:8]}}}
store: {{path: "{db}"}}
api: {{enabled: false}}
estates:
  - id: sunshine
    name: {{zh: 阳光花园, en: Sunshine Garden}}
    vehicles:
      residents: [{{plate: 粤B12345, label: 3-1502}}]
      blacklist: [{{plate: 粤B66666, label: 欠费}}]
    devices:
      - id: cam-west-out
        family: plate_barrier
        profile: frigate_lpr
        lane_direction: out
        barrier: barrier-west-out
        mqtt: {{topic: frigate/tracked_object_update, match: {{camera: west_exit}}}}
      - id: cam-west-in
        family: plate_barrier
        profile: frigate_lpr
        lane_direction: in
        mqtt: {{topic: frigate/tracked_object_update, match: {{camera: west_entry}}}}
      - id: cam-south
        family: plate_barrier
        profile: generic_anpr_json
        mqtt: {{topic: "estate/sunshine/plate_barrier/cam-south/+"}}
      - id: barrier-west-out
        family: plate_barrier
        profile: barrier_relay_io
        poll_interval: 0.2
        modbus: {{host: 127.0.0.1, port: {modbus_port}, unit_id: 1, timeout: 0.3}}
"""


async def test_mqtt_cameras_are_classified_and_open_their_barrier(
    broker: MosquittoProcess, tmp_path: Path
) -> None:
    config = parse_config(site(broker.port, free_port(), tmp_path / "gw.db"), "site.yaml", {})
    async with SimulationHost(config) as host:
        app, stop = App(config), asyncio.Event()
        task = asyncio.create_task(app.run(stop))
        await asyncio.wait_for(app.ready.wait(), 10)
        barrier = host.models["barrier-west-out"]
        assert isinstance(barrier, BarrierModel)
        try:
            for _ in range(200):
                if app.mqtt is not None and app.mqtt.connected:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            await host.apply("cam-west-out", "plate", {"plate": "粤B·12345"})  # resident leaves: relay
            await host.apply("cam-west-in", "plate", {"plate": "沪C00001"})  # unknown enters: held
            await host.apply("cam-west-out", "plate", {"plate": "苏E55555"})  # unknown tries to leave
            await host.apply("cam-south", "plate", {"plate": "粤B66666", "direction": "in"})  # registry ban
            await host.apply("cam-south", "plate", {"plate": "浙A11111", "list": "blockList"})  # camera's ban
            expected = {"sunshine/cam-south/plate_blacklisted", "sunshine/cam-west-out/plate_unknown_exit"}
            for _ in range(200):  # alarms (correlated into incidents: the keys tell them apart)
                if expected <= set(app.service.manager.by_key) and app.pipeline.items >= 5:
                    break
                await asyncio.sleep(0.05)
            assert set(app.service.manager.by_key) == expected
            for _ in range(100):
                if app.opener.opened == 1:
                    break
                await asyncio.sleep(0.05)
            assert barrier.pulses == 1 and app.opener.opened == 1
            trail = await app.store.list_audit(None, 10)
            assert [(e.actor, e.outcome, e.detail["plate"]) for e in trail] == [
                ("anpr:cam-west-out", "ok", "粤B12345")
            ]
            stats = app.stats.for_device("sunshine", "cam-west-in")
            assert stats.events == 1 and not stats.errors
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
