"""Plate pictures end to end: a simulated 臻识 Alphadigi camera pushes a blacklisted plate with its plate
and scene pictures (base64, as the camera sends them) to the real camera port → the writer stores them
under the evidence dir → the incident API lists them with the camera links → the picture route serves
them to a caller of the estate (401 without a credential, 404 for another estate's caller and for refs
outside the naming scheme) → the retention task deletes them (a retention of seconds, by config)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from drivers.sim.host import SimulationHost
from gateway.config import parse_config
from gateway.runtime.app import App

pytestmark = pytest.mark.integration
SUN, MOON = "sun-viewer-token-0123456789", "moon-viewer-token-0123456789"
PLATE = "粤B66666"
NVR = "rtsp://192.168.1.64/Streaming/tracks/101?starttime={start}&endtime={end}"
FRIGATE = "http://frigate.lan:5000/api/gate_cam/start/{start}/end/{end}/clip.mp4"
FAKE_JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 4 + b"\xff\xd9"


def site(tmp_path: Path, retention_days: float) -> str:
    return f"""\
store: {{path: "{tmp_path / "gw.db"}"}}
api:
  host: 127.0.0.1
  port: 0
  tokens:
    - {{name: sun, token: "{SUN}", role: viewer, estates: [sunshine]}}
    - {{name: moon, token: "{MOON}", role: viewer, estates: [moon]}}
http_push: {{host: 127.0.0.1, port: 0}}
escalation: {{enabled: false}}
evidence: {{dir: evidence, retention_days: {retention_days}, cleanup_interval: 0.5}}
estates:
  - id: sunshine
    name: {{zh: 阳光花园, en: Sunshine Garden}}
    vehicles:
      blacklist: [{{plate: "{PLATE}", label: 欠费车辆}}]
    devices:
      - id: cam-in
        family: plate_barrier
        profile: alphadigi_http
        lane_direction: in
        http_push: {{token: "camera-token-0123456789"}}
        cameras:
          - {{name: {{zh: 入口录像, en: Entrance NVR}}, style: hikvision, url: "{NVR}",
             before: 30, after: 60}}
          - {{name: {{zh: Frigate 片段, en: Frigate clip}}, style: frigate, url: "{FRIGATE}"}}
  - id: moon
    name: {{zh: 月亮湾, en: Moon Bay}}
"""


async def until(predicate: Callable[[], Any], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {within}s waiting for {what}"
        await asyncio.sleep(0.05)


@asynccontextmanager
async def running(tmp_path: Path, retention_days: float = 30) -> AsyncIterator[tuple[App, SimulationHost]]:
    config = parse_config(site(tmp_path, retention_days), "site.yaml", {})
    async with SimulationHost(config) as host:
        app, stop = App(config, base_dir=tmp_path), asyncio.Event()
        task = asyncio.create_task(app.run(stop))
        await asyncio.wait_for(app.ready.wait(), 10)
        assert app.push_port is not None
        host.push_to(app.push_port)
        try:
            yield app, host
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)


async def push_blacklisted(app: App, host: SimulationHost, plate_jpeg: bytes, scene_jpeg: bytes) -> int:
    """The camera reads the blacklisted plate with its pictures; returns the incident's id."""
    await host.apply(
        "cam-in", "plate", {"plate": PLATE, "pictures": {"plate": plate_jpeg, "scene": scene_jpeg}}
    )
    await until(lambda: app.service.opened >= 1, 5, "the blacklisted-plate incident")
    incidents = [i for i in app.service.manager.by_id.values() if i.rule == "plate_blacklisted"]
    assert len(incidents) == 1
    return incidents[0].id


async def test_pictures_are_stored_listed_served_in_scope_and_expire(tmp_path: Path) -> None:
    async with running(tmp_path, retention_days=0.00005) as (app, host):  # 4.3 s
        assert app.pictures is not None
        incident_id = await push_blacklisted(app, host, FAKE_JPEG, FAKE_JPEG[:-2] + b"scene\xff\xd9")
        await until(
            lambda: app.pictures is not None and app.pictures.stats.stored == 2, 5, "pictures written"
        )
        files = sorted((tmp_path / "evidence" / "sunshine" / "cam-in").rglob("*.jpg"))
        assert len(files) == 2 and files[0].read_bytes() in (FAKE_JPEG, FAKE_JPEG[:-2] + b"scene\xff\xd9")
        api = f"http://127.0.0.1:{app.api_port}"
        async with httpx.AsyncClient(base_url=api) as client:
            sun = {"Authorization": f"Bearer {SUN}"}
            detail = (await client.get(f"/incidents/{incident_id}", headers=sun)).json()
            evidence = detail["evidence"]
            assert {link["url"].split("?")[0].split("/start/")[0] for link in evidence["links"]} == {
                "rtsp://192.168.1.64/Streaming/tracks/101", "http://frigate.lan:5000/api/gate_cam"
            }  # fmt: skip
            nvr = next(link for link in evidence["links"] if link["url"].startswith("rtsp"))
            assert nvr["end"] - nvr["start"] == 90 and "Z&endtime=" in nvr["url"]
            pictures = evidence["pictures"]
            assert sorted(p["kind"] for p in pictures) == ["plate", "scene"]
            assert all(p["plate"] == PLATE and p["stored"] for p in pictures)
            url = next(p["url"] for p in pictures if p["kind"] == "plate")
            reply = await client.get(url, headers=sun)
            assert reply.status_code == 200 and reply.content == FAKE_JPEG
            assert reply.headers["content-type"] == "image/jpeg"
            assert (await client.get(url)).status_code == 401
            assert (await client.get(url, headers={"Authorization": f"Bearer {MOON}"})).status_code == 404
            other = url.replace("/evidence/sunshine/", "/evidence/moon/")
            assert (await client.get(other, headers={"Authorization": f"Bearer {MOON}"})).status_code == 404
            traversal = url.split("?")[0] + "?ref=..%2F..%2F..%2Fgw.db"
            assert (await client.get(traversal, headers=sun)).status_code == 404
            moon_detail = await client.get(
                f"/incidents/{incident_id}", headers={"Authorization": f"Bearer {MOON}"}
            )
            assert moon_detail.status_code == 404
            # retention: 4.3 s after the read, the task (every 0.5 s) deletes them, counted
            await until(lambda: not any((tmp_path / "evidence").rglob("*.jpg")), 10, "retention")
            assert app.health()["evidence_deleted"] == 2
            assert (await client.get(url, headers=sun)).status_code == 404
            evidence = (await client.get(f"/incidents/{incident_id}", headers=sun)).json()["evidence"]
            assert (
                evidence["pictures"] == [] and len(evidence["links"]) == 2
            )  # links stay: the NVR keeps video
