"""The estate page's guard-tour and maintenance sections in headless Chromium, over real HTTP from a
running App (ManualClock, Modbus generator simulator, private Mosquitto): both sections render without
a console error; an operator records the annual fire inspection from the page (the POST goes through
the API, the page reloads with the duty back to OK and the record's author); a screenshot goes to
artifacts/browser/estate-rounds.png."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser

from gateway.runtime.broker import MosquittoProcess
from tests.browser.conftest import PageErrors, keep_screenshot
from tests.integration.patrol_site import OPERATOR, local, patrol_site
from tests.integration.test_maintenance_duties import MAINTENANCE

pytestmark = pytest.mark.integration


async def test_estate_page_shows_tours_and_records_a_duty(
    browser: Browser, broker: MosquittoProcess, tmp_path: Path, artifacts: Path
) -> None:
    async with patrol_site(broker, tmp_path, local(2026, 11, 24, 21, 58), MAINTENANCE) as s:
        patrol, duties = s.app.rounds.patrol, s.app.rounds.maintenance
        assert patrol is not None and duties is not None
        await patrol.evaluate()  # the 22:00 tour is due
        await duties.evaluate()  # the fire inspection is overdue (last done 2025-11-01)
        context = await browser.new_context(
            viewport={"width": 1280, "height": 1400}, locale="zh-CN",
            extra_http_headers={"Authorization": f"Bearer {OPERATOR}"},
        )  # fmt: skip
        page = await context.new_page()
        errors = PageErrors(page)
        reply = await page.goto(
            f"http://127.0.0.1:{s.app.api_port}/console/estates/sunshine", wait_until="load", timeout=20_000
        )
        assert reply is not None and reply.status == 200
        assert await page.locator("#patrol h2").inner_text() == "今日巡更"
        tour = page.locator('#patrol tr[data-route="night"]')
        assert await tour.get_attribute("data-status") == "due"
        assert await tour.locator(".kvp").count() == 3
        fire = page.locator('#maintenance tr[data-duty="fire-annual"]')
        assert await fire.get_attribute("data-status") == "overdue"
        assert await page.locator('#maintenance tr[data-duty="gen-test"] form').count() == 0  # detected only
        await fire.locator("input[name=note]").fill("年检合格")
        async with page.expect_navigation(timeout=10_000):
            await fire.locator("button").click()
        fire = page.locator('#maintenance tr[data-duty="fire-annual"]')
        assert await fire.get_attribute("data-status") == "ok"
        assert "control-room" in await fire.inner_text()
        [record] = await s.app.store.list_maintenance_records("sunshine", "fire-annual")
        assert (record.by, record.note, record.how) == ("control-room", "年检合格", "recorded")
        await keep_screenshot(page, artifacts / "estate-rounds.png", full_page=True)
        assert errors.messages == []
        await context.close()
