"""Evidence units: camera URL templates (time zones, windows, NVR styles), the picture store's naming,
lookup and retention (age, then bytes, oldest first), and which alarm moments an incident has."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from drivers.anpr.classifier import PlateClassifier
from drivers.anpr.mqtt import PlateDecoder
from drivers.anpr.registry import Category, Vehicle, VehicleRegistry
from drivers.profiles import MqttProfile, ProfileLibrary
from gateway.console.headers import ConsoleHeaders
from gateway.evidence import CameraLinkConfig, EvidenceConfig, EvidenceService, PictureStore, camera_link
from gateway.model import DeviceEvent, Incident, IncidentState, ManualClock, Priority, TimelineEntry

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 200 + b"\xff\xd9"
# 2026-11-24 08:30:00 in Shanghai (UTC+8) is 00:30:00 UTC
AT = datetime(2026, 11, 24, 0, 30, tzinfo=UTC).timestamp()


def camera(url: str, **kw: object) -> CameraLinkConfig:
    return CameraLinkConfig.model_validate({"name": {"zh": "大门", "en": "Gate"}, "url": url, **kw})


def test_hikvision_playback_in_the_estate_local_time() -> None:
    cam = camera("rtsp://nvr/Streaming/tracks/101?starttime={start}&endtime={end}", style="hikvision",
                 before=30, after=60)  # fmt: skip
    link = camera_link(cam, AT, "Asia/Shanghai", "sunshine", "gate-cam")
    assert link.url == "rtsp://nvr/Streaming/tracks/101?starttime=20261124T082930Z&endtime=20261124T083100Z"
    assert (link.start, link.end) == (AT - 30, AT + 60)


def test_the_same_moment_in_another_zone_and_in_utc() -> None:
    cam = camera("http://nvr/pb?t={ts}", style="dahua")
    assert camera_link(cam, AT, "Europe/Berlin", "e", "d").url == "http://nvr/pb?t=2026_11_24_01_30_00"
    utc = camera("http://nvr/pb?t={ts}", style="dahua", timezone="utc")
    assert camera_link(utc, AT, "Asia/Shanghai", "e", "d").url == "http://nvr/pb?t=2026_11_24_00_30_00"
    iso = camera("http://nvr/pb?t={ts}", style="iso")
    assert camera_link(iso, AT, "Asia/Shanghai", "e", "d").url == "http://nvr/pb?t=2026-11-24T08:30:00+08:00"


def test_frigate_clip_in_epoch_seconds_with_its_window() -> None:
    cam = camera("http://frigate:5000/api/{device}/start/{start}/end/{end}/clip.mp4", style="frigate",
                 before=10, after=20)  # fmt: skip
    url = camera_link(cam, AT + 0.7, "Asia/Shanghai", "e", "gate_cam").url
    assert url == f"http://frigate:5000/api/gate_cam/start/{int(AT - 9.3)}/end/{int(AT + 20.7)}/clip.mp4"


def test_a_template_with_an_unknown_placeholder_is_left_as_written() -> None:
    cam = camera("http://nvr/pb?ch={channel}&t={ts}")
    assert camera_link(cam, AT, "Asia/Shanghai", "e", "d").url == "http://nvr/pb?ch={channel}&t={ts}"


def _store(tmp_path: Path, clock: ManualClock, **kw: object) -> PictureStore:
    return PictureStore(tmp_path / "ev", EvidenceConfig.model_validate(kw), clock)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def test_pictures_are_named_found_by_time_and_plate_and_refused_outside_the_scheme(
    tmp_path: Path,
) -> None:
    clock = ManualClock(AT)
    store = _store(tmp_path, clock)
    refs = store.accept(
        "sunshine", "cam-1", int(AT * 1e9), "粤B12345", {"plate": _b64(JPEG), "scene": "http://cam/1.jpg"}
    )
    other = store.accept("sunshine", "cam-1", int((AT + 5) * 1e9), "粤A00001", {"plate": _b64(JPEG)})
    await store.drain()
    assert refs["scene"] == "http://cam/1.jpg" and refs["plate"].startswith("20261124/")
    assert store.stats.stored == 2 and store.stats.linked == 1
    found = store.find("sunshine", "cam-1", AT - 10, AT + 10, "粤B12345")
    assert {(p.kind, p.plate, p.url) for p in found} == {
        ("plate", "粤B12345", None),
        ("scene", "粤B12345", "http://cam/1.jpg"),
    }
    assert len(store.find("sunshine", "cam-1", AT - 10, AT + 10)) == 3
    assert store.find("sunshine", "cam-1", AT + 11, AT + 20) == []
    assert store.file_of("sunshine", "cam-1", other["plate"]) is not None
    for bad in ("../../etc/passwd", "20261124/../../x.jpg", f"20261124/{'1' * 13}-plate-.url", "/abs/x.jpg"):
        assert store.file_of("sunshine", "cam-1", bad) is None
    assert store.file_of("sunshine", "..", other["plate"]) is None


async def test_not_a_picture_and_too_large_are_dropped_and_counted(tmp_path: Path) -> None:
    store = _store(tmp_path, ManualClock(AT), max_picture_bytes=1024)
    store.accept("e", "d", int(AT * 1e9), "P1", {"plate": _b64(b"<html>not a picture</html>")})
    assert store.accept("e", "d", int(AT * 1e9), "P2", {"scene": _b64(JPEG * 10)}) == {}
    await store.drain()
    assert (store.stats.stored, store.stats.dropped_not_image, store.stats.dropped_too_large) == (0, 1, 1)


async def test_a_full_writer_queue_drops_and_counts_without_waiting(tmp_path: Path) -> None:
    store = _store(tmp_path, ManualClock(AT), queue=2)
    taken = [store.accept("e", "d", int((AT + i) * 1e9), "P", {"plate": _b64(JPEG)}) for i in range(5)]
    assert sum(1 for t in taken if t) == 2 and store.stats.dropped_queue_full == 3
    await store.drain()
    assert store.stats.stored == 2


async def test_retention_deletes_by_age_then_oldest_first_by_bytes(tmp_path: Path) -> None:
    clock = ManualClock(AT)
    picture = JPEG + b"\x00" * (300 * 1024)  # ~300 KiB each
    store = _store(tmp_path, clock, retention_days=2, max_bytes=1024 * 1024)
    for day in range(4):  # one picture a day, three days ago .. today
        store.accept("e", "d", int((AT - (3 - day) * 86400) * 1e9), f"P{day}", {"plate": _b64(picture)})
    store.accept("e", "d2", int(AT * 1e9), "P9", {"plate": _b64(picture)})
    store.accept("e", "d2", int((AT + 1) * 1e9), "P9", {"scene": _b64(picture)})
    await store.drain()
    assert store.stats.stored == 6
    deleted, size = await asyncio.to_thread(store.cleanup)
    # the 3-day-old one by age; then 5 × 300 KiB > 1 MiB: the oldest (2 days) goes, 4 × 300 KiB still
    # above, then the 1-day-old: 3 remain
    left = sorted(p.name for p in (tmp_path / "ev").rglob("*.jpg"))
    assert deleted == 3 and size >= 3 * 300 * 1024
    assert len(left) == 3 and store.stats.deleted == 3
    assert all(int(name.split("-")[0]) >= AT * 1000 for name in left)
    assert (await asyncio.to_thread(store.cleanup)) == (0, 0)
    clock.advance(3 * 86400)
    assert (await asyncio.to_thread(store.cleanup))[0] == 3
    assert not any((tmp_path / "ev").rglob("*.jpg"))


def _incident(timeline: list[TimelineEntry]) -> Incident:
    return Incident(
        id=7, estate="sunshine", device="cam-1", rule="plate_blacklisted",
        alarm_key="sunshine/cam-1/plate_blacklisted",
        priority=Priority.HIGH, state=IncidentState.OPEN, title="黑名单", opened_at=AT, updated_at=AT,
        timeline=timeline,
    )  # fmt: skip


async def test_an_incident_gets_links_per_alarm_moment_and_the_pictures_of_its_plate(tmp_path: Path) -> None:
    clock = ManualClock(AT)
    store = _store(tmp_path, clock)
    store.accept("sunshine", "cam-1", int((AT - 2) * 1e9), "粤B12345", {"plate": _b64(JPEG)})
    store.accept("sunshine", "cam-1", int((AT - 1) * 1e9), "粤A99999", {"plate": _b64(JPEG)})  # other car
    store.accept("sunshine", "cam-2", int((AT + 30) * 1e9), "粤C55555", {"plate": _b64(JPEG)})
    await store.drain()
    cams = {
        ("sunshine", "cam-1"): [
            camera("http://frigate/api/gate/start/{start}/end/{end}/clip.mp4", style="frigate")
        ],
        ("sunshine", "cam-2"): [camera("http://nvr/{ts}", style="dahua", embed=True)],
    }
    service = EvidenceService(cams, {"sunshine": "Asia/Shanghai"}, store, window=60)
    incident = _incident([
        TimelineEntry(AT, "opened", detail={"rule": "plate_blacklisted", "value": "粤B12345"}),
        TimelineEntry(AT + 5, "notified"),
        TimelineEntry(AT + 30, "alarm_correlated",
                      detail={"alarm": "sunshine/cam-2/plate_unknown_exit", "value": "粤C55555"}),
    ])  # fmt: skip
    evidence = await service.for_incident(incident)
    assert [(link["device"], link["url"]) for link in evidence["links"]] == [
        ("cam-1", f"http://frigate/api/gate/start/{int(AT - 30)}/end/{int(AT + 60)}/clip.mp4"),
        ("cam-2", "http://nvr/2026_11_24_08_30_30"),
    ]
    assert [(p["device"], p["plate"], p["stored"]) for p in evidence["pictures"]] == [
        ("cam-1", "粤B12345", True),
        ("cam-2", "粤C55555", True),
    ]
    assert evidence["pictures"][0]["url"].startswith("/evidence/sunshine/cam-1/picture?ref=20261124%2F")
    assert service.embed_origins() == ("http://nvr",)


def test_evidence_config_refuses_unknown_keys() -> None:
    with pytest.raises(ValueError, match="extra"):
        camera("http://nvr/{ts}", autoplay=True)


async def test_an_mqtt_camera_s_picture_urls_are_kept_as_links_on_the_classified_event(
    tmp_path: Path,
) -> None:
    profile = ProfileLibrary().get("generic_anpr_json")
    assert isinstance(profile, MqttProfile)
    registry = VehicleRegistry()
    registry.add(Vehicle("粤B66666", Category.BLACKLISTED, "欠费"))
    store = _store(tmp_path, ManualClock(AT))
    decoder = PlateDecoder(
        "sunshine", "cam-mqtt", profile, None, PlateClassifier(registry), None, store.accept
    )  # type: ignore[arg-type]
    payload = {"plate": "粤B66666", "list": "otherList", "direction": "in", "ts": AT,
               "plate_url": "http://192.168.1.70/snap/plate.jpg",
               "image_url": "ftp://not-http/x.jpg"}  # fmt: skip
    [event] = decoder.decode(
        "estate/sunshine/plate_barrier/cam-mqtt/event", orjson.dumps(payload), int(AT * 1e9)
    )
    assert isinstance(event, DeviceEvent) and event.kind == "plate_blacklisted"
    assert event.attributes["picture_plate"] == "http://192.168.1.70/snap/plate.jpg"
    await store.drain()
    [picture] = store.find("sunshine", "cam-mqtt", AT - 1, AT + 1, "粤B66666")
    assert (picture.kind, picture.url) == (
        "plate",
        "http://192.168.1.70/snap/plate.jpg",
    )  # a link, not a file
    assert store.stats.linked == 1 and store.stats.stored == 0


async def test_only_cameras_set_to_embed_widen_the_console_s_img_src() -> None:
    async def csp(origins: tuple[str, ...]) -> str:
        app = FastAPI()
        app.add_api_route("/console/x", lambda: HTMLResponse("ok"))
        app.add_middleware(ConsoleHeaders, img_sources=origins)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            return (await client.get("/console/x")).headers["content-security-policy"]

    service = EvidenceService(
        {("e", "a"): [camera("http://snap.lan:8000/{ts}.jpg", embed=True), camera("http://nvr/{ts}")],
         ("e", "b"): [camera("http://{device}.lan/x", embed=True)]},  # no fixed host: never allowed
        {}, None,
    )  # fmt: skip
    assert service.embed_origins() == ("http://snap.lan:8000",)
    assert "img-src 'self' data:;" in await csp(())
    widened = await csp(service.embed_origins())
    assert "img-src 'self' data: http://snap.lan:8000;" in widened and "script-src 'self';" in widened
