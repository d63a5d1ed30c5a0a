"""Node-RED as the peer: the same MQTT-in → threshold → MQTT-out flow, the same broker and publisher.

Node-RED 4 is installed by bench/run into bench/.node-red/ (``npm install --prefix bench/.node-red
node-red@4``; never a test dependency) and runs headless (``disableEditor``, admin API off) on a free
port of 127.0.0.1 with its own userDir in a temp folder. Its flow: ``mqtt in`` (QoS 1, JSON) on
``estate/+/septic_pressure/+/state`` → ``function`` (per topic: alarm when level > 100, clear below 95,
the rule's deadband; output only on a transition) → ``mqtt out`` (QoS 1) on ``bench/out/<topic>``.

The gateway's equivalent: its MQTT ingress → bench_level_mqtt decode → rule ``bench_level_high``
(threshold 100, deadband 5) → incident committed to SQLite → its own MQTT egress (DESIGN §4): the
incident's snapshot (about 500 bytes of JSON) at QoS 1 on ``estate-gateway/{estate}/incident/{id}``,
retained. Counted there: each message whose change is an alarm or a clear (its ``events``); the
escalation's updates of the same incidents also go out but are not counted. Both figures stop at
the output arriving at a subscriber of the same broker. What still differs: the gateway keeps a
persistent session, acks each input only after its effect is committed to SQLite, plans and sends the
incident's escalation, and keeps every reading's state; Node-RED's flow acks on receipt (clean session)
and keeps one flag per topic in memory.

Both: the workload of feed_latency.py published as fast as one paho client goes (QoS 1, own process);
rate = messages / (first publish → the last transition's arrival). Both count every transition, which
must equal the workload's.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import orjson
from child import BenchError
from feed_latency import MQTT_TUNING, build_config, fit, messages, transitions
from ingest_throughput import _connected, _stop_app, _wait_until
from paced import PacedPublisher

from gateway.incidents import IncidentUpdate
from gateway.runtime.app import App
from gateway.runtime.broker import free_port

HOST = "127.0.0.1"
PREFIX = Path(__file__).resolve().parent / ".node-red"
BIN = PREFIX / "node_modules" / ".bin" / "node-red"
FILTER = "estate/+/septic_pressure/+/state"
SNAPSHOTS = "estate-gateway/+/incident/+"

FUNCTION = """
const active = context.get('active') || {};
const level = msg.payload.level;
const was = active[msg.topic] === true;
if (!was && level > 100) { active[msg.topic] = true; context.set('active', active);
  return {topic: 'bench/out/' + msg.topic, payload: JSON.stringify({active: true, t: msg.payload.t})}; }
if (was && level < 95) { active[msg.topic] = false; context.set('active', active);
  return {topic: 'bench/out/' + msg.topic, payload: JSON.stringify({active: false})}; }
return null;
"""


def install(log: Path) -> str | None:
    """Install node-red@4 into bench/.node-red if missing; None when ready, else why not."""
    if BIN.exists():
        return None
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        return "node/npm not found on PATH"
    PREFIX.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        done = subprocess.run(
            [npm, "install", "--prefix", str(PREFIX), "node-red@4"],
            stdout=out,
            stderr=out,
            timeout=600,
            check=False,
        )
    if done.returncode != 0 or not BIN.exists():
        return f"npm install node-red@4 failed (exit {done.returncode}), see {log}"
    return None


def version() -> str:
    try:
        data = json.loads((PREFIX / "node_modules" / "node-red" / "package.json").read_text())
        return str(data.get("version", "?"))
    except (OSError, ValueError):
        return "not installed"


def write_user_dir(
    folder: Path, broker_port: int, http_port: int, client_id: str | None = None, clean: bool = True
) -> None:
    """The flow and settings; `clean=False` with a fixed `client_id` gives Node-RED a persistent session
    (the drain comparison, nodered_drain.py)."""
    folder.mkdir(parents=True, exist_ok=True)
    flow: list[dict[str, Any]] = [
        {"id": "t1", "type": "tab", "label": "bench"},
        {"id": "b1", "type": "mqtt-broker", "name": "bench", "broker": HOST, "port": str(broker_port),
         "clientid": client_id or f"bench-nr-{os.getpid()}", "usetls": False, "protocolVersion": "4",
         "keepalive": "60", "cleansession": clean, "autoConnect": True,
         "autoUnsubscribe": clean},  # else its close at shutdown unsubscribes the persistent session
        {"id": "in1", "type": "mqtt in", "z": "t1", "topic": FILTER, "qos": "1", "datatype": "json",
         "broker": "b1", "nl": False, "rap": True, "inputs": 0, "wires": [["f1"]]},
        {"id": "f1", "type": "function", "z": "t1", "func": FUNCTION, "outputs": 1, "wires": [["o1"]]},
        {"id": "o1", "type": "mqtt out", "z": "t1", "topic": "", "qos": "1", "retain": "false",
         "broker": "b1", "wires": []},
    ]  # fmt: skip
    (folder / "flows.json").write_text(json.dumps(flow))
    (folder / "settings.js").write_text(
        "module.exports = {\n"
        f"  uiHost: '{HOST}', uiPort: {http_port}, flowFile: 'flows.json', credentialSecret: false,\n"
        "  disableEditor: true, httpAdminRoot: false, httpNodeRoot: false,\n"
        "  logging: {console: {level: 'warn', metrics: false, audit: false}},\n"
        "};\n"
    )


@dataclass(frozen=True)
class FlowRun:
    rate: float  # messages / (first publish → last transition seen)
    transitions: int
    publish_rate: float


async def _count_outputs(
    broker_port: int, expected: int, ready: asyncio.Event, limit: float
) -> tuple[float, int]:
    count, last = 0, 0.0
    async with aiomqtt.Client(HOST, broker_port, identifier=f"bench-nr-count-{os.getpid()}") as client:
        await client.subscribe("bench/out/#", qos=1)
        ready.set()
        async with asyncio.timeout(limit):
            async for _message in client.messages:
                count += 1
                last = time.time()
                if count >= expected:
                    break
    return last, count


TRANSITIONS = frozenset({"opened", "alarm_reactivated", "alarm_returned_to_normal"})  # alarm / clear


class Snapshots:
    """A subscriber of the gateway's incident snapshots: the arrival time of each alarm and clear, told
    by the change's timeline events (escalation updates carry others). Retained copies are skipped."""

    def __init__(self, port: int, limit: float) -> None:
        self.port, self.limit = port, limit
        self.times: list[float] = []
        self.snapshots = 0
        self.ready = asyncio.Event()

    async def run(self, done: Callable[[int], bool]) -> None:
        """Until `done(transitions seen)`."""
        async with aiomqtt.Client(HOST, self.port, identifier=f"bench-snapshots-{os.getpid()}") as client:
            await client.subscribe(SNAPSHOTS, qos=1)
            self.ready.set()
            async with asyncio.timeout(self.limit):
                async for message in client.messages:
                    if message.retain or not isinstance(message.payload, bytes) or not message.payload:
                        continue
                    self.snapshots += 1
                    events = orjson.loads(message.payload)["events"]
                    now = time.time()
                    self.times += [now for e in events if e["action"] in TRANSITIONS]
                    if done(len(self.times)):
                        return


async def run_node_red(broker_port: int, tmp: Path, count: int, estates: int, devices: int) -> FlowRun:
    user_dir = tmp / "node-red-user"
    write_user_dir(user_dir, broker_port, free_port())
    log = tmp / "node-red.log"
    proc = _start(user_dir, log)
    try:
        await _probe(broker_port, proc, log)
        estates, devices = fit(count, estates, devices)
        work, _ = messages(estates, devices, count)
        expected = transitions(work)  # every alarm and every clear
        ready = asyncio.Event()
        counter = asyncio.create_task(_count_outputs(broker_port, expected, ready, 120 + count / 1000))
        await ready.wait()
        publisher = PacedPublisher(broker_port, f"bench-nr-pub-{os.getpid()}", work, 0)
        publisher.start()
        published = await asyncio.to_thread(publisher.result)
        try:
            last, seen = await counter
        except TimeoutError as exc:
            raise BenchError("Node-RED: not every transition came back within the limit") from exc
        return FlowRun(count / (last - published.started), seen, published.rate)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _start(user_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("w") as out:
        return subprocess.Popen(
            [str(BIN), "--userDir", str(user_dir), "--settings", str(user_dir / "settings.js")],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def _tail(log: Path) -> str:
    try:
        return log.read_text()[-500:]
    except OSError as exc:
        return str(exc)


async def _probe(broker_port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Until Node-RED's flow answers: alarm then clear a probe topic every 0.5 s (at most 60 s)."""
    topic = "estate/probe/septic_pressure/probe/state"
    async with aiomqtt.Client(HOST, broker_port, identifier=f"bench-nr-probe-{os.getpid()}") as client:
        await client.subscribe("bench/out/#", qos=1)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BenchError(f"Node-RED exited ({proc.returncode}): {_tail(log)}")
            await client.publish(topic, '{"level": 150, "t": 0}', qos=1)
            try:
                async with asyncio.timeout(0.5):
                    async for _message in client.messages:
                        await client.publish(topic, '{"level": 20, "t": 0}', qos=1)
                        async with asyncio.timeout(5):
                            async for _clear in client.messages:
                                return
            except TimeoutError:
                continue
    raise BenchError(f"Node-RED's flow did not answer within 60 s: {_tail(log)}")


async def run_gateway(
    broker_port: int, tmp: Path, count: int, estates: int, devices: int, tag: str
) -> FlowRun:
    estates, devices = fit(count, estates, devices)
    work, _ = messages(estates, devices, count)
    expected = transitions(work)  # every alarm and every clear
    config = build_config(
        broker_port, tmp / f"flow-{tag}.db", estates, devices, f"bench-flow-{tag}", MQTT_TUNING
    )
    app, stop = App(config), asyncio.Event()
    task = asyncio.create_task(app.run(stop))
    seen: list[float] = []
    recorder: asyncio.Task[None] | None = None
    try:
        await _wait_until(app.ready.is_set, 15, task, lambda: "gateway never got ready")
        await _wait_until(lambda: _connected(app), 15, task, lambda: "gateway never connected")
        await asyncio.sleep(0.5)
        sub = app.live.subscribe(maxsize=1_000_000)

        async def record() -> None:
            while True:
                item: Any = await sub.get()
                body = getattr(item, "body", None)
                if isinstance(body, IncidentUpdate):
                    seen.append(time.time())

        recorder = asyncio.create_task(record())
        outputs = Snapshots(broker_port, 120 + count / 1000)
        counter = asyncio.create_task(outputs.run(lambda seen: seen >= expected))
        await outputs.ready.wait()
        publisher = PacedPublisher(broker_port, f"bench-flow-pub-{tag}", work, 0)
        publisher.start()
        published = await asyncio.to_thread(publisher.result)
        await _wait_until(
            lambda: len(seen) >= expected, 60 + count / 1000, task, lambda: f"{len(seen)}/{expected} changes"
        )
        try:
            await counter
        except TimeoutError as exc:
            raise BenchError(f"gateway: {len(outputs.times)}/{expected} transitions arrived in time") from exc
    finally:
        if recorder is not None:
            recorder.cancel()
        await _stop_app(stop, task)
    return FlowRun(count / (outputs.times[-1] - published.started), len(outputs.times), published.rate)
