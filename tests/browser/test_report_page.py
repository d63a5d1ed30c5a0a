"""The monthly assessment page in headless Chromium, served over real HTTP (uvicorn): it renders
without a console error, fetches nothing but itself, fits A4 when printed, and is saved as
artifacts/browser/report-<lang>.png for a human to look at."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn
from playwright.async_api import Browser, Request

from tests.browser.conftest import PageErrors, keep_screenshot
from tests.integration.test_kpi_api import TOKENS, Estate, api_app, gateway

__all__ = ["gateway"]  # the scripted-November fixture, shared with the API tests


@pytest.fixture
async def base_url(gateway: Estate) -> AsyncIterator[str]:
    app = api_app(gateway, gateway.kpi)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", access_log=False)
    )
    task = asyncio.create_task(server.serve())
    for _ in range(250):  # bounded: 5 s
        if server.started or task.done():
            break
        await asyncio.sleep(0.02)
    assert server.started, "uvicorn did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(task, 5.0)


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
async def test_report_page(browser: Browser, base_url: str, artifacts: Path, lang: str) -> None:
    context = await browser.new_context(
        viewport={"width": 900, "height": 1200},
        extra_http_headers={"Authorization": f"Bearer {TOKENS['viewer'].token}"},
        locale=lang,
    )
    page = await context.new_page()
    errors = PageErrors(page)
    requested: list[str] = []

    def note(request: Request) -> None:
        requested.append(request.url)

    page.on("request", note)
    url = f"{base_url}/estates/sunshine/report?month=2026-11&format=html&lang={lang}"
    reply = await page.goto(url, wait_until="load", timeout=20_000)
    assert reply is not None and reply.status == 200
    title = "每月考核报告" if lang == "zh-CN" else "Monthly assessment report"
    assert await page.locator("h1").inner_text() == title
    assert await page.locator("svg.chart").count() == 2
    assert await page.locator("tbody tr").count() > 30
    assert await page.locator(".fail").count() >= 1  # the fire intact rate missed its 100 % target
    await keep_screenshot(page, artifacts / f"report-{lang}.png", full_page=True)
    await page.emulate_media(media="print")
    pdf = await page.pdf(format="A4", print_background=True)
    assert pdf.startswith(b"%PDF")
    assert requested == [url], f"the page fetched more than itself: {requested}"
    assert errors.messages == []
    await context.close()
