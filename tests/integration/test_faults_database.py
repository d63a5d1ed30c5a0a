"""PostgreSQL restarted under a running gateway: no alarm lost, none raised twice, the queue bounded.

What this proves, on real parts: the gateway runs as the real daemon (`App`, in a subprocess with the
fault tests' commit-log probe, tests/integration/faults_probe.py) on `store.engine: postgres` against a
private PostgreSQL (tests/integration/postgres.py, its own schema); a retrying publisher streams 4,000
QoS 1 state messages from 200 access gates through a real Mosquitto, each gate holding exactly one
alarm condition (tamper: true). A quarter of the way in, PostgreSQL gets a fast shutdown (SIGINT: open
sessions are cut), stays down `DOWN_S` seconds and starts again on the same port and data dir while
publishing goes on. Then:

- every message's effect was committed (commit log: lost 0) and every alarm key has exactly one
  incident (missing 0, duplicates 0), each escalated through both steps to the webhook receiver;
- the pipeline held: while the server was down no commit reached the log, so no QoS 1 ack left the
  gateway for an uncommitted alarm (the broker kept the rest for the session);
- the ingest queue never went past its bound (`queue_high_water` ≤ `ingest.queue_size`);
- `/health` said what happened: `store_failures` > 0 while the server was down;
- the same gateway process recovered by itself (one start, exit code 0 at the end).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.runtime.broker import MosquittoProcess, free_port
from tests.integration.faults import (
    STEPS,
    Outcome,
    Publisher,
    Stream,
    committed,
    fault_site_yaml,
    notified,
    offer,
    outcome,
    settle,
    until,
)
from tests.integration.faults_gateway import GatewayProcess
from tests.integration.postgres import PostgresProcess
from tests.integration.receivers import HttpReceiver

pytestmark = pytest.mark.integration

TOTAL, ESTATES, PER_ESTATE = 4_000, 4, 50  # 200 gates, 20 messages each, one alarm per gate
RATE = 250.0  # messages per second offered (~16 s of stream)
DOWN_AT = 1_000  # messages acknowledged by the broker when PostgreSQL is stopped
DOWN_S = 6.0
QUEUE_SIZE = 2000  # fault_site_yaml's ingest.queue_size


def _postgres_site(text: str, db: Path, dsn: str) -> str:
    line = f'store: {{path: "{db}"}}'
    assert line in text
    return text.replace(line, f'store: {{engine: postgres, dsn: "{dsn}", pool_min: 1, pool_max: 4}}')


class HealthWatch:
    """Polls /health every 0.2 s; keeps the peaks and the samples taken while the server was down."""

    def __init__(self, api_port: int) -> None:
        self.url = f"http://127.0.0.1:{api_port}/health"
        self.samples: list[tuple[float, dict[str, Any]]] = []
        self.unanswered = 0

    async def run(self, until_t: float) -> None:
        async with httpx.AsyncClient(timeout=2) as http:
            while time.monotonic() < until_t:
                try:
                    self.samples.append((time.monotonic(), (await http.get(self.url)).json()))
                except httpx.HTTPError:
                    self.unanswered += 1
                await asyncio.sleep(0.2)

    def peak(self, field: str) -> int:
        return max((int(h.get(field) or 0) for _, h in self.samples), default=0)

    def between(self, t0: float, t1: float) -> list[dict[str, Any]]:
        return [h for t, h in self.samples if t0 <= t <= t1]


async def _outage(
    postgres: PostgresProcess, publisher: Publisher, commits: Path, stream: Stream
) -> dict[str, float]:
    """Stop the server (fast shutdown) at DOWN_AT messages, keep it down DOWN_S, start it again; the
    times, and the commit-log size 1 s into the outage and just before the restart."""
    await until(lambda: publisher.acked >= DOWN_AT, 60, f"message {DOWN_AT} published")
    t_stop = time.monotonic()
    await asyncio.to_thread(postgres.stop)
    await asyncio.sleep(1.0)  # the batch in flight when the server went may still commit... or fail
    held_from = len(committed(commits, stream))
    await asyncio.sleep(max(0.0, t_stop + DOWN_S - time.monotonic()))
    held_to = len(committed(commits, stream))
    t_start = time.monotonic()
    await asyncio.to_thread(postgres.start)
    return {
        "stopped": t_stop,
        "started": t_start,
        "up": time.monotonic(),
        "held_from": held_from,
        "held_to": held_to,
    }


@pytest.mark.timeout(120)
async def test_postgres_restart_mid_stream_loses_no_alarm_and_raises_none_twice(  # noqa: PLR0915
    postgres: PostgresProcess, tmp_path: Path
) -> None:
    stream = Stream(8, TOTAL, ESTATES, PER_ESTATE)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    dsn = postgres.create_schema(schema)
    hook = await HttpReceiver().start()
    api_port = free_port()
    commits = tmp_path / "commits.log"
    started = time.monotonic()
    with MosquittoProcess() as broker:
        site = tmp_path / "site.yaml"
        text = fault_site_yaml(broker.port, api_port, tmp_path / "gw.db", hook, ESTATES, PER_ESTATE)
        site.write_text(_postgres_site(text, tmp_path / "gw.db", dsn))
        gateway = GatewayProcess(site, commits, api_port, tmp_path / "gateway.log", standby=False)
        publisher = Publisher(broker.port, client_id="faults-db-publisher")
        watch = HealthWatch(api_port)
        sender: asyncio.Task[None] | None = None
        watcher: asyncio.Task[None] | None = None
        try:
            await gateway.ready(gateway.spawn(), within=60)
            sender = asyncio.create_task(publisher.run())
            watcher = asyncio.create_task(watch.run(time.monotonic() + 90))
            fault = asyncio.create_task(_outage(postgres, publisher, commits, stream))
            await offer(stream, publisher, RATE)
            publisher.closing = True
            await asyncio.wait_for(sender, 60)
            times = await asyncio.wait_for(fault, 60)
            all_in = await settle(lambda: len(committed(commits, stream)) == TOTAL, 45)
            drained_s = time.monotonic() - times["up"]
            await settle(lambda: len(notified(hook)) >= len(stream.alarm_keys) * len(STEPS), 30)
            await asyncio.sleep(1.0)  # a late duplicate webhook would arrive by now
            result = await outcome(stream, commits, api_port, hook, publisher.acked)
            alive = gateway.proc is not None and gateway.proc.poll() is None
            starts = gateway.starts
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            if sender is not None and not sender.done():
                sender.cancel()
            code = gateway.stop()
            await hook.stop()
            if postgres.proc is None:  # the session's other tests need it
                postgres.start()
            postgres.drop_schema(schema)
    _report_and_check(times, watch, result, drained_s, time.monotonic() - started)
    assert all_in, f"{len(committed(commits, stream))}/{TOTAL} committed: {gateway.tail()}"
    assert result.published == TOTAL and result.lost == 0 and result.processed == TOTAL
    assert result.incidents == len(stream.alarm_keys)
    assert result.duplicate_incidents == result.missing_incidents == result.unexpected_incidents == 0
    assert result.notifications_missing == result.notifications_duplicated == 0
    assert alive and starts == 1, "the gateway must recover without a restart"
    assert code == 0, gateway.tail()


def _report_and_check(
    times: dict[str, float], watch: HealthWatch, result: Outcome, drained_s: float, test_s: float
) -> None:
    """Print the figures; check that the pipeline held, the queue stayed bounded and /health told."""
    down = watch.between(times["stopped"] + 0.5, times["started"])
    during = max((int(h["store_failures"]) for h in down), default=0)
    print(
        f"\npostgres fast shutdown for {times['started'] - times['stopped']:.1f}s mid-stream "
        f"(restart took {times['up'] - times['started']:.1f}s): {TOTAL} QoS 1 messages at {RATE:.0f}/s, "
        f"{result.alarm_conditions} alarm conditions; all committed {drained_s:.1f}s after the server was "
        f"up; commits while down {times['held_to'] - times['held_from']:.0f}; store_failures on /health "
        f"while down {during}, at the end {watch.peak('store_failures')}; queue high water "
        f"{watch.peak('queue_high_water')}/{QUEUE_SIZE}; /health unanswered {watch.unanswered}; "
        f"test {test_s:.1f}s"
    )
    print(*result.lines(), sep="\n")
    assert times["held_to"] == times["held_from"], "a commit reached the log while the server was down"
    assert down and during > 0, "/health never showed store_failures while PostgreSQL was down"
    assert watch.peak("queue_high_water") <= QUEUE_SIZE
