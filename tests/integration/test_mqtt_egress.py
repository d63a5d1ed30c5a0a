"""Incident snapshots on MQTT (DESIGN §4) over a real Mosquitto, from a running gateway: retained while
open, cleared at resolve, and what the gateway decided while the broker was down reaches it after."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import orjson
import pytest

from gateway.config import parse_config
from gateway.model import IncidentState
from gateway.runtime.app import App
from gateway.runtime.broker import MosquittoProcess

pytestmark = pytest.mark.integration


@pytest.fixture
def estate() -> str:
    """An estate id of this test's own: the session's broker keeps other tests' retained snapshots."""
    return f"egress{uuid.uuid4().hex[:8]}"


def _site(port: int, db: Path, client_id: str, estate: str, mqtt: str = "") -> str:
    return f"""
gateway_id: egress-gw
mqtt: {{host: 127.0.0.1, port: {port}, client_id: {client_id}, keepalive: 5{mqtt}}}
store: {{path: "{db}"}}
api: {{host: 127.0.0.1, port: 0}}  # a free port: two of these gateways may run at once (xdist)
incidents: {{correlation_window: 0}}
rules:
  - {{id: gate_tamper, kind: state, family: access_gate, point: tamper, values: [true], priority: high,
     message: {{zh: "{{device}} 防拆报警", en: "Tamper at {{device}}"}}}}
estates:
  - id: {estate}
    name: {{zh: 枫林苑, en: Maple Court}}
    devices:
      - {{id: g1, family: access_gate, profile: generic_access_gate,
         mqtt: {{topic: "estate/{estate}/access_gate/g1/+"}}}}
      - {{id: g2, family: access_gate, profile: generic_access_gate,
         mqtt: {{topic: "estate/{estate}/access_gate/g2/+"}}}}
"""


async def _until(predicate: Any, what: str, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def _gateway(port: int, tmp: Path, estate: str, mqtt: str = "") -> AsyncIterator[App]:
    config = parse_config(
        _site(port, tmp / "gw.db", f"egress-{uuid.uuid4().hex[:6]}", estate, mqtt), "site.yaml", {}
    )
    app, stop = App(config), asyncio.Event()
    task = asyncio.create_task(app.run(stop))
    try:
        await _until(lambda: app.mqtt is not None and app.mqtt.connected, "gateway connected")
        await _until(lambda: app.mqtt_out is not None and app.mqtt_out.connected, "egress connected")
        yield app
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


class _Reader:
    """A subscriber of every incident snapshot: (topic, retain flag, parsed payload or None if empty)."""

    def __init__(self, port: int, estate: str, kind: str = "incident") -> None:
        self.port, self.estate, self.kind = port, estate, kind
        self.got: list[tuple[str, bool, dict[str, Any] | None]] = []
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def __aenter__(self) -> _Reader:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._ready.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        async with aiomqtt.Client("127.0.0.1", self.port, identifier=f"egress-r-{uuid.uuid4().hex[:6]}") as c:
            await c.subscribe(f"estate-gateway/{self.estate}/{self.kind}/+", qos=1)
            self._ready.set()
            async for m in c.messages:
                assert isinstance(m.payload, bytes)
                self.got.append((str(m.topic), m.retain, orjson.loads(m.payload) if m.payload else None))

    def of(self, topic: str) -> list[tuple[bool, dict[str, Any] | None]]:
        return [(retain, body) for t, retain, body in self.got if t == topic]

    def last(self, topic: str) -> dict[str, Any]:
        """The latest snapshot on the topic ({} before any, or after a clear)."""
        mine = self.of(topic)
        return (mine[-1][1] or {}) if mine else {}


async def _publish(port: int, estate: str, device: str, tamper: bool) -> None:
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"egress-dev-{uuid.uuid4().hex[:6]}") as c:
        body = orjson.dumps({"door_open": False, "tamper": tamper})
        await c.publish(f"estate/{estate}/access_gate/{device}/state", body, qos=1)


async def test_snapshots_are_retained_while_open_and_cleared_at_resolve(
    broker: MosquittoProcess, tmp_path: Path, estate: str
) -> None:
    async with _gateway(broker.port, tmp_path, estate) as app, _Reader(broker.port, estate) as live:
        await _publish(broker.port, estate, "g1", True)
        await _until(lambda: live.got, "the new incident's snapshot")
        topic, retain, body = live.got[0]
        assert body is not None and topic == f"estate-gateway/{estate}/incident/{body['id']}"
        assert not retain  # live delivery: the broker clears the flag (it is set on the stored copy)
        assert body["gateway"] == "egress-gw" and body["device"] == "g1" and body["rule"] == "gate_tamper"
        assert (body["state"], body["alarm_state"], body["active"]) == ("open", "unack_active", True)
        assert body["priority"] == "high" and body["title"] == "g1 防拆报警" and body["alarms"] == 1
        assert [e["action"] for e in body["events"]] == ["opened"]  # what this change added
        incident_id = body["id"]

        async with _Reader(broker.port, estate) as late:  # a later subscriber gets the open incident at once
            await _until(lambda: late.got, "the retained snapshot")
            assert (
                late.got[0][1] is True and late.got[0][2] is not None and late.got[0][2]["id"] == incident_id
            )

        await app.service.acknowledge(incident_id, "wang")
        await _until(lambda: live.last(topic).get("state") == "acknowledged", "the acknowledged snapshot")
        await _publish(
            broker.port, estate, "g1", False
        )  # the condition clears: still acknowledged, not active
        await _until(lambda: live.last(topic).get("active") is False, "the cleared snapshot")
        assert [e["action"] for e in live.last(topic)["events"]] == ["alarm_returned_to_normal"]
        await app.service.resolve(incident_id, "wang", "false_alarm")
        await _until(lambda: live.of(topic)[-1] == (False, None), "the clear")  # zero-length, retained
        final = live.of(topic)[-2][1]
        assert final is not None and final["state"] == IncidentState.RESOLVED.value
        assert final["cause"] == "false_alarm" and final["active"] is False

        async with _Reader(broker.port, estate) as later:  # nothing retained is left for a resolved incident
            await asyncio.sleep(0.5)
            assert later.got == []
        stats = app.egress.outbox.stats() if app.egress else {}
        assert stats["acked"] == stats["sent"] >= 5 and stats["pending"] == stats["inflight"] == 0, stats
        assert app.health()["mqtt_egress_acked"] == stats["acked"]


async def test_snapshots_decided_while_the_broker_is_down_arrive_after_it_returns(
    tmp_path: Path, estate: str
) -> None:
    broker = MosquittoProcess().start()
    try:
        async with _gateway(broker.port, tmp_path, estate) as app:
            await _publish(broker.port, estate, "g1", True)
            await _until(lambda: app.service.opened == 1, "the first incident")
            broker.stop()
            out, egress = app.mqtt_out, app.egress
            assert out is not None and egress is not None
            await _until(lambda: not out.connected, "the gateway saw it")
            (first,) = app.service.manager.by_id
            await app.service.acknowledge(first, "li")  # two changes of one incident while away...
            await app.service.resolve(first, "li", "test")
            waiting = egress.outbox.stats()
            # the latest snapshot and its clear wait; the acknowledged one was replaced
            assert waiting["pending"] == 2 and waiting["replaced"] >= 1, waiting
            broker.start()
            await _until(lambda: out.connected, "reconnected", 40)
            async with _Reader(broker.port, estate) as live:
                await _publish(broker.port, estate, "g2", True)  # and the flow goes on
                await _until(lambda: any(b and b["device"] == "g2" for _, _, b in live.got), "g2's snapshot")
                await _until(lambda: not egress.outbox.pending, "sent")
            async with _Reader(
                broker.port, estate
            ) as late:  # retained: g2's open incident only; g1's was cleared
                await _until(lambda: late.got, "the retained snapshot")
                await asyncio.sleep(0.5)
                assert [b["device"] for _, retained, b in late.got if retained and b] == ["g2"], late.got
    finally:
        broker.close()


async def test_a_restarted_gateway_publishes_its_unresolved_incidents_again(
    broker: MosquittoProcess, tmp_path: Path, estate: str
) -> None:
    async with _gateway(broker.port, tmp_path, estate) as app:
        await _publish(broker.port, estate, "g2", True)
        await _until(lambda: app.service.opened == 1, "the incident")
        (incident_id,) = app.service.manager.by_id
    topic = f"estate-gateway/{estate}/incident/{incident_id}"
    async with aiomqtt.Client(
        "127.0.0.1", broker.port, identifier=f"egress-wipe-{uuid.uuid4().hex[:6]}"
    ) as c:
        await c.publish(topic, b"", qos=1, retain=True)  # the broker lost it (say, no persistence)
    async with _gateway(broker.port, tmp_path, estate), _Reader(broker.port, estate) as late:
        await _until(lambda: late.of(topic), "the snapshot published again")
        body = late.last(topic)
        assert (body["id"], body["device"], body["active"]) == (incident_id, "g2", True)


async def test_kpis_are_published_retained_and_again_only_when_they_change(
    broker: MosquittoProcess, tmp_path: Path, estate: str
) -> None:
    """DESIGN §4: estate-gateway/{estate}/kpi/{name}, today / this month / rolling 24 h per message."""
    kpi = f"estate-gateway/{estate}/kpi"
    async with (
        _gateway(broker.port, tmp_path, estate, ", kpi_interval: 0.2") as app,
        _Reader(broker.port, estate, "kpi") as live,
    ):
        await _until(lambda: live.of(f"{kpi}/incidents_high"), "the first KPI messages")
        body = live.last(f"{kpi}/incidents_high")
        assert (body["estate"], body["gateway"], body["name"]) == (estate, "egress-gw", "incidents_high")
        assert body["values"] == {"day": 0.0, "month": 0.0, "rolling_24h": 0.0}
        await _publish(broker.port, estate, "g1", True)  # a high-priority incident opens
        await _until(
            lambda: live.last(f"{kpi}/incidents_high").get("values", {}).get("day") == 1.0, "counted"
        )
        await asyncio.sleep(1.0)  # five more intervals: what did not change is not sent again
        assert len(live.of(f"{kpi}/incidents_critical")) == 1
        assert len(live.of(f"{kpi}/incidents_high")) == 2
        assert app.kpi_egress is not None and app.kpi_egress.offered >= 2
    async with _Reader(broker.port, estate, "kpi") as late:  # retained: a late subscriber gets them all
        await _until(lambda: late.of(f"{kpi}/incidents_high"), "the retained KPI")
        retained, body = late.of(f"{kpi}/incidents_high")[-1]
        assert retained and body is not None and body["values"]["day"] == 1.0
