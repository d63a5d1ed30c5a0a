"""Camera links: a camera's URL template filled with the time window around an alarm.

NVRs want their own clock and their own spelling of it: Hikvision's ISAPI playback takes the recorder's
local time written as 20261124T083000Z (the Z notwithstanding), Dahua's RTSP playback
2026_11_24_08_30_00, Frigate's clip API epoch seconds. Unknown placeholders leave the template as it is
(a broken link is visible; a crash of the incident page is not).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo

from gateway.evidence.config import CameraLinkConfig, TimeStyle

__all__ = ["CameraLink", "camera_link", "format_time"]

_FORMATS = {"hikvision": "%Y%m%dT%H%M%SZ", "dahua": "%Y_%m_%d_%H_%M_%S"}


@dataclass(frozen=True)
class CameraLink:
    name_zh: str
    name_en: str
    url: str
    start: float  # epoch s
    end: float
    embed: bool


def format_time(epoch: float, style: TimeStyle, zone: tzinfo) -> str:
    if style in ("frigate", "epoch"):
        return str(int(epoch))
    moment = datetime.fromtimestamp(int(epoch), zone)
    if style == "iso":
        return moment.isoformat()
    return moment.strftime(_FORMATS[style])


def camera_link(camera: CameraLinkConfig, at: float, timezone: str, estate: str, device: str) -> CameraLink:
    """The link for an alarm at `at` (epoch s) seen by the device in an estate of `timezone`."""
    zone: tzinfo = UTC if camera.timezone == "utc" else ZoneInfo(timezone)
    start, end = at - camera.before, at + camera.after
    values = {
        "start": format_time(start, camera.style, zone),
        "end": format_time(end, camera.style, zone),
        "ts": format_time(at, camera.style, zone),
        "start_epoch": str(int(start)),
        "end_epoch": str(int(end)),
        "ts_epoch": str(int(at)),
        "estate": estate,
        "device": device,
    }
    try:
        url = camera.url.format(**values)
    except (KeyError, IndexError, ValueError):
        url = camera.url
    return CameraLink(camera.name.zh, camera.name.en, url, start, end, camera.embed)
