"""The sink's writer logic through its one seam (a scripted BatchWriter): order across outages, slow
writes while the queue overflows, rejected batches, and close() with the server gone."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.config.schema import InfluxConfig
from gateway.model import Reading
from gateway.sinks import InfluxSink, LineEncoder, WriteRejected, WriteUnavailable


class ScriptedServer:
    """Takes writes after `delay` seconds; refuses them while `down`; rejects bodies containing `poison`."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay, self.down, self.poison = delay, False, "\x00"
        self.lines: list[str] = []
        self.attempts = 0
        self.refused = 0

    async def write(self, body: bytes) -> None:
        self.attempts += 1
        await asyncio.sleep(self.delay)
        if self.down:
            self.refused += 1
            raise WriteUnavailable("connection refused")
        text = body.decode()
        if self.poison in text:
            raise WriteRejected("HTTP 400 bad line")
        self.lines.extend(text.split("\n"))

    def close(self) -> None:
        pass


def _config(tmp_path: Path, **overrides: object) -> InfluxConfig:
    settings: dict[str, object] = {
        "enabled": True, "spool_dir": str(tmp_path / "spool"), "batch_size": 50, "queue_points": 100,
        "flush_interval": 0.02, "retry_max": 0.05, "fsync_interval": 0.1,
    }  # fmt: skip
    return InfluxConfig.model_validate(settings | overrides)


def _reading(i: int) -> Reading:
    return Reading(1_000_000 + i, "e1", "d1", "p", float(i))


def _expected(encoder: LineEncoder, n: int) -> list[str]:
    return [line for i in range(n) if (line := encoder.reading(_reading(i))) is not None]


async def test_order_kept_across_an_outage_with_slow_writes_and_a_full_queue(tmp_path: Path) -> None:
    server = ScriptedServer(delay=0.01)
    sink = InfluxSink(_config(tmp_path), LineEncoder(), writer=server)
    task = asyncio.create_task(sink.run())
    n = 3000
    for c in range(0, n, 30):
        if c == 600:
            server.down = True
        if c == 1800:
            for _ in range(500):  # the outage lasts until the sink has felt it (bounded: 5 s)
                if server.refused >= 2:
                    break
                await asyncio.sleep(0.01)
            server.down = False
        sink.observe([_reading(i) for i in range(c, c + 30)], [])
        await asyncio.sleep(0.001)
    await sink.close(10)
    await task
    stats = sink.stats()
    assert stats["points_spooled"] > 0 and stats["points_replayed"] > 0 and stats["write_errors"] > 0
    assert server.lines == _expected(LineEncoder(), n)  # all, once, in the order observed
    assert stats["points_written"] == n and stats["points_dropped"] == 0 and stats["spool_points"] == 0


async def test_rejected_batch_is_dropped_and_counted(tmp_path: Path) -> None:
    server = ScriptedServer()
    server.poison = "poison"
    sink = InfluxSink(_config(tmp_path, batch_size=10), LineEncoder(), writer=server)
    task = asyncio.create_task(sink.run())
    sink.enqueue([f"m value={i} {i}" for i in range(10)])
    await asyncio.sleep(0.1)
    sink.enqueue(["m,tag=poison value=1 11"] + [f"m value={i} {i}" for i in range(12, 21)])
    await asyncio.sleep(0.1)
    sink.enqueue([f"m value={i} {i}" for i in range(21, 31)])
    await sink.close(5)
    await task
    assert sink.stats()["points_dropped_rejected"] == 10
    assert len(server.lines) == 20 and server.lines[-1] == "m value=30 30"


async def test_close_with_the_server_down_keeps_everything_for_the_next_start(tmp_path: Path) -> None:
    server = ScriptedServer()
    server.down = True
    sink = InfluxSink(_config(tmp_path), LineEncoder(), writer=server)
    task = asyncio.create_task(sink.run())
    sink.observe([_reading(i) for i in range(250)], [])
    await asyncio.sleep(0.1)
    sink.observe([_reading(i) for i in range(250, 300)], [])
    await sink.close(0.5)
    await task
    assert sink.stats()["spool_points"] == 300 and sink.stats()["lag_s"] > 0
    sink.observe([_reading(300)], [])  # after close: counted, not lost silently
    assert sink.stats()["points_dropped_closed"] == 1

    server.down = False
    again = InfluxSink(_config(tmp_path), LineEncoder(), writer=server)
    task = asyncio.create_task(again.run())
    await again.close(5)
    await task
    assert server.lines == _expected(LineEncoder(), 300)


async def test_close_before_run_started_still_flushes(tmp_path: Path) -> None:
    server = ScriptedServer()
    sink = InfluxSink(_config(tmp_path), LineEncoder(), writer=server)
    late = asyncio.create_task(sink.run())  # not started yet when close() comes
    sink.observe([_reading(i) for i in range(20)], [])
    await sink.close(1)
    await late
    assert server.lines == _expected(LineEncoder(), 20) and sink.spool.points == 0
