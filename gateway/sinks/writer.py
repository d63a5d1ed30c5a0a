"""The one I/O seam to the metrics server: a batch of lines in, written or a typed error out.

influxdb-client's write service (urllib3, `POST /api/v2/write`, precision ns) runs in a worker thread, so
the event loop never waits on the network; the client's async API would need aiohttp, which the project
does not otherwise use. One write at a time (the sink has one writer task).

Compression: the body is gzipped here at level 1 and sent with `Content-Encoding: gzip`, instead of the
client's `enable_gzip`, which compresses at level 9: measured with bench/sink_throughput.py, level 9 cut
the write rate to VictoriaMetrics about eightfold on this project's 2-core machine, for a body only a
little smaller.

Errors are translated here and nowhere else:

    SinkWriteError
    ├── WriteUnavailable   connection refused or reset, timeout, 429, 5xx, 401/403/404 (a token or bucket
    │                      to fix): retry later, the points wait in the spool
    └── WriteRejected      400, 413, 422: the server refuses the data itself; retrying cannot help
"""

from __future__ import annotations

import asyncio
import gzip
from typing import Protocol

import urllib3
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.rest import ApiException
from influxdb_client.service.write_service import WriteService

__all__ = ["BatchWriter", "InfluxWriter", "SinkWriteError", "WriteRejected", "WriteUnavailable"]

_REJECTED = {400, 413, 422}
GZIP_LEVEL = 1


class SinkWriteError(Exception):
    """A write did not go through."""


class WriteUnavailable(SinkWriteError):
    """The server is down, slow or refuses us for now: keep the points and retry."""


class WriteRejected(SinkWriteError):
    """The server refused the data (bad line, type conflict, too large): retrying cannot help."""


class BatchWriter(Protocol):
    async def write(self, body: bytes) -> None:
        """Write newline-separated lines (precision ns); raises SinkWriteError."""

    def close(self) -> None: ...


class InfluxWriter:
    def __init__(
        self, url: str, org: str, bucket: str, token: str | None, timeout: float, gzip: bool = True
    ) -> None:
        self.org, self.bucket, self.gzip = org, bucket, gzip
        self._client = InfluxDBClient(
            url=url, token=token or "", org=org, timeout=int(timeout * 1000), retries=False
        )
        self._service = WriteService(self._client.api_client)  # type: ignore[no-untyped-call]

    async def write(self, body: bytes) -> None:
        await asyncio.to_thread(self._write, body)

    def _write(self, body: bytes) -> None:
        try:
            extra = {"content_encoding": "gzip"} if self.gzip else {}
            self._service.post_write(  # type: ignore[no-untyped-call]
                org=self.org, bucket=self.bucket, precision="ns", content_type="text/plain; charset=utf-8",
                body=gzip.compress(body, GZIP_LEVEL) if self.gzip else body, **extra,
            )  # fmt: skip
        except ApiException as exc:
            status = int(exc.status or 0)
            reason = f"HTTP {status} {str(exc.reason or '').strip()}: {str(exc.body or '')[:200]}"
            if status in _REJECTED:
                raise WriteRejected(reason) from exc
            raise WriteUnavailable(reason) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise WriteUnavailable(f"{type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]
