"""The two-person rule and the job names in the console, in headless Chromium against a whole running
estate (gateway + generator simulator over Modbus TCP): a supervisor asks for a dangerous generator stop
through the API; a 班长 logged in to the console sees it waiting on the device page with a live notice,
confirms it with the button (a CSRF-checked POST) and the generator stops. The regulator's console is the
KPI page only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from drivers.sim.generator import GeneratorModel
from gateway.runtime.broker import MosquittoProcess
from tests.browser.conftest import PageErrors, keep_screenshot
from tests.integration.test_two_person_api import PASSWORD, _call, _keys, two_person_stack

pytestmark = pytest.mark.integration


async def log_in(page: Page, base: str, username: str, lands: str = "/console/") -> None:
    await page.goto(base + "/console/login")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("#login-submit")
    await page.wait_for_url(base + lands, timeout=10_000)


async def test_a_shift_leader_confirms_in_the_console(
    broker: MosquittoProcess, tmp_path: Path, browser: Browser, artifacts: Path
) -> None:
    async with two_person_stack(broker, tmp_path) as s:
        assert s.app is not None and s.http is not None
        gen = s.host.models["gen-1"]
        assert isinstance(gen, GeneratorModel)
        key = await _keys(s)
        gen.mains_ok, gen.engine = False, "running"
        recent = s.app.recent
        await s.until(
            lambda: recent is not None
            and float(getattr(recent.latest("sunshine", "gen-1").get("total_power"), "value", 0)) > 0,
            5, "generator on load",
        )  # fmt: skip
        asked = await _call(s, key["duty.a"], "POST", "/devices/sunshine/gen-1/commands",
                            json={"command": "stop", "reason": "检修 service"})  # fmt: skip
        assert asked.status_code == 202
        base = str(s.http.base_url).rstrip("/")

        page = await browser.new_page()
        errors = PageErrors(page)
        await log_in(page, base, "duty.b")
        await expect(page.locator("#who")).to_contain_text("班长")  # the job, in Chinese first
        await page.goto(f"{base}/console/devices/sunshine/gen-1")
        await expect(page.locator("#pending-notice")).to_have_text("有 1 条危险指令待第二人确认")
        item = page.locator(f'#pending-list li[data-id="{asked.json()["id"]}"]')
        await expect(item).to_contain_text("duty.a")
        assert gen.mode == "auto"
        await keep_screenshot(page, artifacts / "two-person-pending.png", full_page=True)
        await item.get_by_role("button", name="确认并下发").click()
        await expect(page.locator("#pending-none")).to_be_visible(timeout=5_000)
        assert gen.mode == "stop"
        await expect(page.locator("#pending-notice")).to_be_hidden()
        assert errors.messages == []

        regulator = await browser.new_page()
        regulator_errors = PageErrors(regulator)
        await log_in(regulator, base, "district", lands="/console/kpis")
        options = await regulator.locator("#kpi-estate option").evaluate_all("o => o.map(x => x.value)")
        assert sorted(options) == ["maple", "sunshine"]  # every estate, of every company
        await expect(regulator.locator("#kpis")).not_to_contain_text("加载", timeout=5_000)
        await regulator.wait_for_timeout(1000)  # the feed was refused once (4403), not retried
        assert regulator_errors.messages == []
        await regulator.goto(f"{base}/console/devices/sunshine/gen-1")
        assert re.search(r"/console/kpis$", regulator.url)
        await expect(regulator.locator("#who")).to_contain_text("监管")
