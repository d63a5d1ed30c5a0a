"""Evidence config: per-device camera links, and where plate pictures are kept and for how long.

    devices:
      - id: gate-cam-1
        cameras:
          - name: {zh: 大门录像, en: Main gate NVR}
            style: hikvision          # {start}/{end}/{ts} as 20261124T083000Z (NVR local time)
            url: "rtsp://nvr.lan/Streaming/tracks/101?starttime={start}&endtime={end}"
            before: 30
            after: 60
    evidence: {dir: var/evidence, retention_days: 30, max_bytes: 2000000000}

A link is only a link: the console never loads a camera URL itself unless the camera sets `embed: true`
(it is on the LAN and the operator wants its picture inline).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gateway.config.text import LocalizedText
from gateway.config.text import Strict as _Strict

__all__ = ["CameraLinkConfig", "EvidenceConfig", "TimeStyle"]

TimeStyle = Literal["hikvision", "dahua", "frigate", "iso", "epoch"]


class CameraLinkConfig(_Strict):
    """One camera's recording around an alarm: a URL template filled with the alarm's time window."""

    name: LocalizedText = Field(description="What the operator sees on the link")
    url: str = Field(
        min_length=8,
        max_length=1000,
        description="Template with {start} {end} {ts} (formatted by `style`), {start_epoch} {end_epoch} "
        "{ts_epoch} (seconds) and {estate} {device}, e.g. "
        "http://frigate.lan:5000/api/gate_cam/start/{start_epoch}/end/{end_epoch}/clip.mp4",
    )
    style: TimeStyle = Field(
        "iso",
        description="How {start}/{end}/{ts} are written: hikvision 20261124T083000Z, dahua "
        "2026_11_24_08_30_00, frigate/epoch seconds, iso 2026-11-24T08:30:00+08:00",
    )
    timezone: Literal["estate", "utc"] = Field(
        "estate", description="Clock of the recorder: the estate's local time (NVRs), or UTC"
    )
    before: float = Field(30, ge=0, le=3600, description="Seconds of recording before the alarm")
    after: float = Field(60, ge=0, le=3600, description="Seconds of recording after the alarm")
    embed: bool = Field(
        False,
        description="Show the URL inline as a picture (a snapshot URL on the LAN); otherwise only a link",
    )


class EvidenceConfig(_Strict):
    """Plate and scene pictures pushed by cameras: stored on disk, served only through the API."""

    enabled: bool = Field(True, description="Keep pictures that cameras send with their plate reads")
    dir: str = Field("var/evidence", description="Folder of the pictures; relative to the working dir")
    retention_days: float = Field(30, gt=0, le=3650, description="Pictures older than this are deleted")
    max_bytes: int = Field(
        2 * 1024**3, ge=1024 * 1024, description="Bound of the folder; beyond it the oldest go first"
    )
    max_picture_bytes: int = Field(
        2 * 1024 * 1024, ge=1024, description="A larger picture is dropped (counted), not stored"
    )
    queue: int = Field(256, ge=1, le=100_000, description="Pictures waiting for the writer; beyond: dropped")
    cleanup_interval: float = Field(600, gt=0, le=86400, description="Seconds between retention passes")
    match_window: float = Field(
        120, gt=0, le=3600, description="Pictures this many seconds around an alarm belong to its incident"
    )
