"""The CLI as an operator runs it: `run` stops cleanly on SIGTERM; `demo` shows incidents, leaves nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from gateway.runtime.broker import MosquittoProcess, free_port
from tests.integration.stack import TOKENS, site_yaml

pytestmark = pytest.mark.integration
CLI = [sys.executable, "-m", "gateway.runtime.cli"]


def _wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer in {timeout}s")


def test_run_stops_within_five_seconds_on_sigterm(broker: MosquittoProcess, tmp_path: Path) -> None:
    api_port = free_port()
    text = site_yaml(broker.port, free_port(), tmp_path / "gw.db", "eg-sigterm").replace(
        "port: 0", f"port: {api_port}"
    )
    site = tmp_path / "site.yaml"
    site.write_text(text)
    with subprocess.Popen([*CLI, "run", str(site)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
        _run_and_terminate(proc, api_port)


def _run_and_terminate(proc: subprocess.Popen[bytes], api_port: int) -> None:
    try:
        _wait_http(f"http://127.0.0.1:{api_port}/health", 15)
        incidents = httpx.get(
            f"http://127.0.0.1:{api_port}/incidents", headers={"Authorization": f"Bearer {TOKENS['viewer']}"}
        )
        assert incidents.status_code == 200
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)
        assert time.monotonic() - started < 5.0
        assert code == 0
        output = proc.stdout.read().decode() if proc.stdout else ""
        assert "stopped" in output and "Traceback" not in output
        assert TOKENS["operator"] not in output  # secrets never reach the log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout
    return [int(x) for x in out.split()]


@pytest.mark.parametrize("broker_kind", ["mosquitto", "embedded"])
def test_demo_shows_incidents_and_leaves_no_process_behind(broker_kind: str) -> None:
    broker_pids: list[int] = []
    env = {**os.environ, "ESTATE_GATEWAY_BROKER": broker_kind}
    argv = [*CLI, "demo", "--duration", "9"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env) as proc:
        try:
            deadline = time.monotonic() + 5
            while broker_kind == "mosquitto" and not broker_pids and time.monotonic() < deadline:
                broker_pids = _children(proc.pid)
                time.sleep(0.1)
            output = proc.communicate(timeout=40)[0].decode()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, output
    assert "阳光花园" in output and "/docs" in output
    assert "OPENED" in output and "gate-north" in output  # the door forced at t=5 s
    assert "demo stopped" in output
    if broker_kind == "embedded":
        assert "in-process amqtt" in output
        return
    assert broker_pids and f"mosquitto pid {broker_pids[0]}" in output, "the demo runs its own mosquitto"
    for pid in broker_pids:
        assert (
            not os.path.exists(f"/proc/{pid}") or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
        )
