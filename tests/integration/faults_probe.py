"""The real gateway (`App`, as `estate-gateway run` builds it) with one test probe: a commit log.

    python -m tests.integration.faults_probe site.yaml commits.log [--standby]

With --standby the process imports everything and builds the App, then waits for a line on stdin before
it runs: the test keeps one such warm process ready, so a restart after a kill costs the gateway's own
start (store, session, backlog) rather than Python's imports on a loaded machine.

The probe is a pipeline Observer. The pipeline tells observers after a batch's effects are committed
and before the batch's QoS 1 messages are acknowledged, so every line in the log is a message whose
effect was committed. One line per MQTT state message: `estate/device ts_ns`, written with one
`os.write` per batch to a file opened O_APPEND: a kill -9 loses no line already written (the kernel
holds it), and lines are never interleaved between the processes that follow each other.
A message whose line appears twice was processed twice: redelivered by the broker after a kill.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Sequence

from gateway.alerts import Transition
from gateway.config import load_config
from gateway.model import Item, Reading
from gateway.runtime.app import App
from gateway.runtime.cli import _setup_logging

MARKER_POINT = "door_open"  # every message of the fault streams carries exactly one


class CommitLog:
    """Observer: one line per committed message (its `door_open` reading) to an append-only file."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def observe(self, items: Sequence[Item], transitions: Sequence[Transition]) -> None:
        lines = [
            f"{item.estate}/{item.device} {item.ts_ns}\n"
            for item in items
            if isinstance(item, Reading) and item.point == MARKER_POINT
        ]
        if lines:
            os.write(self._fd, "".join(lines).encode())

    def close(self) -> None:
        os.close(self._fd)


async def _run(app: App, log_path: str) -> None:
    probe = CommitLog(log_path)
    app.pipeline.observers.append(probe)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await app.run(stop)
    finally:
        probe.close()


def main(argv: Sequence[str]) -> int:
    _setup_logging(os.environ.get("ESTATE_GATEWAY_LOG", "INFO"))
    app = App(load_config(argv[0]))
    if "--standby" in argv[2:] and not sys.stdin.readline():
        return 0  # stdin closed: the test no longer needs this standby
    asyncio.run(_run(app, argv[1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
