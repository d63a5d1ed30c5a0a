"""The incident page shows its evidence in headless Chromium: the camera links (NVR playback, Frigate
clip) as links only, the plate and scene pictures as thumbnails the browser really decodes, loaded from
the gateway's authenticated picture route; nothing is fetched from the cameras' hosts and the page logs
no error. The pictures are real JPEGs rendered by Chromium itself, pushed by the simulated Alphadigi
camera to the real camera port. Saved as artifacts/browser/incident-evidence.png."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser, Request

from tests.browser.conftest import PageErrors, keep_screenshot
from tests.integration.test_evidence_pictures import PLATE, SUN, push_blacklisted, running, until


async def jpeg(browser: Browser, text: str, width: int, height: int) -> bytes:
    page = await browser.new_page(viewport={"width": width, "height": height})
    style = (
        f"margin:0;width:{width}px;height:{height}px;background:#1d4ed8;color:#fff;font:bold 28px sans-serif"
    )
    await page.set_content(f'<body style="{style}">{text}</body>')
    data = await page.screenshot(type="jpeg", quality=80)
    await page.close()
    return data


async def test_incident_page_renders_camera_links_and_plate_pictures(
    browser: Browser, tmp_path: Path, artifacts: Path
) -> None:
    plate_jpeg, scene_jpeg = await jpeg(browser, PLATE, 160, 48), await jpeg(browser, "scene 入口", 320, 180)
    async with running(tmp_path) as (app, host):
        incident_id = await push_blacklisted(app, host, plate_jpeg, scene_jpeg)
        await until(
            lambda: app.pictures is not None and app.pictures.stats.stored == 2, 5, "pictures written"
        )
        base = f"http://127.0.0.1:{app.api_port}"
        context = await browser.new_context(
            viewport={"width": 1280, "height": 900}, extra_http_headers={"Authorization": f"Bearer {SUN}"}
        )
        page = await context.new_page()
        errors = PageErrors(page)
        hosts: list[str] = []

        def note(request: Request) -> None:
            hosts.append(request.url.split("/")[2])

        page.on("request", note)
        reply = await page.goto(f"{base}/console/incidents/{incident_id}", wait_until="networkidle")
        assert reply is not None and reply.status == 200
        assert await page.locator("#evidence").count() == 1
        assert "证据" in await page.locator("h2", has_text="证据").inner_text()
        links = page.locator("a.camera-link")
        hrefs = [await links.nth(i).get_attribute("href") for i in range(await links.count())]
        assert len(hrefs) == 2
        assert any(h and h.startswith("rtsp://192.168.1.64/Streaming/tracks/101?starttime=") for h in hrefs)
        assert any(h and h.startswith("http://frigate.lan:5000/api/gate_cam/start/") for h in hrefs)
        assert "入口录像" in await page.locator("#camera-links").inner_text()
        thumbs = page.locator("#plate-pictures img.evidence-thumb")
        assert await thumbs.count() == 2
        widths = await thumbs.evaluate_all("els => els.map(e => [e.complete, e.naturalWidth])")
        assert sorted(w for _, w in widths) == [160, 320], widths  # decoded: the real pictures arrived
        assert PLATE in await page.locator("#plate-pictures").inner_text()
        assert set(hosts) == {base.split("/")[2]}, f"fetched from elsewhere: {hosts}"
        csp = reply.headers["content-security-policy"]
        assert "img-src 'self' data:;" in csp  # no camera set embed: nothing outside may load
        await keep_screenshot(page, artifacts / "incident-evidence.png", full_page=True)
        assert errors.messages == []
        await context.close()
