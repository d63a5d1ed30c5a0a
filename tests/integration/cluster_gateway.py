"""Gateway instances sharing one PostgreSQL database, as real daemons (`estate-gateway run`) in
subprocesses, for the scale-out tests: same site file, different GATEWAY_ID and API_PORT."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.integration.faults import TOKEN

ROOT = Path(__file__).parents[2]


def cluster_site_yaml(single: str, dsn: str, lease_seconds: float, renew: float) -> str:
    """A fault-test site (tests/integration/faults.py) turned into a cluster site: PostgreSQL, leases,
    the instance id and API port from the environment."""
    lines = []
    for line in single.splitlines():
        if line.startswith("gateway_id:"):
            lines.append("gateway_id: ${GATEWAY_ID}")
        elif line.startswith("store:"):
            lines.append(f'store: {{engine: postgres, dsn: "{dsn}", pool_max: 4}}')
        elif line.startswith("api:"):
            port = line.replace("port: 0,", 'port: "${API_PORT}",')
            lines.append(port.replace("role: operator", "role: supervisor"))  # GET /cluster
        else:
            lines.append(line)
    lines.insert(1, f"cluster: {{enabled: true, lease_seconds: {lease_seconds}, renew_interval: {renew}}}")
    return "\n".join(lines) + "\n"


class Instance:
    def __init__(self, name: str, site: Path, api_port: int, log: Path) -> None:
        self.name, self.site, self.api_port, self.log = name, site, api_port, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start(self) -> None:
        env = {
            **os.environ, "PYTHONPATH": str(ROOT), "GATEWAY_ID": self.name, "API_PORT": str(self.api_port),
            "ESTATE_GATEWAY_LOG": "INFO",
        }  # fmt: skip
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway.runtime.cli", "run", str(self.site)],
                cwd=self.site.parent, env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.starts += 1

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)

    async def cluster(self) -> dict[str, Any] | None:
        """GET /cluster, or None while the instance does not answer."""
        return await self.get("/cluster")

    async def get(self, path: str) -> dict[str, Any] | None:
        """GET `path` (a JSON object) with the operator token, or None while the instance does not answer."""
        with contextlib.suppress(httpx.HTTPError, ValueError):
            async with httpx.AsyncClient(timeout=2) as http:
                answer = await http.get(f"{self.url}{path}", headers={"Authorization": f"Bearer {TOKEN}"})
                if answer.status_code == 200:
                    data: dict[str, Any] = answer.json()
                    return data
        return None

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def sum_in_log(self, pattern: str) -> int:
        """The sum of `pattern`'s first group (a count) over every line of the log that matches it."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return sum(int(match.group(1)) for match in re.finditer(pattern, text))


async def split_evenly(nodes: list[Instance], estates: int) -> bool:
    """Every instance answers /health and owns its equal share of the `estates` (the leases split)."""
    healths = [await node.get("/health") for node in nodes]
    owned = [int(h.get("cluster_estates_owned", 0)) if h else -1 for h in healths]
    return sum(owned) == estates and min(owned) == estates // len(nodes)
