"""Storage faults on real parts: the metrics spool on a full disk (a 256 KiB tmpfs, needs root) and the
SQLite store locked by another process mid-stream.

- Spool disk full: InfluxDB (VictoriaMetrics) is down, so points go to the spool, whose filesystem fills
  up: writes fail with ENOSPC, the sink keeps running and counts `spool_error` drops, the health alarm
  "metrics spool failing" opens an incident on device "gateway"; space returns → the alarm clears (one
  incident, not one per failed write); the server returns → the spool drains, `lag_s` and
  `spool_points` (what /health shows as `sink_lag_s`, `sink_spool_points`) go back to 0.
- SQLite locked: a second process holds BEGIN EXCLUSIVE for 7 s (past the store's 5 s busy timeout) while
  alarms stream in: no alarm lost, the ingest queue stays within its bound (the producer is held back),
  QoS 1 acks are held until the commit, `store_failures` counts the failed commit, and all recovers.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.alerts import AlertEngine, DeviceInfo
from gateway.config.schema import InfluxConfig, RuleConfig
from gateway.incidents import Grouping, IncidentService
from gateway.ingest import IngestQueue
from gateway.model import Envelope, Reading, SystemClock
from gateway.runtime.broker import free_port
from gateway.runtime.pipeline import Pipeline
from gateway.sinks import InfluxSink, LineEncoder
from gateway.sinks.spool_alarm import RULE as SPOOL_RULE
from gateway.store import SqliteStore
from tests.integration.victoria import VictoriaProcess

pytestmark = pytest.mark.integration


def _bounded(seconds: float) -> Iterator[int]:
    """Loop indices until `seconds` have passed (every wait loop here is bounded in time and count)."""
    deadline = time.monotonic() + seconds
    for i in range(100_000):
        if time.monotonic() > deadline:
            return
        yield i


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    # The README's commands run as root (set-up installs system packages); a full disk needs a real,
    # size-limited filesystem, so this fails rather than skips: a skipped test would hide the feature.
    assert os.geteuid() == 0, "the full-disk test mounts a size-limited tmpfs: run the tests as root"
    mount = tmp_path / "fs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], check=False,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, f"cannot mount a tmpfs here: {done.stderr.strip()}"
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.timeout(90)
async def test_spool_on_a_full_disk_alarms_drops_counted_and_recovers(  # noqa: PLR0915 - one timeline
    tiny_fs: Path, tmp_path: Path
) -> None:
    filler = tiny_fs / "filler"
    filler.write_bytes(b"\0" * 200 * 1024)  # ~56 KiB left for the spool
    store = SqliteStore(tmp_path / "gw.db")
    await store.open()
    service = IncidentService(store, SystemClock(), grouping=Grouping(correlation_window=0))
    await service.start()
    port = free_port()  # InfluxDB's port: nothing listens yet (the server is down)
    config = InfluxConfig(
        enabled=True, url=f"http://127.0.0.1:{port}", spool_dir=str(tiny_fs / "spool"), batch_size=200,
        queue_points=400, flush_interval=0.1, timeout=1.0, retry_max=0.3, fsync_interval=0.2,
        spool_max_bytes=50 * 1024 * 1024,  # the bound is not what stops it: the disk is
    )  # fmt: skip
    sink = InfluxSink(config, LineEncoder.of([DeviceInfo("sunshine", "gen-1", "generator")]),
                      alarm=service.apply, estates=["sunshine"])  # fmt: skip
    task = asyncio.create_task(sink.run())
    sent, peak = 0, {"lag_s": 0.0, "spool_points": 0}

    async def stream(seconds: float) -> None:
        nonlocal sent
        for _ in _bounded(seconds):
            ts = time.time_ns()
            sink.observe(
                [Reading(ts + i, "sunshine", "gen-1", "fuel_level", float(i)) for i in range(100)], []
            )
            sent += 100
            stats = sink.stats()
            peak["lag_s"] = max(peak["lag_s"], float(stats["lag_s"]))
            peak["spool_points"] = max(peak["spool_points"], int(stats["spool_points"]))
            await asyncio.sleep(0.05)

    victoria: VictoriaProcess | None = None
    try:
        await stream(3.0)  # down, and the disk fills
        full = sink.stats()
        assert full["points_dropped_spool_error"] > 0, full
        assert full["spool_failing"] == 1
        for _ in _bounded(3.0):
            if service.manager.active_keys():
                break
            await asyncio.sleep(0.1)
        assert service.manager.active_keys() == [f"sunshine/gateway/{SPOOL_RULE}"]
        [alarm_id] = service.open_incidents(None)
        await stream(1.0)  # still full: still one alarm, one incident
        assert len(service.manager.by_id) == 1

        filler.unlink()  # space returns
        t_space = time.monotonic()
        await stream(1.0)
        for _ in _bounded(3.0):
            if not service.manager.active_keys():
                break
            await asyncio.sleep(0.1)
        cleared_after = time.monotonic() - t_space
        assert service.manager.active_keys() == [], "the alarm must clear once the spool is writable"
        incident = await service.get(alarm_id)
        assert incident is not None and not incident.active
        assert sink.stats()["spool_failing"] == 0
        dropped_while_full = int(sink.stats()["points_dropped_spool_error"])

        victoria = VictoriaProcess(port=port)
        victoria.start()
        t_up = time.monotonic()
        for _ in _bounded(30.0):
            stats = sink.stats()
            if stats["spool_points"] == 0 and stats["queue_points"] == 0 and stats["lag_s"] < 1.0:
                break
            await asyncio.sleep(0.2)
        drained_after = time.monotonic() - t_up
        after = sink.stats()
        print(
            f"\nspool disk full: sent {sent} points, dropped (ENOSPC) {dropped_while_full}, "
            f"peak lag {peak['lag_s']:.1f}s, peak spool {peak['spool_points']} points; alarm cleared "
            f"{cleared_after:.1f}s after space returned; spool drained {drained_after:.1f}s after the "
            f"server returned; written {after['points_written']} (replayed {after['points_replayed']})"
        )
        assert peak["lag_s"] > 1.0 and peak["spool_points"] > 0  # health said what happened...
        assert after["spool_points"] == 0 and after["lag_s"] < 1.0  # ...and that it is over
        assert after["points_dropped_spool_error"] == dropped_while_full  # nothing lost once space returned
        # no torn record: every point the spool accepted (short writes on the full disk cut back) came out
        assert after["points_replayed"] == after["points_spooled"], after
        assert after["points_dropped_corrupt"] == 0
        assert after["points_written"] + dropped_while_full + after["queue_points"] <= sent + 1000
        assert after["points_written"] >= sent - dropped_while_full - 1000  # the last batch may be in flight
    finally:
        await sink.close(5.0)
        await asyncio.wait_for(task, 10)
        if victoria is not None:
            victoria.close()
        await store.close()


HOLD_S = 7.0  # past the store's 5 s busy timeout: one commit fails and is retried
LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=0.1)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
print("released", flush=True)
"""


@pytest.mark.timeout(60)
async def test_sqlite_locked_by_another_process_loses_no_alarm(tmp_path: Path) -> None:  # noqa: PLR0915
    db = tmp_path / "gw.db"
    store = SqliteStore(db)
    await store.open()
    service = IncidentService(
        store, SystemClock(), grouping=Grouping(correlation_window=0, flood_count=10_000)
    )
    await service.start()
    devices = [DeviceInfo("sunshine", f"gen-{i}", "generator") for i in range(100)]
    rule = RuleConfig.model_validate({
        "id": "fuel_low", "kind": "threshold", "family": "generator", "point": "fuel_level", "op": "<",
        "limit": 10, "priority": "high", "message": {"zh": "燃油低 {value}", "en": "fuel low {value}"},
    })  # fmt: skip
    engine = AlertEngine([rule], devices, SystemClock())
    queue = IngestQueue(maxsize=50)
    pipeline = Pipeline(queue, engine, service, tick_interval=0.1)
    running = asyncio.create_task(pipeline.run())
    acks: list[float] = []
    produced: list[float] = []
    raised = 0

    def ack() -> None:
        acks.append(time.monotonic())

    async def produce(seconds: float, rate: float = 40.0) -> None:
        nonlocal raised
        for n in _bounded(seconds):
            ts = time.time_ns()
            low = n % 10 == 0 and raised < len(devices)  # every 10th delivery raises a new alarm
            device = f"gen-{raised}" if low else "gen-99"
            items = [Reading(ts, "sunshine", device, "fuel_level", 5.0 if low else 80.0)]
            await queue.put(Envelope(items, ack))
            raised += 1 if low else 0
            produced.append(time.monotonic())
            await asyncio.sleep(1 / rate)

    locker: asyncio.subprocess.Process | None = None
    try:
        producer = asyncio.create_task(produce(2.0 + HOLD_S + 3.0))
        await asyncio.sleep(2.0)
        locker = await asyncio.create_subprocess_exec(
            sys.executable, "-c", LOCKER, str(db), str(HOLD_S), stdout=asyncio.subprocess.PIPE
        )
        assert locker.stdout is not None
        line = await asyncio.wait_for(locker.stdout.readline(), 10)
        assert line.strip() == b"locked"
        t_lock = time.monotonic()
        depth_peak = 0
        for _ in _bounded(HOLD_S - 0.3):
            depth_peak = max(depth_peak, queue.depth)
            await asyncio.sleep(0.05)
        released = await asyncio.wait_for(locker.stdout.readline(), 10)
        assert released.strip() == b"released"
        t_release = time.monotonic()
        await producer
        for _ in _bounded(10.0):
            if len(acks) == len(produced) and queue.depth == 0:
                break
            await asyncio.sleep(0.05)
        acked_while_locked = sum(1 for t in acks if t_lock + 1.0 <= t <= t_release - 0.2)
        produced_while_locked = sum(1 for t in produced if t_lock + 1.0 <= t <= t_release - 0.2)
        first_ack_after = min((t for t in acks if t > t_release), default=None)
        stored = await store.load_unresolved()
        health = {"store_failures": pipeline.store_failures, "queue_high_water": queue.high_water}
        print(
            f"\nsqlite locked {HOLD_S:.0f}s by another process: {len(produced)} deliveries, {raised} alarms "
            f"raised, {len(stored)} incidents stored; acked while locked {acked_while_locked}, produced "
            f"while locked {produced_while_locked} (unblocked rate would be ~{40 * (HOLD_S - 1.2):.0f}); "
            f"queue peak {depth_peak}/50; health {health}; first ack "
            f"{(first_ack_after - t_release) if first_ack_after else float('nan'):.2f}s after release"
        )
        assert len(stored) == raised and {i.device for i in stored} == {f"gen-{i}" for i in range(raised)}
        assert len(acks) == len(produced)  # every delivery acked in the end...
        assert acked_while_locked == 0  # ...but not one before its alarm was committed
        assert queue.high_water <= 50 and depth_peak <= 50
        assert produced_while_locked <= 50 + 5  # the producer was held back by the bounded queue
        assert pipeline.store_failures >= 1
        assert first_ack_after is not None and first_ack_after - t_release < 3.0
    finally:
        if locker is not None:
            if locker.returncode is None:
                locker.kill()
            await asyncio.wait_for(locker.wait(), 5)
        await pipeline.stop(5.0)
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await store.close()
