"""Latency of a Modbus-sourced alarm: from the moment a simulated transmitter's value crosses the rule's
limit to the incident on the App's live feed, against the device's poll interval.

One ``pressure_transmitter_float`` on a ``ModbusSimServer`` (this process, free port of 127.0.0.1) polled
by the real App every ``poll`` seconds; a site rule ``bench_pressure_high`` (pressure > 50 kPa, no
on-delay). Each sample waits a random 0–1 poll intervals (so the step falls anywhere in the poll cycle),
sets the value to 80 kPa and stamps that moment, waits for the incident to turn active on a live-feed
subscription, then sets 10 kPa and waits for it to clear. The expected delay is uniform in [0, poll]
plus the gateway's own cost: the target is p99 ≤ poll + 25 ms.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

from child import BenchError
from ingest_throughput import _stop_app, _wait_until
from modbus_poll import modbus_profile

from drivers.profiles import ProfileLibrary
from drivers.sim import ModbusSimServer, PointsModel
from gateway.config import parse_config
from gateway.incidents import IncidentUpdate
from gateway.runtime.app import App
from gateway.runtime.broker import free_port

HOST = "127.0.0.1"
RULE = "bench_pressure_high"
NORMAL, ALARM = 10.0, 80.0


def config_text(modbus_port: int, store: Path, poll: float) -> str:
    return f"""\
gateway_id: bench-gw
store: {{path: "{store}"}}
api: {{enabled: false}}
incidents: {{correlation_window: 0, flood_count: 1000000}}
rules:
  - {{id: {RULE}, kind: threshold, device: e0/septic-1, point: pressure, op: ">", limit: 50, deadband: 5,
     priority: high, message: {{zh: "压力高 {{value}}", en: "pressure high {{value}}"}}}}
estates:
  - id: e0
    name: {{zh: 基准, en: Bench}}
    devices:
      - id: septic-1
        family: septic_pressure
        profile: pressure_transmitter_float
        poll_interval: {poll}
        modbus: {{host: {HOST}, port: {modbus_port}, unit_id: 1, timeout: 0.5}}
"""


async def measure(tmp: Path, poll: float, samples: int, tag: str = "0") -> list[float]:
    """`samples` latencies in ms (value step → active incident on the live feed)."""
    profile = modbus_profile(ProfileLibrary(), "pressure_transmitter_float")
    model = PointsModel(profile, {"unit": "kPa", "pressure": NORMAL, "temperature": 20.0})
    server = ModbusSimServer(HOST, free_port(), {1: model})
    await server.start()
    config = parse_config(config_text(server.port, tmp / f"modbus-alarm-{tag}.db", poll), "bench.yaml", {})
    app, stop = App(config), asyncio.Event()
    task = asyncio.create_task(app.run(stop))
    changes: asyncio.Queue[tuple[float, bool]] = asyncio.Queue()
    sub = app.live.subscribe(maxsize=100_000)

    async def record() -> None:
        while True:
            item: Any = await sub.get()
            body = getattr(item, "body", None)
            if isinstance(body, IncidentUpdate) and body.incident.rule == RULE:
                changes.put_nowait((time.perf_counter(), body.incident.active))

    recorder = asyncio.create_task(record())
    out: list[float] = []
    rng = random.Random(7)
    try:
        await _wait_until(app.ready.is_set, 15, task, lambda: "gateway never got ready")
        await asyncio.sleep(3 * poll + 0.2)  # connected, first polls done
        for i in range(samples + 1):  # the first one is a warm-up
            await asyncio.sleep(rng.uniform(0, poll))
            model.set("pressure", ALARM)
            stepped = time.perf_counter()
            arrived = await _wait_for_change(changes, True, 5 * poll + 2, f"sample {i}: alarm")
            if i:
                out.append((arrived - stepped) * 1000)
            await asyncio.sleep(rng.uniform(0, poll))
            model.set("pressure", NORMAL)
            await _wait_for_change(changes, False, 5 * poll + 2, f"sample {i}: clear")
    finally:
        recorder.cancel()
        await _stop_app(stop, task)
        await server.stop()
    return out


async def _wait_for_change(
    changes: asyncio.Queue[tuple[float, bool]], active: bool, within: float, what: str
) -> float:
    deadline = time.perf_counter() + within
    while True:
        left = deadline - time.perf_counter()
        if left <= 0:
            raise BenchError(f"modbus alarm: {what} did not reach the live feed within {within:g}s")
        try:
            at, is_active = await asyncio.wait_for(changes.get(), left)
        except TimeoutError:
            continue
        if is_active == active:
            return at
