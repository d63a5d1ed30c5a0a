"""The console in headless Chromium against a whole running estate (gateway + simulators): log in, a
simulated fire alarm reaches the board live, acknowledge it in the page, detail / overview / device /
KPI pages, language switch, log out; an operator of another estate never sees the incident."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from gateway.runtime.broker import MosquittoProcess
from tests.browser.conftest import PageErrors, keep_screenshot
from tests.browser.console_stack import PASSWORD, ConsoleApp, console_stack
from tests.integration.stack import Stack

pytestmark = pytest.mark.integration


async def log_in(page: Page, base: str, username: str) -> None:
    await page.goto(base + "/")
    assert "/console/login" in page.url
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("#login-submit")
    await page.wait_for_url(base + "/console/", timeout=10_000)
    # A selector wait, not wait_for_function: Playwright evaluates a string predicate with eval() in the
    # page, which the console's CSP (script-src 'self') refuses.
    await page.locator("body[data-feed='live']").wait_for(state="attached", timeout=5_000)


async def fire_alarm(s: Stack) -> tuple[int, float]:
    """Set a smoke detector of the simulated panel in fire; (incident id, when the gateway opened it)."""
    panel = s.host.models["fire-1"]
    panel.values["L1-D003.fire"] = True  # type: ignore[attr-defined]
    await s.until(lambda: s.opened("fire_point_fire"), 5, "fire incident")
    at, item = next((at, item) for at, item in s.feed if item.change.new and item.change.incident.rule ==
                    "fire_point_fire")  # fmt: skip
    return item.change.incident.id, at


async def board_shows_and_acks(page: Page, s: Stack, artifacts: Path) -> int:
    """A fire alarm reaches the board live (within 1 s of its commit), blinking, with the tone; the
    operator acknowledges it in the page. Returns the incident id."""
    incident_id, opened = await fire_alarm(s)
    row = page.locator(f'#rows tr[data-id="{incident_id}"]')
    await row.wait_for(timeout=1_000)  # live, no reload
    latency = time.monotonic() - opened
    assert latency < 1.0, latency
    await expect(row).to_have_class(re.compile(r"\bunacked\b"))
    await expect(row).to_have_class(re.compile(r"\bprio-critical\b"))
    await expect(row.locator(".badge.blink")).to_have_text("紧急")
    assert int(await page.locator("body").get_attribute("data-tones") or "0") >= 1  # the alarm tone ran
    await expect(page.locator('#counts [data-priority="critical"] b')).to_have_text("1")
    await keep_screenshot(page, artifacts / "console-board.png", full_page=True)
    await row.locator("button.ack").click()
    await expect(row).to_have_class(re.compile(r"\bstate-acknowledged\b"), timeout=3_000)
    await expect(row.locator(".c-state")).to_have_text("已确认")
    # Bulk: a forced door opens another incident; select every unacknowledged row, acknowledge them.
    await s.host.mqtt_devices["gate-north"].event("door_forced", reader=1)
    await s.until(lambda: s.opened("gate_door_forced"), 3, "door-forced incident")
    door = page.locator(f'#rows tr[data-id="{s.opened("gate_door_forced")[0].change.incident.id}"]')
    await expect(door).to_have_class(re.compile(r"\bunacked\b"), timeout=1_000)
    await page.check("#select-all")
    await expect(page.locator("#selected-count")).to_have_text("1")
    await page.click("#bulk-ack")
    await expect(door).to_have_class(re.compile(r"\bstate-acknowledged\b"), timeout=3_000)
    await expect(page.locator("#unacked-count")).to_have_text("0")
    return incident_id


async def detail_and_comment(page: Page, base: str, incident_id: int, artifacts: Path) -> None:
    await page.locator(f'#rows tr[data-id="{incident_id}"] .c-title a').click()
    await page.wait_for_url(f"{base}/console/incidents/{incident_id}")
    await expect(page.locator("#incident-state")).to_have_text("已确认")
    await expect(page.locator("#timeline tr.tl-opened")).to_have_count(1)
    await expect(page.locator("#timeline tr.tl-acknowledged td").nth(2)).to_have_text("wang")
    await page.fill('form[data-action="comment"] input[name="text"]', "已派保安到 3号楼 2层 核实")
    await page.click('form[data-action="comment"] button')
    await expect(page.locator("#timeline")).to_contain_text("已派保安到 3号楼 2层 核实", timeout=3_000)
    await keep_screenshot(page, artifacts / "console-incident.png", full_page=True)


async def overview_device_kpi(page: Page, base: str, s: Stack, artifacts: Path) -> None:
    await page.goto(f"{base}/console/estates/sunshine")
    await expect(page.locator('#devices tr[data-device="fire-1"] .pill')).to_have_text("报警")
    await expect(page.locator(".tile")).to_have_count(6)
    await keep_screenshot(page, artifacts / "console-estate.png", full_page=True)
    gen = s.host.models["gen-1"]
    await s.until(lambda: gen.engine == "running", 15, "generator running")  # type: ignore[attr-defined]
    await asyncio.sleep(2)  # a few polls at speed: the chart shows the start
    await page.goto(f"{base}/console/devices/sunshine/gen-1")
    await page.select_option("#chart-point", "engine_speed")
    await page.locator("#chart svg path.line").wait_for(state="attached", timeout=5_000)
    await expect(page.locator("#chart-info")).to_contain_text("rpm")
    await keep_screenshot(page, artifacts / "console-device.png", full_page=True)
    await page.goto(f"{base}/console/kpis?estate=sunshine")
    await page.locator("#kpis .kpi").first.wait_for(timeout=5_000)
    await keep_screenshot(page, artifacts / "console-kpi.png", full_page=True)


async def english_then_log_out(page: Page, base: str, incident_id: int, artifacts: Path) -> None:
    await page.goto(f"{base}/console/")
    await page.click("#lang-switch")
    await expect(page.locator("#board thead")).to_contain_text("Priority")
    await expect(page.locator(f'#rows tr[data-id="{incident_id}"] .c-state')).to_have_text("Acknowledged")
    await keep_screenshot(page, artifacts / "console-board-en.png", full_page=True)
    await page.click("#logout")
    await page.wait_for_url(re.compile(r"/console/login"))
    await page.goto(f"{base}/console/")
    assert "/console/login" in page.url  # the board is unreachable without the session
    await expect(page.locator("#username")).to_be_visible()
    await keep_screenshot(page, artifacts / "console-login.png")


async def other_estate_sees_nothing(browser: Browser, base: str, incident_id: int) -> None:
    """An operator of the other estate: not on the board, not in the counts, detail URL not found."""
    other = await browser.new_context()
    page = await other.new_page()
    errors = PageErrors(page)
    await log_in(page, base, "li")
    assert await page.locator(f'#rows tr[data-id="{incident_id}"]').count() == 0
    await expect(page.locator('#counts [data-priority="critical"] b')).to_have_text("0")
    assert "阳光花园" not in await page.content()
    reply = await page.goto(f"{base}/console/incidents/{incident_id}")
    assert reply is not None and reply.status == 404
    await expect(page.locator("#not-found")).to_be_visible()
    assert not [m for m in errors.messages if "404" not in m], errors.messages
    await other.close()


async def test_console_end_to_end(
    broker: MosquittoProcess, tmp_path: Path, browser: Browser, artifacts: Path
) -> None:
    async with console_stack(broker, tmp_path) as s:
        app = s.app
        assert isinstance(app, ConsoleApp)
        await app.add_user("wang", "operator", ["*"], "王值班")
        await app.add_user("li", "operator", ["maple"], "李值班")
        base = f"http://127.0.0.1:{app.api_port}"
        context = await browser.new_context(viewport={"width": 1440, "height": 860})
        page = await context.new_page()
        errors = PageErrors(page)
        await log_in(page, base, "wang")
        assert await page.locator("#who").inner_text() == "王值班 值班员"
        s.host.models["gen-1"].set_mains(False)  # type: ignore[attr-defined]  # the generator starts
        incident_id = await board_shows_and_acks(page, s, artifacts)
        await detail_and_comment(page, base, incident_id, artifacts)
        await overview_device_kpi(page, base, s, artifacts)
        await english_then_log_out(page, base, incident_id, artifacts)
        assert not errors.messages, errors.messages
        await context.close()
        await other_estate_sees_nothing(browser, base, incident_id)
