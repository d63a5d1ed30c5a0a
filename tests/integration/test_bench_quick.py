"""`bench/run --quick` as CI runs it: every measurement produces its row of the one table.

Only the table's shape is checked, never the targets: on a shared 2-core machine the figures move.
Quick mode leaves out the long measurements unless they are named with `--only`: Node-RED (it needs npm
and a download; never a test dependency), the scale fleet and the soak
(tests/integration/test_soak_quick.py runs `bench/soak.py --quick` itself).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "bench" / "run"
LIMIT = 300.0  # quick mode takes about 20 s here, longer on a loaded CI machine

ROWS = (
    "MQTT ingest msgs/s",
    "publish → incident, in-process LiveFeed, p99",
    "publish → incident, in-process LiveFeed, p50",
    "publish → incident, WebSocket /feed/ws client, p99",
    "publish → incident, WebSocket /feed/ws client, p50",
    "Modbus value step → incident on live feed, p99",
    "Modbus block reads/s, 500 devices",
    "Modbus block reads per CPU-second",
    "alert core readings/s, 1,000 vs 10 rules per estate",
)


@pytest.mark.timeout(LIMIT + 30)
def test_bench_quick_prints_every_row() -> None:
    proc = subprocess.Popen(
        [str(RUN), "--quick"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own group: on a timeout the whole run (broker, children) is stopped
    )
    try:
        out, _ = proc.communicate(timeout=LIMIT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"bench/run --quick did not finish within {LIMIT:.0f}s:\n{out[-3000:]}")
    assert proc.returncode == 0, out[-3000:]
    assert "skipped: scale, soak, node-red;" in out, out[-3000:]  # quick: only with --only
    table = out[out.index("figure ") :]
    assert "FAILED" not in table, table
    lines = table.splitlines()
    for row in ROWS:
        line = next((ln for ln in lines if ln.startswith(row)), None)
        assert line is not None, f"no row {row!r} in:\n{table}"
        assert line.rstrip().endswith((" yes", " no")), line
    assert "machine" in lines and any(ln.strip().startswith("cores") for ln in lines)


def test_kpi_round_quick_prints_both_ways() -> None:
    """`bench/kpi_round.py --quick` (a second): both ways of a round and of a save, on one filled engine."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "kpi_round.py"), "--quick"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("KPI round: 20 estates") and " 0 incidents" not in lines[0], lines[0]
    for way in ("round at once", "round paced", "save at once", "save paced"):
        assert any(ln.startswith(way) and ln.count(" ms ") == 2 for ln in lines), proc.stdout
    for what in ("round", "save"):
        assert any(ln.startswith(f"longest hold, {what} paced / at once: ") for ln in lines), proc.stdout
