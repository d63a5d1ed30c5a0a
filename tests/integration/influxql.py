"""A private InfluxDB 1.x (Debian's /usr/bin/influxd) on free ports, for InfluxQL tests: started with a
generated config in a temp dir and stopped by PID.

Only the HTTP API is opened (127.0.0.1); the RPC bind address gets a free port too, so two test runs on
one machine never collide on 8088. Reporting, UDP, Graphite, collectd, OpenTSDB and the `_internal`
monitor store are off: the server does nothing the test did not ask for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from gateway.runtime.broker import free_port
from gateway.runtime.process import ServerError, ServerProcess, http_status_is

BINARY = "/usr/bin/influxd"

_CONFIG = """\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{root}/meta"
  logging-enabled = false

[data]
  dir = "{root}/data"
  wal-dir = "{root}/wal"
  wal-fsync-delay = "0s"
  query-log-enabled = false
  trace-logging-enabled = false

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = false
  log-enabled = false
  pprof-enabled = false

[[graphite]]
  enabled = false

[[collectd]]
  enabled = false

[[opentsdb]]
  enabled = false

[[udp]]
  enabled = false

[continuous_queries]
  enabled = false
"""


class InfluxError(ServerError):
    """influxd is missing, did not start, or refused a write or a query."""


class InfluxProcess(ServerProcess):
    """`start()` → influxd answering on `url`; `stop()` ends it by PID and removes its files."""

    slug = name = "influxd"
    error = InfluxError
    start_timeout = 20.0

    def __init__(self) -> None:
        super().__init__()
        self.http_port, self.rpc_port = free_port(), free_port()
        self.root = self.folder

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def command(self) -> list[str]:
        if not Path(BINARY).is_file():
            raise InfluxError(f"{BINARY} is missing: apt-get install influxdb")
        config = self.root / "influxdb.conf"
        config.write_text(_CONFIG.format(root=self.root, rpc_port=self.rpc_port, http_port=self.http_port))
        return [BINARY, "-config", str(config)]

    def ready(self) -> bool:
        return http_status_is(f"{self.url}/ping", 204)

    # -- the HTTP API ----------------------------------------------------------------------------
    def create_database(self, name: str) -> None:
        self.query(f'CREATE DATABASE "{name}"', method="POST")

    def write(self, database: str, lines: list[str], precision: str = "ns") -> None:
        """Line protocol through /write, in batches of 5,000 lines."""
        with httpx.Client(base_url=self.url, timeout=60) as client:
            for start in range(0, len(lines), 5000):
                body = "\n".join(lines[start : start + 5000]).encode()
                reply = client.post("/write", params={"db": database, "precision": precision}, content=body)
                if reply.status_code != 204:
                    raise InfluxError(f"write refused ({reply.status_code}): {reply.text[:500]}")

    def query(self, q: str, database: str | None = None, method: str = "GET") -> list[dict[str, Any]]:
        """The `results` of /query (one per statement); an error in any statement raises InfluxError."""
        params = {"q": q, "epoch": "ms", **({"db": database} if database else {})}
        reply = httpx.request(method, f"{self.url}/query", params=params, timeout=30)
        body = reply.json()
        if reply.status_code != 200 or "error" in body:
            raise InfluxError(f"{q!r}: {reply.status_code} {body}")
        results: list[dict[str, Any]] = body.get("results", [])
        for result in results:
            if "error" in result:
                raise InfluxError(f"{q!r}: {result['error']}")
        return results
