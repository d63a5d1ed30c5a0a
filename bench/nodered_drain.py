"""Node-RED against the gateway on a queued session: the same flow, both draining the same backlog.

nodered.py feeds both from one paho publisher as fast as it goes, and since issue 9 that publisher
(about 13,000 msgs/s) is slower than either consumer: both figures are then the publisher's. Here, as in
ingest_throughput.py, the input is queued first: each consumer gets a persistent session (Node-RED's
broker node with ``cleansession: false`` and a fixed client id; the gateway's own), is stopped, the
workload is published and acknowledged by the broker, then the consumer starts and drains it. Rate =
messages between the first and the last transition of the workload / time between their outputs'
arrival at a subscriber (Node-RED's ``bench/out/#``, the gateway's own incident snapshots, counted as in
nodered.py): start-up time (Node-RED's is seconds) is left out for both.

``drain_cluster`` is the issue's "split the work": the same drain with the estates over several gateway
instances (issue 10's cluster mode, PostgreSQL). Every drain also reports the cores each process group
used between its first and last output (``machine.CpuSampler``), so a figure can be read against what
the 2 cores had left to give.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import subprocess
import time
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiomqtt
from child import BenchError, child_reply, close_child
from feed_latency import MQTT_TUNING, build_config, config_text, fit, messages
from ingest_throughput import _started, _stop_app, _wait_until, gateway_create_session
from machine import CpuSampler
from nodered import HOST, Snapshots, _probe, _start, write_user_dir
from paced import PacedPublisher

from drivers.transports.mqtt import BrokerSettings, _session_options
from drivers.transports.mqtt_inbox import Inbox
from gateway.runtime.app import App
from gateway.runtime.broker import MosquittoProcess, free_port
from tests.integration.cluster_gateway import Instance, split_evenly

CHUNK = 60_000  # messages per publisher


@dataclass(frozen=True)
class DrainRun:
    rate: float  # messages / s between the first and the last transition's output
    outputs: int
    coalesced: int = 0
    cpu: dict[str, float] | None = None  # cores used while draining, by process group


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
    """Every transition must have arrived. `coalesced`: snapshots the gateway's egress merged (a newer
    snapshot of an incident replaced a waiting one and carries its events too): information only."""
    idx = transition_indexes(work)
    if len(times) != len(idx):
        raise BenchError(f"{len(times)} outputs for {len(idx)} transitions")
    return DrainRun((idx[-1] - idx[0]) / (times[-1] - times[0]), len(times), coalesced)


async def _queue(port: int, work: list[tuple[str, str]], tag: str) -> None:
    """Unpaced, in chunks: one paho client reuses packet ids past 65,535 unacknowledged messages."""
    for n, start in enumerate(range(0, len(work), CHUNK)):
        publisher = PacedPublisher(port, f"bench-drain-pub-{tag}-{n}", work[start : start + CHUNK], 0)
        publisher.start()
        await asyncio.to_thread(publisher.result)


async def drain_node_red(
    port: int, tmp: Path, count: int, estates: int, devices: int, tag: str, broker_pid: int | None = None
) -> DrainRun:
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
    sampler = CpuSampler({"node-red": [proc.pid], **_broker(broker_pid)})
    sampler.start()
    try:
        await counter
    except TimeoutError as exc:
        raise BenchError(f"Node-RED drain: {len(outputs.times)} outputs in time") from exc
    finally:
        await sampler.stop()
        _stop(proc)
    return _with_cpu(_rate(work, outputs.times), sampler, outputs.times, "subscriber")


class SnapshotsChild:
    """nodered.Snapshots in a child process: the output subscriber of the one-process drain must not
    share the gateway's event loop and core (Node-RED's subscriber is not in Node-RED's process either).
    The child answers with the arrival times once it has seen `expected` transitions."""

    def __init__(self, port: int, limit: float, expected: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child_conn = ctx.Pipe()
        self.proc = ctx.Process(
            target=_snapshots_main, args=(port, limit, expected, child_conn), name="bench-snapshots"
        )
        self._child_conn = child_conn

    async def start(self) -> None:
        self.proc.start()
        self._child_conn.close()
        await asyncio.to_thread(child_reply, self.conn, self.proc, "snapshot subscriber", 20, "ready")

    def answered(self) -> bool:
        return self.conn.poll()

    def times(self) -> list[float]:
        value: list[float] = child_reply(self.conn, self.proc, "snapshot subscriber", 5, "times")
        return value

    def close(self) -> None:
        close_child(self.conn, self.proc)


def _snapshots_main(port: int, limit: float, expected: int, conn: Connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        conn.send(("times", asyncio.run(_snapshots_until(port, limit, expected, conn))))
    except Exception as exc:
        with contextlib.suppress(OSError):
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
    conn.close()


async def _snapshots_until(port: int, limit: float, expected: int, conn: Connection) -> list[float]:
    outputs = Snapshots(port, limit)
    task = asyncio.create_task(outputs.run(lambda seen: seen >= expected))
    await outputs.ready.wait()
    conn.send(("ready", None))
    await task  # a timeout is the error
    return outputs.times


async def drain_gateway(
    port: int, tmp: Path, count: int, estates: int, devices: int, tag: str, broker_pid: int | None = None
) -> DrainRun:
    estates, devices = fit(count, estates, devices)
    work, _ = messages(estates, devices, count)
    config = build_config(
        port, tmp / f"drain-{tag}.db", estates, devices, f"bench-drain-gw-{tag}", MQTT_TUNING
    )
    await gateway_create_session(config)
    await _queue(port, work, f"gw-{tag}")
    limit = 120 + count / 1000
    expected = len(transition_indexes(work))
    outputs = SnapshotsChild(port, limit, expected)
    await outputs.start()
    app, stop = App(config), asyncio.Event()
    task = asyncio.create_task(app.run(stop))
    sampler = CpuSampler({**_broker(broker_pid), "subscriber": [outputs.proc.pid or 0]})
    sampler.start()
    try:
        await _started(app, task)
        await _wait_until(outputs.answered, limit, task, lambda: f"{expected} outputs expected")
        times = outputs.times()
        coalesced = app.egress.outbox.replaced if app.egress else 0
    finally:
        await sampler.stop()
        outputs.close()
        await _stop_app(stop, task)
    return _with_cpu(_rate(work, times, coalesced), sampler, times, "gateway")


def _broker(pid: int | None) -> dict[str, list[int]]:
    """The broker's process group for a CpuSampler, where its pid is known."""
    return {"broker": [pid]} if pid else {}


def _with_cpu(run: DrainRun, sampler: CpuSampler, times: list[float], own: str) -> DrainRun:
    """`run` with the cores each process group used between the first and the last output."""
    cores = sampler.cores(times[0], times[-1])
    if "own" in cores:
        cores[own] = cores.pop("own")
    return replace(run, cpu=cores)


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


# -- the same drain, the estates split over several gateway instances (issue 10's cluster mode) ------


def cluster_config_text(port: int, dsn: str, estates: int, devices: int, client_id: str, lease: float) -> str:
    """feed_latency's site as a cluster site: PostgreSQL, leases, the instance id and API port from the
    environment (tests/integration/cluster_gateway.py runs it)."""
    swap = {
        "gateway_id: bench-gw": "gateway_id: ${GATEWAY_ID}",
        "  port: 0": '  port: "${API_PORT}"',
    }
    lines = [
        swap.get(line, line)
        for line in config_text(port, Path("-"), estates, devices, client_id, MQTT_TUNING).splitlines()
    ]
    lines = [
        f'store: {{engine: postgres, dsn: "{dsn}", pool_max: 4}}' if x.startswith("store:") else x
        for x in lines
    ]
    lines.insert(1, f"cluster: {{enabled: true, lease_seconds: {lease}, renew_interval: 1.0}}")
    return "\n".join(lines) + "\n"


async def _owning(nodes: list[Instance], estates: int, within: float) -> None:
    """Until every instance answers and owns its share of the estates."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for node in nodes:
            if not node.running:
                raise BenchError(f"{node.name} exited: {node.tail(10)}")
        if await split_evenly(nodes, estates):
            return
        await asyncio.sleep(0.1)
    raise BenchError(f"the instances did not split {estates} estates within {within:.0f}s")


@dataclass(frozen=True)
class Cluster:
    broker: MosquittoProcess
    postgres_pid: int
    dsn: str
    nodes: int


async def drain_cluster(
    cluster: Cluster, tmp: Path, count: int, estates: int, devices: int, tag: str
) -> DrainRun:
    """The gateway's drain with the estates split over `cluster.nodes` instances (`estate-gateway run`
    subprocesses, cluster mode, one PostgreSQL). Each instance's estates are on MQTT sessions of their
    own: the instances start, split the leases and subscribe, are killed -9 (the leases stay theirs),
    the workload is queued, and they start again. The broker is paused (SIGSTOP) while they start and
    resumed (SIGCONT) once each owns its share, so that they begin draining together: start-up is left
    out, as for one process. `cpu`: cores used during the drain by the instances, the broker,
    PostgreSQL and this process (the output subscriber)."""
    broker = cluster.broker
    estates, devices = fit(count, estates, devices)
    work, _ = messages(estates, devices, count)
    site = tmp / f"cluster-{tag}.yaml"
    lease = 120.0  # longer than the workload takes to queue: the split survives the kill -9
    site.write_text(cluster_config_text(broker.port, cluster.dsn, estates, devices, f"bench-dc-{tag}", lease))
    nodes = [
        Instance(f"gw-{tag}-{n}", site, free_port(), tmp / f"cluster-{tag}-{n}.log")
        for n in range(cluster.nodes)
    ]
    try:
        for node in nodes:
            node.start()
        await _owning(nodes, estates, 90)
        await asyncio.sleep(1.0)  # every estate's session subscribed
        for node in nodes:
            node.kill9()
        await _queue(broker.port, work, f"cl-{tag}")
        expected = len(transition_indexes(work))
        outputs = Snapshots(broker.port, 120 + count / 1000)
        counter = asyncio.create_task(outputs.run(lambda seen: seen >= expected))
        await outputs.ready.wait()
        assert broker.pid is not None
        os.kill(broker.pid, signal.SIGSTOP)
        try:
            for node in nodes:
                node.start()
            await _owning(nodes, estates, 60)
        finally:
            os.kill(broker.pid, signal.SIGCONT)
        sampler = CpuSampler({
            "instances": [n.proc.pid for n in nodes if n.proc], "broker": [broker.pid],
            "postgres": [cluster.postgres_pid],
        }, interval=0.1, children=True)  # fmt: skip
        sampler.start()
        started = time.monotonic()
        try:
            while not counter.done():
                if time.monotonic() - started > 120 + count / 1000 or not all(n.running for n in nodes):
                    raise BenchError(f"cluster drain: {len(outputs.times)}/{expected} outputs")
                await asyncio.sleep(0.2)
            counter.result()
            healths = [await n.get("/health") for n in nodes]
            replaced = sum(int(h.get("mqtt_egress_replaced", 0)) for h in healths if h)
        finally:
            await sampler.stop()
            counter.cancel()
            await asyncio.gather(counter, return_exceptions=True)
    finally:
        for node in nodes:
            node.stop()
    return _with_cpu(_rate(work, outputs.times, replaced), sampler, outputs.times, "subscriber")
