"""Node-RED against the gateway on a queued session: the same flow, both draining the same backlog.

nodered.py feeds both from one paho publisher as fast as it goes, and since issue 9 that publisher
(about 13,000 msgs/s) is slower than either consumer: both figures are then the publisher's. Here, as in
ingest_throughput.py, the input is queued first: each consumer gets a persistent session (Node-RED's
broker node with ``cleansession: false`` and a fixed client id; the gateway's own), is stopped, the
workload is published and acknowledged by the broker, then the consumer starts and drains it. Rate =
messages between the first and the last transition of the workload / time between their outputs'
arrival at a subscriber (Node-RED's ``bench/out/#``, the gateway's own incident snapshots, counted as in
nodered.py): start-up time (Node-RED's is seconds) is left out for both.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
from child import BenchError
from feed_latency import build_config, fit, messages
from ingest_throughput import _stop_app, _wait_until, gateway_create_session
from nodered import HOST, Snapshots, _probe, _start, expected_outputs, write_user_dir
from paced import PacedPublisher

from drivers.transports.mqtt import BrokerSettings, _session_options
from drivers.transports.mqtt_inbox import Inbox
from gateway.runtime.app import App
from gateway.runtime.broker import free_port


@dataclass(frozen=True)
class DrainRun:
    rate: float  # messages / s between the first and the last transition's output
    outputs: int
    coalesced: int = 0


def transition_indexes(work: list[tuple[str, str]]) -> list[int]:
    """Workload positions of every alarm and clear (rule > 100, deadband 5), as feed_latency counts them."""
    active: dict[str, bool] = {}
    out = []
    for i, (topic, payload) in enumerate(work):
        level = float(payload.split(",")[0].split(":")[1])
        was = active.get(topic, False)
        if (not was and level > 100) or (was and level < 95):
            active[topic] = not was
            out.append(i)
    return out


class _Outputs:
    """A subscriber of bench/out/#: arrival times of the outputs."""

    def __init__(self, port: int, expected: int, limit: float) -> None:
        self.port, self.expected, self.limit = port, expected, limit
        self.times: list[float] = []
        self.ready = asyncio.Event()

    async def run(self) -> None:
        async with aiomqtt.Client(HOST, self.port, identifier=f"bench-drain-count-{os.getpid()}") as client:
            await client.subscribe("bench/out/#", qos=1)
            self.ready.set()
            async with asyncio.timeout(self.limit):
                async for _message in client.messages:
                    self.times.append(time.time())
                    if len(self.times) >= self.expected:
                        return


def _rate(work: list[tuple[str, str]], times: list[float], coalesced: int = 0) -> DrainRun:
    """`coalesced`: outputs the gateway's egress may have merged (a newer snapshot of the same incident
    replaced a waiting one); Node-RED has none."""
    idx = transition_indexes(work)
    if not len(idx) - coalesced <= len(times) <= len(idx):
        raise BenchError(f"{len(times)} outputs for {len(idx)} transitions ({coalesced} coalesced)")
    return DrainRun((idx[-1] - idx[0]) / (times[-1] - times[0]), len(times), coalesced)


async def _queue(port: int, work: list[tuple[str, str]], tag: str) -> None:
    publisher = PacedPublisher(port, f"bench-drain-pub-{tag}", work, 0)
    publisher.start()
    await asyncio.to_thread(publisher.result)


async def drain_node_red(port: int, tmp: Path, count: int, estates: int, devices: int, tag: str) -> DrainRun:
    estates, devices = fit(count, estates, devices)
    work, _ = messages(estates, devices, count)
    user_dir, log = tmp / f"node-red-drain-{tag}", tmp / f"node-red-drain-{tag}.log"
    write_user_dir(user_dir, port, free_port(), client_id=f"bench-nr-drain-{tag}", clean=False)
    proc = _start(user_dir, log)
    try:
        await _probe(port, proc, log)  # connected and subscribed: the session exists
    finally:
        _stop(proc)
    await _queue(port, work, f"nr-{tag}")
    outputs = _Outputs(port, len(transition_indexes(work)), 120 + count / 1000)
    counter = asyncio.create_task(outputs.run())
    await outputs.ready.wait()
    proc = _start(user_dir, log)
    try:
        await counter
    except TimeoutError as exc:
        raise BenchError(f"Node-RED drain: {len(outputs.times)} outputs in time") from exc
    finally:
        _stop(proc)
    return _rate(work, outputs.times)


async def drain_gateway(port: int, tmp: Path, count: int, estates: int, devices: int, tag: str) -> DrainRun:
    estates, devices = fit(count, estates, devices)
    work, _ = messages(estates, devices, count)
    config = build_config(port, tmp / f"drain-{tag}.db", estates, devices, f"bench-drain-gw-{tag}")
    await gateway_create_session(config)
    await _queue(port, work, f"gw-{tag}")
    outputs = Snapshots(port, 120 + count / 1000)
    app, stop = App(config), asyncio.Event()
    counter = asyncio.create_task(outputs.run(expected_outputs(app, len(transition_indexes(work)))))
    await outputs.ready.wait()
    task = asyncio.create_task(app.run(stop))
    try:
        await _wait_until(counter.done, 120 + count / 1000, task, lambda: f"{len(outputs.times)} outputs")
        counter.result()
        coalesced = app.egress.outbox.replaced if app.egress else 0
    finally:
        await _stop_app(stop, task)
    return _rate(work, outputs.times, coalesced)


async def drain_ceiling(port: int, tmp: Path, count: int, estates: int, devices: int, tag: str) -> DrainRun:
    """The transport's ceiling: the gateway's own MQTT receive path with nothing behind it (paho +
    `drivers.transports.mqtt_inbox.Inbox`: framing, batches of 200, one PUBACK write per batch, MQTT 5
    persistent session as the gateway's), draining the same queued backlog. No consumer on this
    connection design drains faster; what the gateway loses against it is its work per message."""
    estates, devices = fit(count, estates, devices)
    work, _ = messages(estates, devices, count)
    settings = BrokerSettings(HOST, port, f"bench-drain-ceiling-{tag}", None, None, 30)
    await _inbox_session(settings, 0)  # creates the session
    await _queue(port, work, f"ceil-{tag}")
    times = await _inbox_session(settings, len(work))
    return DrainRun(len(work) / (times[-1] - times[0]), len(times))


async def _inbox_session(settings: BrokerSettings, expected: int) -> list[float]:
    """Connect, subscribe, take and acknowledge `expected` messages (their arrival times), disconnect."""
    client = aiomqtt.Client(
        settings.host, settings.port, identifier=settings.client_id, **_session_options(settings)
    )
    client._client.manual_ack_set(True)
    inbox = Inbox(client, settings.max_backlog)
    inbox.install()
    times: list[float] = []
    async with client:
        await client.subscribe("estate/#", qos=1, timeout=30)
        async with asyncio.timeout(120 + expected / 1000):
            while len(times) < expected:
                await inbox.wait()
                batch = inbox.take(200)
                now = time.time()
                times += [now] * len(batch)
                inbox.ack_many([mid for _, _, mid, qos in batch if qos == 1], len(batch))
    if len(times) != expected:
        raise BenchError(f"transport ceiling: {len(times)}/{expected} messages")
    return times


def _stop(proc: subprocess.Popen[Any]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
