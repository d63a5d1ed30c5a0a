"""Latency from a device's MQTT publish to its incident on the live feed, at a given message rate.

The publisher (bench/paced.py, its own process) puts its wall clock in every payload (``t``); the bench
profile ``bench_level_mqtt`` maps ``t`` to the reading's timestamp, so the incident's ``updated_at`` is
the publish time. Latency = arrival − ``updated_at`` at two subscribers:

* in process: a ``LiveFeed`` subscription of the App, stamped when the bench task takes the item;
* over the wire: a real WebSocket client of ``GET /feed/ws`` with a bearer token, in a spawned child
  process (its JSON parsing does not load the gateway's event loop), stamped on receipt.

Workload: E estates × D bench level sensors, round-robin; every device's messages 50–74 of each 100 are
over the rule's limit (150 > 100), the 75th clears it (20): 1 % of the messages raise an alarm,
the same share as ingest_throughput.py's events. Correlation and the flood incident are off.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import signal
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from child import BenchError, child_reply, close_child
from ingest_throughput import _connected, _started, _stop_app, _wait_until
from paced import PacedPublisher, PacedResult
from websockets.asyncio.client import connect as ws_connect

from gateway.config import GatewayConfig, parse_config
from gateway.incidents import IncidentUpdate
from gateway.runtime.app import App

HOST = "127.0.0.1"
PROFILES = Path(__file__).resolve().parent / "profiles"
TOKEN = "bench-viewer-token-0123456789"
ALARM_EVERY = 100  # each device: messages 50-74 of every 100 are over the limit
WARMUP_S = 0.5  # samples published in the first half second are left out
# A high-rate connection's flow control (deploy/OPERATIONS.md): up to 4,000 unacknowledged QoS 1 messages
# in flight to the gateway instead of the default 1,000: +15 % on a drain (2026-11-24). The throughput
# comparisons with Node-RED use it; the latency measurement here keeps the defaults.
MQTT_TUNING = ", receive_maximum: 4000, max_backlog: 8000"


def config_text(port: int, store: Path, estates: int, devices: int, client_id: str, mqtt: str = "") -> str:
    """`mqtt`: more options of the site's `mqtt` section (", key: value, ...")."""
    lines = [
        "gateway_id: bench-gw",
        f"mqtt: {{host: {HOST}, port: {port}, client_id: {client_id}{mqtt}}}",
        f'store: {{path: "{store}"}}',
        f'profile_dirs: ["{PROFILES}"]',
        "incidents: {correlation_window: 0, flood_count: 1000000}",
        "api:",
        f"  host: {HOST}",
        "  port: 0",
        "  tokens:",
        f'    - {{name: bench, token: "{TOKEN}", role: viewer, estates: ["*"]}}',
        "rules:",
        '  - {id: bench_level_high, kind: threshold, family: septic_pressure, point: level, op: ">",',
        "     limit: 100, deadband: 5, priority: high,",
        '     message: {zh: "液位高 {value}", en: "level high {value}"}}',
        "estates:",
    ]
    for e in range(estates):
        lines += [f"  - id: e{e}", f"    name: {{zh: 基准{e}, en: Bench {e}}}", "    devices:"]
        for d in range(devices):
            lines.append(
                f"      - {{id: lvl-{d:03d}, family: septic_pressure, profile: bench_level_mqtt,"
                f' mqtt: {{topic: "estate/e{e}/septic_pressure/lvl-{d:03d}/+"}}}}'
            )
    return "\n".join(lines) + "\n"


def build_config(
    port: int, store: Path, estates: int, devices: int, client_id: str, mqtt: str = ""
) -> GatewayConfig:
    return parse_config(config_text(port, store, estates, devices, client_id, mqtt), "bench-feed.yaml", {})


def fit(count: int, estates: int, devices: int) -> tuple[int, int]:
    """Fewer devices for a short workload, so that each sees at least 2 alarms."""
    sensors = max(4, min(estates * devices, count // 200))
    estates = min(estates, sensors)
    return estates, max(1, sensors // estates)


def transitions(work: list[tuple[str, str]]) -> int:
    """Alarm and clear transitions of `work` under the rule (> 100, deadband 5)."""
    active: dict[str, bool] = {}
    count = 0
    for topic, payload in work:
        level = float(payload.split(",")[0].split(":")[1])
        was = active.get(topic, False)
        if (not was and level > 100) or (was and level < 95):
            active[topic] = not was
            count += 1
    return count


def messages(estates: int, devices: int, count: int) -> tuple[list[tuple[str, str]], int]:
    """The workload and the number of alarms in it."""
    ids = [(f"e{e}", f"lvl-{d:03d}") for e in range(estates) for d in range(devices)]
    out, alarms = [], 0
    for i in range(count):
        estate, device = ids[i % len(ids)]
        k = (i // len(ids)) % ALARM_EVERY
        alarms += k == ALARM_EVERY // 2
        level = 150.0 if ALARM_EVERY // 2 <= k < ALARM_EVERY * 3 // 4 else 20.0 + (i % 7)
        out.append((f"estate/{estate}/septic_pressure/{device}/state", f'{{"level": {level}, "t": {{t}}}}'))
    return out, alarms


# -- WebSocket client in a child process ------------------------------------------------------------


def _ws_main(url: str, token: str, conn: Connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        samples = asyncio.run(_ws_receive(url, token, conn))
        conn.send(("samples", samples))
    except Exception as exc:
        with contextlib.suppress(OSError):
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
    conn.close()


async def _ws_receive(url: str, token: str, conn: Connection) -> list[tuple[float, float]]:
    """An asyncio client, as a browser console is: each frame is stamped in the loop turn that reads it
    off the socket (the sync client hands frames from its reader thread to `recv`, a thread wake-up
    under a contended GIL that is the client's latency, not the gateway's)."""
    samples: list[tuple[float, float]] = []
    stop = asyncio.Event()
    asyncio.get_running_loop().add_reader(conn.fileno(), stop.set)  # the parent's "stop"
    async with ws_connect(
        url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=10
    ) as ws:
        hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if hello.get("type") != "hello":
            raise BenchError(f"expected hello, got {hello}")
        conn.send(("ready", None))

        async def receive() -> None:
            async for raw in ws:
                now = time.time()
                msg = json.loads(raw)
                if msg.get("type") == "incident" and msg["incident"]["active"]:
                    samples.append((now, float(msg["incident"]["updated_at"])))

        receiver = asyncio.create_task(receive())
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait([receiver, waiter], return_when=asyncio.FIRST_COMPLETED)
        for task in (receiver, waiter):
            task.cancel()
        if receiver.done() and not receiver.cancelled() and receiver.exception() is not None:
            raise receiver.exception()  # type: ignore[misc]
    return samples


class WsClient:
    def __init__(self, url: str, token: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child_conn = ctx.Pipe()
        self.proc = ctx.Process(target=_ws_main, args=(url, token, child_conn), name="bench-ws-client")
        self._child_conn = child_conn

    async def start(self) -> None:
        self.proc.start()
        self._child_conn.close()
        await asyncio.to_thread(child_reply, self.conn, self.proc, "ws client", 20, "ready")

    async def samples(self) -> list[tuple[float, float]]:
        try:
            self.conn.send("stop")
            value: list[tuple[float, float]] = await asyncio.to_thread(
                child_reply, self.conn, self.proc, "ws client", 20, "samples"
            )
            return value
        finally:
            self.close()

    def close(self) -> None:
        close_child(self.conn, self.proc)


# -- one measurement ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedLatency:
    rate: float  # asked
    published: PacedResult
    alarms: int
    in_process_ms: list[float]
    websocket_ms: list[float]


async def measure(
    port: int, tmp: Path, rate: float, seconds: float, estates: int = 4, devices: int = 25, tag: str = "0"
) -> FeedLatency:
    """Run the App and both subscribers, publish `rate` msgs/s for `seconds`, return the latencies."""
    count = max(800, int(rate * seconds))
    estates, devices = fit(count, estates, devices)
    work, alarms = messages(estates, devices, count)
    config = build_config(port, tmp / f"feed-{tag}.db", estates, devices, f"bench-feed-{tag}")
    app, stop = App(config), asyncio.Event()
    task = asyncio.create_task(app.run(stop))
    local: list[tuple[float, float]] = []
    recorder: asyncio.Task[None] | None = None
    ws: WsClient | None = None
    try:
        await _started(app, task)
        await _wait_until(lambda: _connected(app), 15, task, lambda: "gateway never connected")
        await asyncio.sleep(0.5)  # subscriptions settle
        sub = app.live.subscribe(maxsize=1_000_000)

        async def record() -> None:
            while True:
                item: Any = await sub.get()
                body = getattr(item, "body", None)
                if isinstance(body, IncidentUpdate) and body.incident.active:
                    local.append((time.time(), body.incident.updated_at))

        recorder = asyncio.create_task(record())
        ws = WsClient(f"ws://{HOST}:{app.api_port}/feed/ws", TOKEN)
        await ws.start()
        started = time.time()
        publisher = PacedPublisher(port, f"bench-feed-pub-{tag}", work, rate)
        publisher.start()
        published = await asyncio.to_thread(publisher.result)
        await _wait_until(
            lambda: len(local) >= alarms, 30, task, lambda: f"{len(local)}/{alarms} alarms seen"
        )
        await asyncio.sleep(0.3)  # the WebSocket's last items
        remote = await ws.samples()
        ws = None
    finally:
        if recorder is not None:
            recorder.cancel()
        if ws is not None:
            ws.close()
        await _stop_app(stop, task)
    cut = started + WARMUP_S
    in_process = [(a - u) * 1000 for a, u in local if u >= cut]
    websocket = [(a - u) * 1000 for a, u in remote if u >= cut]
    if len(remote) < alarms:
        raise BenchError(f"WebSocket client saw {len(remote)}/{alarms} alarms")
    return FeedLatency(rate, published, alarms, in_process, websocket)
