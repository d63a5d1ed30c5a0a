#!/usr/bin/env python3
"""Sustained MQTT ingest throughput: the gateway's real path beside a bare aiomqtt subscriber.

What is measured
    * baseline: a bare ``aiomqtt.Client`` that iterates ``client.messages`` and counts (aiomqtt acks
      each QoS 1 message itself, as soon as it is received);
    * gateway: the real ``gateway.runtime.app.App`` (MQTT ingress with manual acks → JSON decode through
      the ``generic_access_gate`` profile → ingest queue → alert engine → incident service → SQLite
      commit → PUBACK), built from a GatewayConfig with E estates × D access gates.

Method (identical for both consumers, on one private Mosquitto started for this run)
    a. connect the consumer once with its fixed client id and clean_session=False, subscribe at QoS 1
       to one filter per device, disconnect: the broker now holds a persistent, offline session;
       (the gateway creates its session itself: the App runs until connected and subscribed, then stops)
    b. a separate publisher process (paho-mqtt) publishes N messages at QoS 1 and waits for every
       PUBACK, so the broker has queued all N for the offline session before anything is timed;
    c. start the consumer and time how long it takes to drain all N: the baseline counts N messages,
       the gateway's pipeline counts the exact number of decoded items (2 readings per state message,
       1 event per event message). Rate = N / drain time.

The workload is round-robin over the devices: 99 % state messages ``{"door_open": false, "tamper":
false}`` and 1 % ``{"event": "door_forced"}`` on the event channel, which raise gate_door_forced and so
open (and then re-activate) incidents that are committed to SQLite. Baseline and gateway runs alternate
within each repeat, each with fresh client ids (and, for the gateway, a fresh SQLite file).

Run:  .venv/bin/python bench/ingest_throughput.py [--quick] [--messages N] [--repeats R]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import multiprocessing
import os
import random
import resource
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from child import BenchError
from machine import cpu_model, version_of  # bench/machine.py: run as a script, bench/ is on sys.path

from gateway.config import ConfigError, GatewayConfig, parse_config
from gateway.runtime import heap
from gateway.runtime.app import App
from gateway.runtime.broker import BrokerError, MosquittoProcess, find_mosquitto, free_port

HOST = "127.0.0.1"
EVENT_SHARE = 0.01  # about 1 % of the messages are alarm-worthy events
STATE_PAYLOAD = b'{"door_open": false, "tamper": false}'
EVENT_PAYLOAD = b'{"event": "door_forced"}'
BROKER_QUEUE_LIMIT = 100_000  # max_queued_messages written by MosquittoProcess
CONNECT_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0
POLL_INTERVAL = 0.005
SESSION_SETTLE = 0.5  # after the gateway reports "connected", let its SUBSCRIBE complete
SYSTEM_BROKER_PORT = 1883  # never ours: a system broker may listen there


# -- workload -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """Everything needed to rebuild the exact message sequence (also in the publisher process)."""

    messages: int
    estates: int
    devices: int
    seed: int = 20240601

    @property
    def device_ids(self) -> list[tuple[str, str]]:
        return [(f"e{e}", f"gate-{d:03d}") for e in range(self.estates) for d in range(self.devices)]

    @property
    def events(self) -> int:
        return max(1, round(self.messages * EVENT_SHARE))

    @property
    def expected_items(self) -> int:
        """Decoded items the gateway must process: 2 readings per state message, 1 per event."""
        return 2 * (self.messages - self.events) + self.events

    @property
    def readings(self) -> int:
        return 2 * (self.messages - self.events)

    def filters(self) -> list[str]:
        return [f"estate/{estate}/access_gate/{device}/+" for estate, device in self.device_ids]

    def build(self) -> list[tuple[str, bytes]]:
        """Round-robin over devices; the event positions are a seeded random sample (exactly 1 %)."""
        ids = self.device_ids
        event_at = set(random.Random(self.seed).sample(range(self.messages), self.events))
        out: list[tuple[str, bytes]] = []
        for i in range(self.messages):
            estate, device = ids[i % len(ids)]
            if i in event_at:
                out.append((f"estate/{estate}/access_gate/{device}/event", EVENT_PAYLOAD))
            else:
                out.append((f"estate/{estate}/access_gate/{device}/state", STATE_PAYLOAD))
        return out


def gateway_config(work: Workload, port: int, client_id: str, store_path: Path) -> GatewayConfig:
    """The site file a real install would have, with the store in a temp dir and the API off."""
    lines = [
        "gateway_id: bench-gw",
        f"mqtt: {{host: {HOST}, port: {port}, client_id: {client_id}}}",
        f'store: {{path: "{store_path}"}}',
        "api: {enabled: false}",
        "estates:",
    ]
    for e in range(work.estates):
        lines += [f"  - id: e{e}", f"    name: {{zh: 基准小区{e}, en: Bench estate {e}}}", "    devices:"]
        for d in range(work.devices):
            device = f"gate-{d:03d}"
            topic = f"estate/e{e}/access_gate/{device}/+"
            lines.append(
                f"      - {{id: {device}, family: access_gate, profile: generic_access_gate,"
                f' mqtt: {{topic: "{topic}"}}}}'
            )
    return parse_config("\n".join(lines) + "\n", "bench.yaml", {})


# -- publisher (a separate process) ---------------------------------------------------------------


def _publish_all(port: int, client_id: str, work: Workload, timeout: float) -> float:
    """Publish the workload at QoS 1 and wait for every PUBACK; returns the elapsed seconds."""
    messages = work.build()
    connected, all_acked = threading.Event(), threading.Event()
    acked = 0

    def on_connect(client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if not reason.is_failure:
            connected.set()

    def on_publish(client: paho.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        nonlocal acked
        acked += 1
        if acked == len(messages):
            all_acked.set()

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    client.max_inflight_messages_set(1000)
    client.on_connect, client.on_publish = on_connect, on_publish
    client.connect(HOST, port)
    client.loop_start()
    try:
        if not connected.wait(CONNECT_TIMEOUT):
            raise BenchError(f"publisher could not connect to {HOST}:{port}")
        start = time.perf_counter()
        for topic, payload in messages:
            info = client.publish(topic, payload, qos=1)
            if info.rc != paho.MQTT_ERR_SUCCESS:
                raise BenchError(f"publish failed: {paho.error_string(info.rc)}")
        if not all_acked.wait(timeout):
            raise BenchError(f"publisher: only {acked}/{len(messages)} PUBACKs within {timeout:g}s")
        return time.perf_counter() - start
    finally:
        client.disconnect()
        client.loop_stop()


def _publisher_main(port: int, client_id: str, work: Workload, timeout: float, conn: Connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; it terminates us if need be
    result: tuple[str, float | str]
    try:
        result = ("ok", _publish_all(port, client_id, work, timeout))
    except Exception as exc:  # reported to the parent, which fails the run with it
        result = ("error", str(exc) if isinstance(exc, BenchError) else f"{type(exc).__name__}: {exc}")
    with contextlib.suppress(OSError):  # the parent may have gone (interrupted)
        conn.send(result)
    conn.close()


def publish(port: int, client_id: str, work: Workload, timeout: float) -> float:
    """Run the publisher in its own process (spawned: no inherited threads); returns its seconds."""
    ctx = multiprocessing.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(
        target=_publisher_main, args=(port, client_id, work, timeout, sender), name="bench-publisher"
    )
    proc.start()
    sender.close()
    try:
        if not receiver.poll(timeout + CONNECT_TIMEOUT):
            raise BenchError(f"publisher process did not finish within {timeout + CONNECT_TIMEOUT:g}s")
        status, value = receiver.recv()
    except EOFError:
        status, value = "error", "publisher process died without a report"
    finally:
        receiver.close()
        proc.join(5)
        if proc.is_alive():
            proc.terminate()
            proc.join(5)
    if status != "ok":
        raise BenchError(f"{value} (publisher exit code {proc.exitcode})")
    return float(value)


# -- baseline: bare aiomqtt subscriber --------------------------------------------------------------


def _bare_client(port: int, client_id: str) -> aiomqtt.Client:
    return aiomqtt.Client(HOST, port, identifier=client_id, clean_session=False, timeout=CONNECT_TIMEOUT)


async def bare_create_session(port: int, client_id: str, filters: list[str]) -> None:
    async with asyncio.timeout(CONNECT_TIMEOUT), _bare_client(port, client_id) as client:
        await client.subscribe([(f, 1) for f in filters])


@dataclass(frozen=True)
class Drain:
    seconds: float
    cpu_seconds: float  # CPU time of this process (all threads) during the drain

    @property
    def cpu_share(self) -> float:
        return self.cpu_seconds / self.seconds


async def bare_drain(port: int, client_id: str, expected: int, limit_s: float) -> Drain:
    """Connect to the queued session and count `expected` messages."""
    count, drain = 0, None
    start, cpu = time.perf_counter(), time.process_time()
    try:
        async with asyncio.timeout(limit_s), _bare_client(port, client_id) as client:
            async for _message in client.messages:
                count += 1
                if count == expected:
                    drain = Drain(time.perf_counter() - start, time.process_time() - cpu)
                    break
    except TimeoutError as exc:
        raise BenchError(f"bare subscriber: {count}/{expected} messages within {limit_s:g}s") from exc
    if drain is None:
        raise BenchError(f"bare subscriber: message stream ended after {count}/{expected} messages")
    return drain


# -- gateway: the real App ------------------------------------------------------------------------


@dataclass(frozen=True)
class GatewayRun:
    drain: Drain
    half_seconds: float  # time until half the items were processed
    peak_backlog: int  # received but not yet taken by the pipeline (unacked), sampled
    items: int
    opened: int
    incident_rows: int
    timeline_rows: int
    batches: int
    commits: int
    queue_high_water: int


async def _wait_until(
    predicate: Callable[[], bool], limit_s: float, task: asyncio.Task[None], what: Callable[[], str]
) -> None:
    """Poll `predicate`; fail after `limit_s` or if the App's task ended (crashed) in the meantime."""
    deadline = time.perf_counter() + limit_s
    while not predicate():
        if task.done():
            exc = task.exception()
            raise BenchError(f"gateway stopped unexpectedly: {exc!r}; {what()}") from exc
        if time.perf_counter() > deadline:
            raise BenchError(f"timed out after {limit_s:g}s: {what()}")
        await asyncio.sleep(POLL_INTERVAL)


async def _started(app: App, task: asyncio.Task[None]) -> None:
    """Wait for `ready`, then freeze the start-up heap as `estate-gateway run` does (runtime/heap.py)."""
    await _wait_until(app.ready.is_set, CONNECT_TIMEOUT, task, lambda: "gateway never got ready")
    heap.freeze_startup_heap()


async def _stop_app(stop: asyncio.Event, task: asyncio.Task[None]) -> None:
    stop.set()
    try:
        await asyncio.wait_for(task, STOP_TIMEOUT)
    except TimeoutError as exc:
        raise BenchError(f"gateway did not stop within {STOP_TIMEOUT:.0f}s") from exc
    finally:
        heap.thaw()  # the next App of this process starts with a collectable heap


def _connected(app: App) -> bool:
    return app.mqtt is not None and app.mqtt.connected


async def gateway_create_session(config: GatewayConfig) -> None:
    """Run the App until its MQTT client has connected and subscribed, then stop it."""
    app, stop = App(config), asyncio.Event()
    task = asyncio.create_task(app.run(stop))
    try:
        await _wait_until(lambda: _connected(app), CONNECT_TIMEOUT, task, lambda: "gateway never connected")
        await asyncio.sleep(SESSION_SETTLE)
    finally:
        await _stop_app(stop, task)


def _progress(app: App, expected: int) -> str:
    errors = sum(sum(s.errors.values()) for _key, s in app.stats.items())
    unrouted = app.mqtt.unrouted if app.mqtt else 0
    return (
        f"gateway processed {app.pipeline.items}/{expected} items "
        f"(decode errors {errors}, unrouted {unrouted}, queue depth {app.queue.depth})"
    )


def _aiomqtt_backlog(app: App) -> int:
    """Messages read from the broker that the ingress has not taken yet (bounded by mqtt.max_backlog)."""
    return app.mqtt.backlog if app.mqtt is not None else 0


class _DrainWatch:
    """Predicate for `_wait_until` that also notes the half-way time and the peak in-process backlog."""

    def __init__(self, app: App, expected: int) -> None:
        self.app, self.expected = app, expected
        self.half_at = 0.0
        self.peak_backlog = 0

    def __call__(self) -> bool:
        items = self.app.pipeline.items
        if not self.half_at and items * 2 >= self.expected:
            self.half_at = time.perf_counter()
        self.peak_backlog = max(self.peak_backlog, self.app.queue.depth + _aiomqtt_backlog(self.app))
        return items >= self.expected


def _count_rows(store_path: Path, table: str) -> int:
    conn = sqlite3.connect(store_path)
    try:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


async def gateway_drain(config: GatewayConfig, expected: int, limit_s: float) -> GatewayRun:
    """Start a fresh App on the queued session; time from `ready` to `expected` items processed."""
    app, stop = App(config), asyncio.Event()
    task = asyncio.create_task(app.run(stop))
    try:
        await _started(app, task)
        watch = _DrainWatch(app, expected)
        start, cpu = time.perf_counter(), time.process_time()
        await _wait_until(watch, limit_s, task, lambda: _progress(app, expected))
        drain = Drain(time.perf_counter() - start, time.process_time() - cpu)
    finally:
        await _stop_app(stop, task)  # flushes the pipeline and closes the store: counters are final
    if app.pipeline.items != expected:
        raise BenchError(f"gateway processed {app.pipeline.items} items, expected exactly {expected}")
    return GatewayRun(
        drain=drain,
        half_seconds=watch.half_at - start,
        peak_backlog=watch.peak_backlog,
        items=app.pipeline.items,
        opened=app.service.opened,
        incident_rows=_count_rows(Path(app.store.path), "incidents"),
        timeline_rows=_count_rows(Path(app.store.path), "timeline"),
        batches=app.pipeline.batches,
        commits=app.store.commits,
        queue_high_water=app.queue.high_water,
    )


# -- one repeat -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Repeat:
    publish_seconds: list[float]
    bare: Drain
    gateway: GatewayRun


def run_bare(port: int, work: Workload, repeat: int, timeout: float) -> tuple[float, Drain]:
    client_id = f"bench-bare-{repeat}"
    asyncio.run(bare_create_session(port, client_id, work.filters()))
    published = publish(port, f"bench-pub-bare-{repeat}", work, timeout)
    return published, asyncio.run(bare_drain(port, client_id, work.messages, timeout))


def run_gateway(
    port: int, work: Workload, repeat: int, timeout: float, tmp: Path
) -> tuple[float, GatewayRun]:
    store = tmp / f"gateway-{repeat}" / "bench.db"
    config = gateway_config(work, port, f"bench-gw-{repeat}", store)
    asyncio.run(gateway_create_session(config))
    published = publish(port, f"bench-pub-gw-{repeat}", work, timeout)
    result = asyncio.run(gateway_drain(config, work.expected_items, timeout))
    if result.opened <= 0 or result.incident_rows != result.opened:
        raise BenchError(
            f"expected incidents: opened={result.opened}, rows in SQLite={result.incident_rows} "
            f"(rule gate_door_forced should open one per device that saw door_forced)"
        )
    return published, result


def run_repeat(port: int, work: Workload, repeat: int, timeout: float, tmp: Path) -> Repeat:
    pub_bare, bare = run_bare(port, work, repeat, timeout)
    print(f"  repeat {repeat + 1}: bare {work.messages / bare.seconds:>10,.0f} msgs/s", end="", flush=True)
    pub_gw, gateway = run_gateway(port, work, repeat, timeout, tmp)
    print(f"   gateway {work.messages / gateway.drain.seconds:>10,.0f} msgs/s", flush=True)
    return Repeat([pub_bare, pub_gw], bare, gateway)


# -- report ---------------------------------------------------------------------------------------


def mosquitto_version() -> str:
    binary = find_mosquitto()
    if binary is None:
        return "not found"
    try:
        done = subprocess.run([binary, "-h"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    return lines[0].strip() if lines else "unknown"


def machine_facts() -> list[tuple[str, str]]:
    return [
        ("CPU", cpu_model()),
        ("cores", str(os.cpu_count())),
        ("Python", sys.version.split()[0]),
        ("paho-mqtt", version_of("paho-mqtt")),
        ("aiomqtt", version_of("aiomqtt")),
        ("pymodbus", version_of("pymodbus")),
        ("mosquitto", mosquitto_version()),
    ]


def _spread(rates: list[float]) -> tuple[float, float, float]:
    return statistics.median(rates), min(rates), max(rates)


def _row(label: str, rates: list[float], extra: str = "") -> str:
    med, lo, hi = _spread(rates)
    return f"{label:<30}{med:>12,.0f}{lo:>12,.0f}{hi:>12,.0f}  msgs/s{extra}"


def _listing(values: list[Any], fmt: str = "{}") -> str:
    return ", ".join(fmt.format(v) for v in values)


def print_machine() -> None:
    print("machine")
    for key, value in machine_facts():
        print(f"  {key:<12}{value}")


def print_table(work: Workload, repeats: list[Repeat]) -> None:
    bare = [work.messages / r.bare.seconds for r in repeats]
    gw = [work.messages / r.gateway.drain.seconds for r in repeats]
    items = [work.expected_items / r.gateway.drain.seconds for r in repeats]
    ratio = statistics.median(gw) / statistics.median(bare)
    print(
        f"workload: {work.messages:,} QoS 1 messages queued in a persistent session, "
        f"{work.estates} estates x {work.devices} access gates, {work.events:,} door_forced events "
        f"({work.expected_items:,} items), {len(repeats)} repeat(s)"
    )
    print()
    print(f"{'':<30}{'median':>12}{'min':>12}{'max':>12}")
    print(_row("bare aiomqtt subscriber", bare))
    print(_row("gateway MQTT→rules→incidents", gw, f"   {statistics.median(items):>10,.0f} readings/s"))
    print(f"{'ratio gateway/bare':<30}{ratio:>12.1%}")


def print_info(work: Workload, repeats: list[Repeat]) -> None:
    g = [r.gateway for r in repeats]
    half = work.messages / 2
    pub = statistics.median(work.messages / s for r in repeats for s in r.publish_seconds)
    bare_cpu = _listing([r.bare.cpu_share for r in repeats], "{:.0%}")
    gw_cpu = _listing([x.drain.cpu_share for x in g], "{:.0%}")
    halves = [f"{half / x.half_seconds:,.0f} / {half / (x.drain.seconds - x.half_seconds):,.0f}" for x in g]
    writes = [f"{x.timeline_rows} / {x.commits}" for x in g]
    print("info")
    print(f"  readings/s counts every decoded item: {work.readings:,} readings + {work.events:,} events")
    print(f"  publisher (paho, own process, until all PUBACKs): median {pub:,.0f} msgs/s")
    print(f"  consumer CPU / wall during drain (this process): bare {bare_cpu}; gateway {gw_cpu}")
    print(f"  gateway msgs/s over 1st / 2nd half of the drain: {_listing(halves)}")
    print(
        "  gateway peak unacked backlog in process (ingest + aiomqtt queues): "
        f"{_listing([x.peak_backlog for x in g], '{:,}')}"
    )
    print(f"  ingest queue high water (limit 10,000): {_listing([x.queue_high_water for x in g], '{:,}')}")
    print(f"  pipeline batches per run: {_listing([x.batches for x in g], '{:,}')}")
    print(f"  incidents opened per gateway run: {_listing([x.opened for x in g])} (rows in SQLite match)")
    print(f"  timeline rows / SQLite commits per run: {_listing(writes)}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak RSS of this process: {peak:,.1f} MiB (publisher and broker are separate processes)")


def report(work: Workload, repeats: list[Repeat]) -> None:
    print()
    print_machine()
    print()
    print_table(work, repeats)
    print()
    print_info(work, repeats)


# -- main -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="5,000 messages, 1 repeat (a smoke run)")
    parser.add_argument("--messages", type=int, help="messages per run (default 50,000; --quick 5,000)")
    parser.add_argument("--repeats", type=int, help="repeats (default 3; --quick 1)")
    parser.add_argument("--estates", type=int, default=4, help="estates (default 4)")
    parser.add_argument("--devices", type=int, default=25, help="access gates per estate (default 25)")
    parser.add_argument("--timeout", type=float, help="seconds per publish or drain (default 30+N/500)")
    args = parser.parse_args(argv)
    args.messages = args.messages or (5_000 if args.quick else 50_000)
    args.repeats = args.repeats or (1 if args.quick else 3)
    if not 100 <= args.messages <= BROKER_QUEUE_LIMIT:
        parser.error(f"--messages must be 100..{BROKER_QUEUE_LIMIT} (the broker's queue limit)")
    if args.repeats < 1 or args.estates < 1 or args.devices < 1:
        parser.error("--repeats, --estates and --devices must be at least 1")
    args.timeout = args.timeout or 30.0 + args.messages / 500
    return args


def private_port() -> int:
    """A free port that is not the system broker's."""
    for _ in range(10):
        port = free_port()
        if port != SYSTEM_BROKER_PORT:
            return port
    raise BenchError("could not find a free port for the private broker")


def run(args: argparse.Namespace) -> None:
    work = Workload(args.messages, args.estates, args.devices)
    broker = MosquittoProcess(port=private_port())
    try:
        broker.start()
        print(f"private mosquitto on {HOST}:{broker.port} (pid {broker.pid})", flush=True)
        with tempfile.TemporaryDirectory(prefix="eg-bench-") as tmp:
            repeats = [run_repeat(broker.port, work, r, args.timeout, Path(tmp)) for r in range(args.repeats)]
        report(work, repeats)
    except Exception:
        tail = broker.log_text()[-1000:].strip()
        if tail:
            print(f"mosquitto log (tail):\n{tail}", file=sys.stderr)
        raise
    finally:
        broker.close()


def _term_as_int(signum: int, frame: object) -> None:
    """SIGTERM takes SIGINT's path: asyncio cancels the running phase cleanly, `finally` stops the broker."""
    signal.raise_signal(signal.SIGINT)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _term_as_int)
    args = parse_args(argv)
    try:
        run(args)
    except (BenchError, BrokerError, ConfigError, aiomqtt.MqttError, OSError) as exc:
        print(f"ingest_throughput: FAILED: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ingest_throughput: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
