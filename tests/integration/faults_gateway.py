"""The gateway under test as a subprocess (tests/integration/faults_probe.py), for the fault tests.

`spawn` lets a warm standby run (imports done, App built) and readies the next one, so a restart after a
kill measures the gateway's own start; `kill9` is SIGKILL; `stop` is SIGTERM and reaps the standby.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).parents[2]


class GatewayProcess:
    """The gateway subprocess with its commit log; `kill9` is SIGKILL, `stop` is SIGTERM.

    `spawn` starts the warm standby (imports done, App built; see faults_probe.py) and readies the next
    one; `cold_start_s` is how long the first, cold start took, for comparison."""

    def __init__(self, site: Path, commits: Path, api_port: int, log: Path, standby: bool = True) -> None:
        self.site, self.commits, self.api_port, self.log = site, commits, api_port, log
        self.keep_standby = standby
        self.proc: subprocess.Popen[bytes] | None = None
        self._standby: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.cold_start_s = 0.0
        self.recover_s: list[float] = []  # go → API up and MQTT connected, per start

    def _launch(self) -> subprocess.Popen[bytes]:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "ESTATE_GATEWAY_LOG": "WARNING"}
        argv = ["-m", "tests.integration.faults_probe", str(self.site), str(self.commits), "--standby"]
        with open(self.log, "ab") as out:
            return subprocess.Popen(
                [sys.executable, *argv], cwd=self.site.parent, env=env, stdin=subprocess.PIPE,
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def spawn(self) -> float:
        """Let the standby run (launching one first if there is none); the monotonic time of the go."""
        cold = self._standby is None
        proc = self._standby or self._launch()
        went = time.monotonic()
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        proc.stdin.close()
        self.proc, self._standby = proc, None
        self.starts += 1
        if not cold:
            self._standby = self._launch()
        return went

    async def ready(self, spawned: float, within: float = 30.0) -> float:
        """Wait until the gateway works: MQTT connected (/health), or a commit newer than `spawned` in
        the log (under a redelivered backlog /health answers late); the seconds since `spawned`."""
        size = self.commits.stat().st_size if self.commits.exists() else 0
        deadline, next_health = spawned + within, 0.0
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.api_port}", timeout=2) as http:
            while time.monotonic() < deadline:
                assert self.proc is not None and self.proc.poll() is None, self.tail()
                working = self.commits.exists() and self.commits.stat().st_size > size
                if not working and time.monotonic() >= next_health:
                    next_health = time.monotonic() + 0.5
                    with contextlib.suppress(httpx.HTTPError):
                        working = bool((await http.get("/health")).json().get("mqtt_connected"))
                if working:
                    took = time.monotonic() - spawned
                    if self.starts == 1:
                        self.cold_start_s = took
                        if self.keep_standby:
                            self._standby = self._launch()
                    else:
                        self.recover_s.append(took)
                    return took
                await asyncio.sleep(0.02)
        raise AssertionError(f"gateway not working within {within}s: {self.tail()}")

    async def mqtt_connected(self) -> bool | None:
        """/health's mqtt_connected; None when the API does not answer."""
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.api_port}", timeout=2) as http:
            try:
                return bool((await http.get("/health")).json().get("mqtt_connected"))
            except httpx.HTTPError:
                return None

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(5)
        self.proc = None

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 10 s; the exit code (None: nothing was running). The standby
        sees its stdin close and exits."""
        if self._standby is not None:
            standby, self._standby = self._standby, None
            assert standby.stdin is not None
            standby.stdin.close()
            try:
                standby.wait(30)
            except subprocess.TimeoutExpired:
                standby.kill()
                standby.wait(5)
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                return proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        return proc.returncode

    def steps_sent_again(self) -> int:
        """Escalation steps a start found `firing` (a kill landed while they were being sent) and sent
        again: the store's documented at-least-once window, from the gateway's own warning."""
        pattern = re.compile(r"escalation: (\d+) steps were being sent when the gateway stopped")
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return sum(int(n) for n in pattern.findall(text))

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
