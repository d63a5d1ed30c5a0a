"""A local server binary run as a child process for the demo, the tests and the benchmarks.

`ServerProcess` holds what Mosquitto, VictoriaMetrics and InfluxDB have in common: a folder with the
log (a temp dir unless the caller gives one), start and wait until the server answers, stop by PID
(terminate, then kill). A subclass gives the command line and the readiness check.
"""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import IO, ClassVar, Self

import httpx


class ServerError(RuntimeError):
    """A server binary is missing or did not start."""


def port_open(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:`port`."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def http_status_is(url: str, status: int) -> bool:
    """Whether GET `url` answers with `status`; no answer at all is False."""
    try:
        return httpx.get(url, timeout=0.5).status_code == status
    except httpx.HTTPError:
        return False


class ServerProcess(ABC):
    """`start()` → running server (`ready()` is True); `stop()` ends it by PID; `close()` also removes
    the temp dir. `stop()` keeps the folder, so `start()` again runs on the same files."""

    slug: ClassVar[str]  # temp dir prefix `eg-{slug}-` and log file `{slug}.log`
    name: ClassVar[str]  # for error messages
    error: ClassVar[type[ServerError]] = ServerError
    start_timeout: ClassVar[float] = 10.0
    stop_timeout: ClassVar[float] = 10.0  # between terminate and kill
    log_limit: ClassVar[int | None] = 2000  # `log_text()` returns at most this many last characters

    def __init__(self, folder: Path | None = None) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if folder is None:
            self._tmp = tempfile.TemporaryDirectory(prefix=f"eg-{self.slug}-")
            folder = Path(self._tmp.name)
        self.folder = folder
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @abstractmethod
    def command(self) -> list[str]:
        """The command line; raises `error` if the binary is missing, may write a config file first."""

    @abstractmethod
    def ready(self) -> bool:
        """Whether the server answers yet."""

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def log_path(self) -> Path:
        return self.folder / f"{self.slug}.log"

    def start(self, timeout: float | None = None) -> Self:
        """Start and wait until `ready()`; on an early exit or after `timeout` stop and raise `error`."""
        timeout = self.start_timeout if timeout is None else timeout
        command = self.command()
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.stop()
                raise self.error(f"{self.name} exited with {code}: {self.log_text()[-2000:]}")
            if self.ready():
                return self
            time.sleep(0.05)
        self.stop()
        raise self.error(f"{self.name} did not answer within {timeout}s: {self.log_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def log_text(self) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text if self.log_limit is None else text[-self.log_limit :]

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
