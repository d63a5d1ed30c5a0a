#!/usr/bin/env python3
"""Metrics-sink throughput: points/s into a real VictoriaMetrics through the InfluxDB sink, beside
influxdb-client's plain write of the same points, and the spool's replay rate after an outage.

Method. One private VictoriaMetrics (free port on 127.0.0.1, temp data dir, stopped by PID), N readings
over 20 estates × 10 devices × 5 points (distinct millisecond timestamps per series), repeated R times;
baseline and sink alternate, each repeat on its own estate ids so no point is written twice:

- **baseline**: the readings encoded beforehand (the sink's encoder), joined into batches of
  `batch_size` lines, written with influxdb-client's synchronous write API (gzip, precision ns), one
  request after another: the client library's own rate on this machine and server;
- **writer**: the same pre-encoded batches through the sink's `InfluxWriter` (influxdb-client's write
  service in a worker thread, gzip level 1 instead of the client's level 9): what the write path costs
  without the sink's queueing and encoding;
- **sink**: `InfluxSink.observe()` fed the Reading objects in chunks of 100 (as the pipeline does),
  yielding to the event loop between chunks; timed from the first `observe` until `points_written`
  reaches N. Includes encoding, queueing, batching, gzip and the writes. The queue is sized to hold N so
  this measures the write path, not the spool. `observe` cost: the time spent inside `observe`, per
  point: what the alert core pays;
- **replay**: the server stopped, N readings observed (they go to the spool on disk), the sink closed;
  the server started again and a new sink started on the same spool: timed until the spool is empty;
- **encoders**: the sink's encoder against influxdb-client's `Point(...).to_line_protocol()` on the
  same readings, lines/s, in this process.

Validity: after each run the script counts the samples VictoriaMetrics returns for that run's estates
and exits 1 if any are missing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write.point import Point
from influxdb_client.client.write_api import SYNCHRONOUS
from machine import cpu_model, version_of  # bench/machine.py: run as a script, bench/ is on sys.path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root: tests.integration
from gateway.alerts import DeviceInfo
from gateway.config.schema import InfluxConfig
from gateway.model import Reading
from gateway.sinks import InfluxSink, InfluxWriter, LineEncoder
from tests.integration.victoria import VictoriaProcess

ESTATES, DEVICES, POINTS = 20, 10, 5
CHUNK = 100


class BenchError(RuntimeError):
    """The run is not valid (points missing)."""


def devices(tag: str) -> list[DeviceInfo]:
    return [DeviceInfo(f"{tag}-e{e}", f"d{d}", "generator") for e in range(ESTATES) for d in range(DEVICES)]


def readings(tag: str, n: int, base_ms: int) -> list[Reading]:
    series = ESTATES * DEVICES * POINTS
    out = []
    for i in range(n):
        s = i % series
        estate, device, point = (
            f"{tag}-e{s // (DEVICES * POINTS)}",
            f"d{(s // POINTS) % DEVICES}",
            f"p{s % POINTS}",
        )
        out.append(Reading((base_ms + i // series) * 1_000_000, estate, device, point, 20.0 + (i % 97) / 4))
    return out


def batches(lines: list[str], size: int) -> Iterator[bytes]:
    for start in range(0, len(lines), size):
        yield "\n".join(lines[start : start + size]).encode()


def count_samples(vm: VictoriaProcess, tag: str, expected: int, within: float = 30.0) -> int:
    deadline = time.monotonic() + within
    while True:
        vm.flush()
        response = httpx.post(
            f"{vm.url}/api/v1/export", data={"match[]": f'{{estate=~"{tag}-.*"}}', "start": "0"}, timeout=120
        )
        response.raise_for_status()
        found = sum(line.count(",") + 1 for line in _timestamps(response.text))
        if found >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def _timestamps(text: str) -> Iterator[str]:
    """The timestamps arrays of an export, as text (no JSON decode of 100k-sample answers needed)."""
    for line in text.splitlines():
        start = line.find('"timestamps":[')
        if start >= 0:
            body = line[start + 14 : line.index("]", start)]
            if body:
                yield body


def baseline(vm: VictoriaProcess, lines: list[str], batch_size: int, gzip: bool) -> float:
    client = InfluxDBClient(
        url=vm.url, token="", org="estate", timeout=30_000, enable_gzip=gzip, retries=False
    )
    api = client.write_api(write_options=SYNCHRONOUS)
    bodies = list(batches(lines, batch_size))
    started = time.perf_counter()
    for body in bodies:
        api.write("estate", "estate", body)
    elapsed = time.perf_counter() - started
    client.close()
    return len(lines) / elapsed


async def writer_only(vm: VictoriaProcess, lines: list[str], batch_size: int, gzip: bool) -> float:
    """The sink's own writer (gzip level 1 in a worker thread) on the same pre-encoded batches."""
    writer = InfluxWriter(vm.url, "estate", "estate", None, 30.0, gzip)
    bodies = list(batches(lines, batch_size))
    started = time.perf_counter()
    for body in bodies:
        await writer.write(body)
    elapsed = time.perf_counter() - started
    writer.close()
    return len(lines) / elapsed


def config(vm: VictoriaProcess, spool: Path, args: argparse.Namespace, queue: int) -> InfluxConfig:
    return InfluxConfig(
        enabled=True, url=vm.url, spool_dir=str(spool), batch_size=args.batch_size, flush_interval=0.2,
        queue_points=queue, gzip=not args.no_gzip, retry_max=0.5, spool_max_bytes=2 * 1024**3,
    )  # fmt: skip


async def through_sink(
    vm: VictoriaProcess, tag: str, items: list[Reading], args: argparse.Namespace, folder: Path
) -> tuple[float, float]:
    """(points/s through the sink, µs spent in observe per point)."""
    sink = InfluxSink(config(vm, folder / f"spool-{tag}", args, len(items) + 1), LineEncoder.of(devices(tag)))
    task = asyncio.create_task(sink.run())
    await asyncio.sleep(0)
    in_observe = 0.0
    started = time.perf_counter()
    for start in range(0, len(items), CHUNK):
        t0 = time.perf_counter()
        sink.observe(items[start : start + CHUNK], [])
        in_observe += time.perf_counter() - t0
        await asyncio.sleep(0)
    deadline = time.monotonic() + 300
    while sink.points_written < len(items) and time.monotonic() < deadline:  # noqa: ASYNC110 - polling a count
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - started
    await sink.close(10)
    await task
    if sink.points_written != len(items) or sink.stats()["points_spooled"]:
        raise BenchError(f"sink run {tag}: {sink.stats()}")
    return len(items) / elapsed, in_observe / len(items) * 1e6


async def replay(
    vm: VictoriaProcess, tag: str, items: list[Reading], args: argparse.Namespace, folder: Path
) -> float:
    spool = folder / f"spool-{tag}"
    vm.stop()
    down = InfluxSink(config(vm, spool, args, 10_000), LineEncoder.of(devices(tag)))
    task = asyncio.create_task(down.run())
    await asyncio.sleep(0)
    for start in range(0, len(items), CHUNK):
        down.observe(items[start : start + CHUNK], [])
        await asyncio.sleep(0)
    await down.close(1)
    await task
    if down.spool.points != len(items):
        raise BenchError(f"replay {tag}: spooled {down.spool.points} of {len(items)}: {down.stats()}")
    vm.start()
    sink = InfluxSink(config(vm, spool, args, 10_000), LineEncoder.of(devices(tag)))
    started = time.perf_counter()
    task = asyncio.create_task(sink.run())
    deadline = time.monotonic() + 300
    while sink.spool.points and time.monotonic() < deadline:  # noqa: ASYNC110 - polling a count
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - started
    await sink.close(10)
    await task
    if sink.points_replayed != len(items):
        raise BenchError(f"replay {tag}: replayed {sink.points_replayed} of {len(items)}")
    return len(items) / elapsed


def encoders(items: list[Reading]) -> tuple[float, float]:
    """Lines/s: the sink's encoder, influxdb-client's Point."""
    encoder = LineEncoder.of(devices("enc"))
    started = time.perf_counter()
    for item in items:
        encoder.reading(item)
    ours = len(items) / (time.perf_counter() - started)
    started = time.perf_counter()
    for r in items:
        Point("generator").tag("estate", r.estate).tag("device", r.device).tag("point", r.point).tag(
            "quality", r.quality.value
        ).field("value", float(r.value)).time(r.ts_ns).to_line_protocol()
    return ours, len(items) / (time.perf_counter() - started)


def vm_version() -> str:
    """Debian's build reports an empty version on /metrics; the package knows it."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "victoria-metrics"], capture_output=True,
                              text=True, timeout=10, check=True)  # fmt: skip
        return f"{done.stdout.strip()} (Debian package)"
    return "unknown"


def report(
    rates: dict[str, list[float]], observe_us: float, encoded: tuple[float, float], version: str
) -> None:
    ours, point = encoded
    print()
    print(f"{'':44}{'median':>12}{'min':>12}{'max':>12}")
    labels = {
        "baseline": "influxdb-client write_api, pre-encoded (base)",
        "writer": "sink's InfluxWriter alone, pre-encoded",
        "sink": "InfluxSink: observe → VictoriaMetrics",
        "replay": "spool replay after an outage",
    }
    for key, label in labels.items():
        values = rates[key]
        median, low, high = statistics.median(values), min(values), max(values)
        print(f"{label:44}{median:>12,.0f}{low:>12,.0f}{high:>12,.0f}  points/s")
    ratio = statistics.median(rates["sink"]) / statistics.median(rates["baseline"])
    print(f"{'sink / baseline':44}{ratio:>12.2f}")
    print(f"{'observe() cost per point':44}{observe_us:>12.2f}{'':24}  µs")
    print(f"{'encoder: gateway.sinks.lines':44}{ours:>12,.0f}{'':24}  lines/s")
    print(f"{'encoder: influxdb_client Point':44}{point:>12,.0f}{'':24}  lines/s")
    print("\nmachine")
    print(f"  CPU              {cpu_model()}")
    print(f"  cores            {os.cpu_count()}")
    print(f"  Python           {sys.version.split()[0]}")
    print(f"  influxdb-client  {version_of('influxdb-client')}")
    print(f"  VictoriaMetrics  {version}")


async def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="50,000 points, 1 repeat (about 20 s)")
    parser.add_argument("--points", type=int, default=0, help="points per run (default 200,000)")
    parser.add_argument("--repeats", type=int, default=0, help="repeats (default 3)")
    parser.add_argument("--batch-size", type=int, default=5000, help="points per write request")
    parser.add_argument("--no-gzip", action="store_true", help="write uncompressed (both paths)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, format="%(name)s: %(message)s")  # the outage is on purpose
    n = args.points or (50_000 if args.quick else 200_000)
    repeats = args.repeats or (1 if args.quick else 3)
    base_ms = time.time_ns() // 1_000_000 - 6 * 3_600_000
    rates: dict[str, list[float]] = {"baseline": [], "writer": [], "sink": [], "replay": []}
    observe_us: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-sink-") as tmp, VictoriaProcess() as vm:
        folder = Path(tmp)
        version = vm_version()
        gzip = "off" if args.no_gzip else "on"
        print(f"VictoriaMetrics pid {vm.pid} on {vm.url}; {n:,} points per run, {repeats} repeat(s), "
              f"batch {args.batch_size}, gzip {gzip}", flush=True)  # fmt: skip
        encoder = LineEncoder.of(devices("x"))
        for r in range(repeats):
            tag = f"b{r}"
            lines = [
                line for item in readings(tag, n, base_ms) if (line := encoder.reading(item)) is not None
            ]
            rates["baseline"].append(baseline(vm, lines, args.batch_size, not args.no_gzip))
            tag = f"w{r}"
            lines = [
                line for item in readings(tag, n, base_ms) if (line := encoder.reading(item)) is not None
            ]
            rates["writer"].append(await writer_only(vm, lines, args.batch_size, not args.no_gzip))
            tag = f"s{r}"
            rate, cost = await through_sink(vm, tag, readings(tag, n, base_ms), args, folder)
            rates["sink"].append(rate)
            observe_us.append(cost)
            tag = f"r{r}"
            rates["replay"].append(await replay(vm, tag, readings(tag, n, base_ms), args, folder))
            done = "  ".join(f"{key} {values[-1]:>9,.0f}" for key, values in rates.items())
            print(f"  repeat {r + 1}: {done} points/s", flush=True)
        for r in range(repeats):
            for tag in (f"b{r}", f"w{r}", f"s{r}", f"r{r}"):
                found = count_samples(vm, tag, n)
                if found != n:
                    raise BenchError(f"run {tag}: VictoriaMetrics holds {found:,} of {n:,} points")
        ours, point = encoders(readings("enc", min(n, 100_000), base_ms))
    report(rates, statistics.median(observe_us), (ours, point), version)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main()))
    except BenchError as exc:
        print(f"sink_throughput: FAILED: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("sink_throughput: interrupted (VictoriaMetrics stopped)", file=sys.stderr)
        sys.exit(1)
