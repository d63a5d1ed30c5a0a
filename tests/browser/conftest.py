"""Headless Chromium for the browser tests: Debian's /usr/bin/chromium driven by Playwright (the project
never downloads a browser). Screenshots go to artifacts/ (kept by CI, ignored by git)."""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright
from playwright.async_api import Error as PlaywrightError

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "browser"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield browser
        finally:
            await browser.close()


class PageErrors:
    """Console errors and uncaught exceptions of a page: a test asserts there are none."""

    def __init__(self, page: Page) -> None:
        self.messages: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.messages.append(f"pageerror: {exc}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.messages.append(f"console.error: {message.text}")


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


async def keep_screenshot(page: Page, path: Path, full_page: bool = False) -> None:
    """A screenshot for people to look at, not an assertion: one that Chromium refuses while a page is
    being replaced ("Unable to capture screenshot", seen once in CI right after a redirect) is tried
    again after the page has loaded, then given up with a log line; the test's checks decide."""
    for attempt in range(3):
        try:
            await page.screenshot(path=str(path), full_page=full_page)
            return
        except PlaywrightError as exc:
            if attempt == 2:
                logging.getLogger(__name__).warning("screenshot %s not taken: %s", path.name, exc)
                return
            await page.wait_for_load_state("load")
            await asyncio.sleep(0.2)
