"""A private VictoriaMetrics on a free port (tests and benchmarks): started and stopped by PID.

`stop()` leaves the data dir; `start()` again serves the same data on the same port, which is how the
outage tests take the server away and bring it back. VictoriaMetrics speaks InfluxDB line protocol on
`/api/v2/write` (measurement + field become the metric `measurement_field`, tags become labels) and
returns raw samples from `/api/v1/export` as JSON lines: one series per line with `values` and
`timestamps` (milliseconds: VictoriaMetrics stores ms, so distinct points need distinct milliseconds).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

from gateway.runtime.broker import free_port
from gateway.runtime.process import ServerError, ServerProcess, http_status_is, port_open

BINARY = "/usr/bin/victoria-metrics"


class VictoriaError(ServerError):
    """VictoriaMetrics is missing or did not start."""


class VictoriaProcess(ServerProcess):
    """`start()` → running server on `port` with its data in `data_dir`; `stop()` ends it by PID."""

    slug = "victoria"
    name = "victoria-metrics"
    error = VictoriaError
    start_timeout = 15.0

    def __init__(self, port: int | None = None, data_dir: Path | None = None) -> None:
        super().__init__(data_dir)
        self.port = port or free_port()
        self.data_dir = self.folder

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        if not Path(BINARY).is_file():
            raise VictoriaError(f"{BINARY} is missing: apt-get install victoria-metrics")
        return [
            BINARY,
            f"-storageDataPath={self.data_dir / 'data'}",
            f"-httpListenAddr=127.0.0.1:{self.port}",
            "-retentionPeriod=100y",
            "-search.latencyOffset=0s",  # recent points are visible to queries at once
            "-loggerLevel=ERROR",
        ]

    def ready(self) -> bool:
        return http_status_is(f"{self.url}/health", 200)

    def stop(self) -> None:
        super().stop()
        _wait_closed(self.port)

    # -- reading back ----------------------------------------------------------------------------
    def flush(self) -> None:
        """Make just-written samples searchable (VictoriaMetrics buffers them for about a second)."""
        httpx.get(f"{self.url}/internal/force_flush", timeout=10).raise_for_status()

    def export(self, match: str = '{__name__!=""}') -> list[dict[str, Any]]:
        """Every series matching `match`, raw: [{"metric": {...}, "values": [...], "timestamps": [...]}]."""
        self.flush()
        response = httpx.post(f"{self.url}/api/v1/export", data={"match[]": match, "start": "0"}, timeout=60)
        response.raise_for_status()
        return [json.loads(line) for line in response.text.splitlines() if line.strip()]


def _wait_closed(port: int, timeout: float = 5.0) -> None:
    """After a stop, wait until the port refuses connections, so a restart can bind it again."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and port_open(port):
        time.sleep(0.05)
