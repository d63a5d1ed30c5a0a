#!/usr/bin/env python3
"""Live-feed latency to the browser: from an incident being opened to its row in the console's DOM.

What is measured
    A whole estate (tests/integration/stack.py: private Mosquitto, Modbus and MQTT simulators, the
    gateway App with its API on a free port, wired for the console as tests/browser/console_stack.py
    does) and headless Chromium (Debian's /usr/bin/chromium through Playwright) logged in as an
    operator on the live board. N incidents are opened for real, one every S s, by feeding alarm
    transitions to ``app.service.apply`` (the alert core's output: committed to SQLite by the
    IncidentService, then published to the live feed); correlation and the flood incident are off so
    each transition opens its own incident. Per incident, in wall-clock ms on this machine:

    * commit: the in-process feed subscriber receives the committed change (stamped ``time.time()``);
    * ws (baseline): the page's WebSocket receives the incident message (a listener added before the
      page's own script; ``performance.timeOrigin + performance.now()``) — the floor for any page;
    * dom: a MutationObserver on the board's tbody sees the row with that incident id added.

    Latency = stamp − the incident's ``opened_at`` (the transition time, ``time.time()`` just before
    ``apply``). Printed as p50 / p99 / max; dom − ws is what the page's own rendering costs.

Validity (exit 1 with a one-line reason otherwise): every incident opened exactly one new incident,
reached the page's WebSocket, and its row appeared in the DOM, within the time bound.

Run:  .venv/bin/python bench/console_latency.py [--incidents N] [--interval S] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: the repository's packages and tests/ helpers

from playwright.async_api import Page, async_playwright  # noqa: E402

from gateway.alerts import Transition  # noqa: E402
from gateway.model import Priority  # noqa: E402
from gateway.runtime.broker import MosquittoProcess  # noqa: E402
from tests.browser.conftest import CHROMIUM  # noqa: E402
from tests.browser.console_stack import PASSWORD, ConsoleApp, console_stack  # noqa: E402
from tests.integration.stack import Stack  # noqa: E402

NO_GROUPING = "incidents: {correlation_window: 0, flood_count: 100000}\n"
PRIORITIES = [Priority.HIGH, Priority.MEDIUM, Priority.LOW, Priority.HIGH, Priority.CRITICAL]

WS_PROBE = """
(() => {
  const Native = window.WebSocket;
  window.__ws = {};
  window.WebSocket = function (url, protocols) {
    const ws = new Native(url, protocols);
    ws.addEventListener("message", (event) => {
      const now = performance.timeOrigin + performance.now();
      if (!event.data.includes('"new": true') && !event.data.includes('"new":true')) return;
      const m = JSON.parse(event.data);
      if (m.type === "incident" && m.new && !(m.incident.id in window.__ws)) window.__ws[m.incident.id] = now;
    });
    return ws;
  };
  window.WebSocket.prototype = Native.prototype;
})();
"""
DOM_PROBE = """
() => {
  window.__dom = {};
  new MutationObserver((mutations) => {
    const now = performance.timeOrigin + performance.now();
    for (const m of mutations) for (const n of m.addedNodes) {
      const id = n.nodeType === 1 && n.dataset ? n.dataset.id : undefined;
      if (id && !(id in window.__dom)) window.__dom[id] = now;
    }
  }).observe(document.getElementById("rows"), { childList: true });
}
"""


class BenchError(RuntimeError):
    pass


def transition(i: int, ts: float) -> Transition:
    rule = f"bench_{i:04d}"
    return Transition(
        key=f"sunshine/gen-1/{rule}", estate="sunshine", device="gen-1", rule=rule,
        priority=PRIORITIES[i % len(PRIORITIES)], active=True, ts=ts, value=i,
        message_zh=f"压测报警 {i}", message_en=f"Bench alarm {i}",
    )  # fmt: skip


def summary(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"{name:<28}{statistics.median(ordered):>9.1f}{p99:>9.1f}{ordered[-1]:>9.1f}"


async def log_in(page: Page, base: str) -> None:
    await page.add_init_script(WS_PROBE)
    await page.goto(base + "/console/login")
    await page.fill("#username", "bench")
    await page.fill("#password", PASSWORD)
    await page.click("#login-submit")
    await page.wait_for_url(base + "/console/", timeout=10_000)
    await page.wait_for_function("document.body.dataset.feed === 'live'", timeout=5_000)
    await page.evaluate(DOM_PROBE)


async def open_incidents(app: ConsoleApp, n: int, interval: float) -> dict[int, float]:
    """Open n incidents, one every `interval` s; their opened_at by id."""
    opened: dict[int, float] = {}
    for i in range(n):
        changes = await app.service.apply([transition(i, time.time())])
        new = [c for c in changes if c.new]
        if len(new) != 1:
            raise BenchError(f"transition {i} opened {len(new)} incidents, not 1")
        opened[new[0].incident.id] = new[0].incident.opened_at
        await asyncio.sleep(interval)
    return opened


async def measure(s: Stack, n: int, interval: float) -> Stamps:
    app = s.app
    assert isinstance(app, ConsoleApp)
    await app.add_user("bench", "operator", ["*"])
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = await (await browser.new_context(viewport={"width": 1440, "height": 900})).new_page()
            await log_in(page, f"http://127.0.0.1:{app.api_port}")
            offset = time.time() - time.monotonic()
            seen_before = len(s.feed)
            opened = await open_incidents(app, n, interval)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                dom = await page.evaluate("window.__dom")
                if all(str(i) in dom for i in opened):
                    break
                await asyncio.sleep(0.1)
            ws: dict[str, float] = await page.evaluate("window.__ws")
            dom = await page.evaluate("window.__dom")
        finally:
            await browser.close()
    commits = {
        item.change.incident.id: (at + offset) * 1000
        for at, item in s.feed[seen_before:]
        if item.change.new and item.change.incident.id in opened
    }
    return Stamps(opened, commits, ws, dom)


@dataclass
class Stamps:
    opened: dict[int, float]  # epoch s
    commits: dict[int, float]  # epoch ms, and below
    ws: dict[str, float]
    dom: dict[str, float]


async def run(n: int, interval: float) -> None:
    broker = MosquittoProcess().start()
    try:
        with tempfile.TemporaryDirectory(prefix="eg-console-bench-") as tmp:
            async with console_stack(broker, Path(tmp), rules=NO_GROUPING) as s:
                stamps = await measure(s, n, interval)
    finally:
        broker.close()
    opened, commits, ws, dom = stamps.opened, stamps.commits, stamps.ws, stamps.dom
    missing = [i for i in opened if str(i) not in dom or str(i) not in ws or i not in commits]
    if missing:
        raise BenchError(f"{len(missing)} of {n} incidents never reached the page (ids {missing[:5]}...)")
    at = {i: opened[i] * 1000 for i in opened}
    print(f"console live-feed latency: {n} incidents, one every {interval * 1000:.0f} ms "
          f"(board holding up to {n} rows), ms from opened_at")  # fmt: skip
    print(f"{'':<28}{'p50':>9}{'p99':>9}{'max':>9}")
    print(summary("commit (in-process feed)", [commits[i] - at[i] for i in opened]))
    print(summary("ws message in the page", [ws[str(i)] - at[i] for i in opened]))
    print(summary("row in the DOM", [dom[str(i)] - at[i] for i in opened]))
    print(summary("render (dom - ws)", [dom[str(i)] - ws[str(i)] for i in opened]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--incidents", type=int, default=100)
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between two incidents")
    parser.add_argument("--quick", action="store_true", help="20 incidents")
    args: Any = parser.parse_args(argv)
    n = 20 if args.quick else args.incidents
    logging.basicConfig(level=logging.ERROR)  # the stack's escalation says "nobody on duty" per incident
    try:
        asyncio.run(asyncio.wait_for(run(n, args.interval), 60 + n * args.interval * 2))
    except (BenchError, TimeoutError) as exc:
        print(f"invalid run: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
