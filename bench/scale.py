#!/usr/bin/env python3
"""Scale: 10,000 devices in 250 estates in one gateway process; RSS after warm-up and its slope over a soak.

Run by bench/run in a fresh interpreter (`python bench/scale.py ...`), so the RSS is the App's alone:
this process holds the App, its MQTT client and Modbus endpoints; the broker, the heartbeat publisher
(bench/paced.py) and the Modbus servers (modbus_poll.ChildServers) are other processes.

Devices: a share (default 5 %, i.e. 500) are Modbus devices with modbus_poll.py's mix of profiles on
10 simulated endpoints × 50 unit ids, polled every 5 s; the rest are ``generic_access_gate`` devices on
MQTT, each sending a heartbeat every ``--heartbeat`` s (spread evenly). After ``--warmup`` s the RSS
(/proc/self/statm) is sampled every few seconds for ``--soak-seconds``; the slope is a least-squares fit,
in MiB per minute. The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

from fleet import HOST, Fleet, FleetServers, slope_mib_per_min
from ingest_throughput import _connected, _stop_app, _wait_until
from modbus_poll import current_rss_mib
from paced import PacedPublisher

from gateway.config import parse_config
from gateway.runtime.app import App


def config_text(mqtt_port: int, ports: list[int], fleet: Fleet, store: Path) -> str:
    lines = [
        "gateway_id: bench-scale",
        f"mqtt: {{host: {HOST}, port: {mqtt_port}, client_id: bench-scale-{os.getpid()}}}",
        f'store: {{path: "{store}"}}',
        "api: {enabled: false}",
        "incidents: {correlation_window: 0, flood_count: 1000000}",
        *fleet.estates_yaml(ports, gate_extra=" heartbeat_timeout: 600,"),
    ]
    return "\n".join(lines) + "\n"


async def soak(seconds: float, task: asyncio.Task[None]) -> list[tuple[float, float]]:
    """(s since the start, RSS MiB) about 60 times over `seconds` (at most once a second)."""
    samples: list[tuple[float, float]] = []
    t0 = time.perf_counter()
    step = max(1.0, seconds / 60)
    while (now := time.perf_counter()) - t0 < seconds:
        samples.append((now - t0, current_rss_mib()))
        await asyncio.sleep(step)
        if task.done():
            raise RuntimeError(f"gateway stopped: {task.exception()!r}")
    samples.append((time.perf_counter() - t0, current_rss_mib()))
    return samples


async def run(args: argparse.Namespace) -> dict[str, float]:
    fleet = Fleet.build(args.devices, args.estates, args.modbus_share)
    mqtt_total = fleet.gates
    servers = FleetServers(fleet)
    rss_start = current_rss_mib()
    try:
        await servers.start()
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
            built = time.perf_counter()
            text = config_text(servers.broker.port, servers.ports, fleet, Path(tmp) / "scale.db")
            config = parse_config(text, "scale.yaml", {})
            config_s = time.perf_counter() - built
            total = args.warmup + args.soak_seconds + 5
            rate = mqtt_total / args.heartbeat
            topics = [f"estate/{e}/access_gate/{d}/heartbeat" for e, d in fleet.gate_ids()]
            work = [(topics[i % len(topics)], "{}") for i in range(int(rate * total))]
            app, stop = App(config), asyncio.Event()
            task = asyncio.create_task(app.run(stop))
            publisher: PacedPublisher | None = None
            try:
                await _wait_until(app.ready.is_set, 120, task, lambda: "gateway never got ready")
                await _wait_until(lambda: _connected(app), 60, task, lambda: "gateway never connected")
                ready_s = time.perf_counter() - built
                publisher = PacedPublisher(servers.broker.port, "bench-scale-pub", work, rate, qos=0)
                publisher.start()
                await asyncio.sleep(args.warmup)
                rss_warm = current_rss_mib()
                samples = await soak(args.soak_seconds, task)
                items = app.pipeline.items
            finally:
                if publisher is not None:
                    publisher.close()
                await _stop_app(stop, task)
    finally:
        await servers.stop()
    return {
        "devices": args.devices,
        "estates": args.estates,
        "modbus": fleet.modbus,
        "rss_start_mib": rss_start,
        "rss_warm_mib": rss_warm,
        "rss_end_mib": samples[-1][1],
        "rss_max_mib": max(r for _, r in samples),
        "slope_mib_per_min": slope_mib_per_min(samples),
        "soak_s": samples[-1][0],
        "config_s": config_s,
        "ready_s": ready_s,
        "items": items,
        "heartbeat_rate": rate,
    }


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--estates", type=int, default=250)
    parser.add_argument("--modbus-share", type=float, default=0.05)
    parser.add_argument("--heartbeat", type=float, default=30.0, help="s between a device's heartbeats")
    parser.add_argument("--warmup", type=float, default=30.0)
    parser.add_argument("--soak-seconds", type=float, default=600.0)
    args = parser.parse_args(argv)
    result = asyncio.run(run(args))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
