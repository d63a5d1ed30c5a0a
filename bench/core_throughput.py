#!/usr/bin/env python3
"""Alert-core throughput and latency: readings/s with 10 and with 1,000 rules per estate, and the time from
a reading entering the core to its incident being committed (SQLite, WAL) and published on the live feed.

Method. In one process, the real Pipeline (AlertEngine → IncidentService → SqliteStore in a temp dir) is
fed Envelopes directly, in batches like the MQTT ingress produces; no broker, so the figure is the core's
own cost. E estates; in each, the stream touches 10 devices (one threshold rule each). The "1,000 rules"
case adds 990 rules per estate on the estate's other devices and points, which the stream never touches:
with rules indexed by (estate, device, point) the cost per reading must not grow with them. 1% of the
readings cross their limit and back (opening, then returning incidents), so SQLite commits happen.

Every measurement runs in a fresh interpreter: runs in one process drifted (heap growth) by up to 40%.

Latency: one alarm reading at a time, injected between batches of normal traffic; measured from just
before `pipeline.process` to the moment the committed change reaches a live-feed subscriber.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gateway.alerts import AlertEngine, DeviceInfo
from gateway.config.schema import RuleConfig
from gateway.incidents import IncidentFeed, IncidentService
from gateway.ingest import IngestQueue
from gateway.model import Envelope, Reading, SystemClock
from gateway.runtime.pipeline import Pipeline
from gateway.store import SqliteStore

HOT_DEVICES = 10
MSG = {"zh": "超限 {value}", "en": "over limit {value}"}


def _rules(estates: int, per_estate: int) -> tuple[list[RuleConfig], list[DeviceInfo]]:
    rules, devices = [], []
    cold_devices = max(0, (per_estate - HOT_DEVICES + 9) // 10)  # 10 cold rules per cold device
    for e in range(estates):
        estate = f"e{e}"
        for d in range(HOT_DEVICES + cold_devices):
            points = tuple(f"p{i}" for i in range(10))
            devices.append(DeviceInfo(estate, f"d{d}", "generator", points=points))
        for d in range(HOT_DEVICES):
            rules.append(_rule(f"{estate}-hot-{d}", f"{estate}/d{d}", "p0"))
        cold = per_estate - HOT_DEVICES
        for i in range(cold):
            rules.append(_rule(f"{estate}-cold-{i}", f"{estate}/d{HOT_DEVICES + i // 10}", f"p{i % 10}"))
    return rules, devices


def _rule(rule_id: str, device: str, point: str) -> RuleConfig:
    return RuleConfig.model_validate({
        "id": rule_id, "kind": "threshold", "device": device, "point": point, "op": ">", "limit": 100,
        "deadband": 5, "priority": "high", "message": MSG,
    })  # fmt: skip


async def _build(estates: int, per_estate: int, folder: Path) -> tuple[Pipeline, IncidentFeed, SqliteStore]:
    rules, devices = _rules(estates, per_estate)
    clock = SystemClock()
    store = SqliteStore(folder / f"core-{per_estate}.db")
    await store.open()
    feed = IncidentFeed()
    service = IncidentService(store, clock, feed)
    await service.start()
    engine = AlertEngine(rules, devices, clock)
    return Pipeline(IngestQueue(), engine, service), feed, store


def _stream(estates: int, n: int, batch: int) -> list[list[Envelope]]:
    """Batches of one-reading envelopes; every 100th reading crosses the limit, the next one clears it."""
    now = time.time_ns()
    batches, current = [], []
    for i in range(n):
        estate, device = f"e{i % estates}", f"d{(i // estates) % HOT_DEVICES}"
        value = 150.0 if i % 100 == 0 else 20.0 + (i % 7)
        current.append(Envelope([Reading(now + i, estate, device, "p0", value)]))
        if len(current) == batch:
            batches.append(current)
            current = []
    if current:
        batches.append(current)
    return batches


async def _throughput(estates: int, per_estate: int, n: int, folder: Path) -> tuple[float, int]:
    pipeline, _, store = await _build(estates, per_estate, folder)
    batches = _stream(estates, n, 64)
    gc.collect()  # every run starts from the same heap state
    await pipeline.process(batches[0])  # warm-up
    started = time.perf_counter()
    for batch in batches[1:]:
        await pipeline.process(batch)
    elapsed = time.perf_counter() - started
    commits = store.commits
    instances = pipeline.engine.rule_count
    await store.close()
    return (n - len(batches[0])) / elapsed, instances if commits else 0


async def _latency(estates: int, per_estate: int, samples: int, folder: Path) -> list[float]:
    pipeline, feed, store = await _build(estates, per_estate, folder)
    sub = feed.subscribe(maxsize=10_000)
    normal = _stream(estates, 64 * 4, 64)
    out = []
    for i in range(samples):
        for batch in normal:  # background traffic between samples
            await pipeline.process(
                [
                    Envelope([Reading(r.ts_ns, r.estate, r.device, r.point, 20.0) for r in e.items])
                    for e in batch
                ]
            )  # type: ignore[union-attr]
        device = f"d{i % HOT_DEVICES}"
        alarm = Envelope([Reading(time.time_ns(), "e0", device, "p0", 150.0)])
        started = time.perf_counter()
        await pipeline.process([alarm])
        while True:
            item = await sub.get()
            if item.change.incident.device == device and item.change.incident.active:
                break
        out.append((time.perf_counter() - started) * 1000)
        await pipeline.process([Envelope([Reading(time.time_ns(), "e0", device, "p0", 20.0)])])
        while not sub.queue.empty():
            sub.queue.get_nowait()
    await store.close()
    return out


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _child(args: list[str]) -> str:
    """One measurement in a fresh interpreter: no heap left over from earlier runs."""
    out = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=True, timeout=600
    )
    return out.stdout.strip().splitlines()[-1]


async def _measure_one(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-core-") as tmp:
        if args.latency:
            values = await _latency(args.estates, 1000, args.latency, Path(tmp))
            print(" ".join(f"{v:.4f}" for v in values))
        else:
            rate, count = await _throughput(args.estates, args.one, args.readings, Path(tmp))
            print(f"{rate:.1f} {count}")
    return 0


async def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small run for CI smoke (< 30 s)")
    parser.add_argument("--estates", type=int, default=10)
    parser.add_argument("--readings", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=0)
    parser.add_argument("--one", type=int, default=0, help=argparse.SUPPRESS)  # child: one throughput run
    parser.add_argument("--latency", type=int, default=0, help=argparse.SUPPRESS)  # child: latency samples
    args = parser.parse_args()
    if args.one or args.latency:
        return await _measure_one(args)
    n = args.readings or (20_000 if args.quick else 300_000)
    repeats = args.repeats or (1 if args.quick else 5)
    samples = 50 if args.quick else 300
    print(
        f"machine: {platform.processor() or platform.machine()}, Python {sys.version.split()[0]}, "
        f"{args.estates} estates, {n:,} readings per run, {repeats} repeat(s), each run in a fresh process"
    )
    rates: dict[int, list[float]] = {10: [], 1000: []}
    instances: dict[int, int] = {}
    for r in range(repeats):
        for per_estate in (10, 1000):  # alternate so drift hits both
            rate_text, count = _child(
                ["--one", str(per_estate), "--readings", str(n), "--estates", str(args.estates)]
            ).split()
            rates[per_estate].append(float(rate_text))
            instances[per_estate] = int(count)
            print(f"  repeat {r + 1}: {per_estate:>5} rules/estate  {float(rate_text):>10,.0f} readings/s")
    latency = [float(v) for v in _child(["--latency", str(samples), "--estates", str(args.estates)]).split()]
    print()
    print(f"{'':40}{'median':>10}{'min':>12}{'max':>12}")
    for per_estate in (10, 1000):
        values = rates[per_estate]
        label = f"{per_estate:,} rules/estate ({instances[per_estate]:,} instances)"
        print(
            f"{label:40}{statistics.median(values):>10,.0f}"
            f"{min(values):>12,.0f}{max(values):>12,.0f}  readings/s"
        )
    ratio = statistics.median(rates[1000]) / statistics.median(rates[10])
    print(f"{'ratio 1,000 / 10 rules':40}{ratio:>10.1%}   (target: within 10%, i.e. >= 90%)")
    print(
        f"{'reading → committed incident':40}p50 {_pct(latency, 0.5):.2f} ms   "
        f"p99 {_pct(latency, 0.99):.2f} ms   ({len(latency)} samples, 1,000 rules/estate)"
    )
    print(
        f"peak RSS of this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB, "
        f"of the largest child {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.1f} MiB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
