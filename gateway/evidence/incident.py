"""An incident's evidence: camera links around each of its alarms, and the plate pictures they caught.

The incident's timeline says when each member alarm became active (opened, reactivated, correlated,
flooded) and with what value (a plate for ANPR rules). Each such moment gives every camera of the alarm's
device a link for the window around it, and the device's pictures near that moment (of that plate, when
the value is one). Nothing here fetches anything: links are URLs, pictures are files of ours.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from gateway.evidence.config import CameraLinkConfig
from gateway.evidence.links import camera_link
from gateway.evidence.pictures import Picture, PictureStore
from gateway.model import Incident

__all__ = ["ACTIVATIONS", "EvidenceService", "picture_route"]

ACTIVATIONS = frozenset({"opened", "alarm_reactivated", "alarm_correlated", "alarm_flooded"})
MAX_MOMENTS = 20  # the latest activations looked at: a chattering alarm must not list hundreds of links


def picture_route(estate: str, device: str, ref: str) -> str:
    return f"/evidence/{quote(estate)}/{quote(device)}/picture?ref={quote(ref, safe='')}"


@dataclass(frozen=True)
class _Moment:
    device: str
    at: float
    value: object


class EvidenceService:
    """What the incident API and page show as evidence; built once by the runtime."""

    def __init__(
        self,
        cameras: Mapping[tuple[str, str], list[CameraLinkConfig]],
        timezones: Mapping[str, str],
        pictures: PictureStore | None,
        window: float = 120.0,
    ) -> None:
        self.cameras, self.timezones, self.pictures, self.window = cameras, timezones, pictures, window

    def embed_origins(self) -> tuple[str, ...]:
        """Origins of the cameras whose pictures the console may show inline (`embed: true`)."""
        origins = set()
        for cameras in self.cameras.values():
            for camera in cameras:
                parts = urlsplit(camera.url)
                if (
                    camera.embed
                    and parts.scheme in ("http", "https")
                    and parts.netloc
                    and "{" not in parts.netloc
                ):
                    origins.add(f"{parts.scheme}://{parts.netloc}")
        return tuple(sorted(origins))

    @staticmethod
    def moments(incident: Incident) -> list[_Moment]:
        seen: set[tuple[str, float]] = set()
        out = []
        for entry in incident.timeline:
            if entry.action not in ACTIVATIONS:
                continue
            key = str(entry.detail.get("alarm") or incident.alarm_key)
            parts = key.split("/", 2)
            device = parts[1] if len(parts) == 3 and parts[0] == incident.estate else incident.device
            if (device, entry.ts) not in seen:
                seen.add((device, entry.ts))
                out.append(_Moment(device, entry.ts, entry.detail.get("value")))
        return out[-MAX_MOMENTS:]

    async def for_incident(self, incident: Incident) -> dict[str, list[dict[str, Any]]]:
        moments = self.moments(incident)
        timezone = self.timezones.get(incident.estate, "Asia/Shanghai")
        links: list[dict[str, Any]] = []
        urls: set[str] = set()
        for moment in moments:
            for camera in self.cameras.get((incident.estate, moment.device), []):
                link = camera_link(camera, moment.at, timezone, incident.estate, moment.device)
                if link.url in urls:
                    continue
                urls.add(link.url)
                names = {"name_zh": link.name_zh, "name_en": link.name_en}
                links.append({
                    "device": moment.device, "at": moment.at, **names, "url": link.url,
                    "start": link.start, "end": link.end, "embed": link.embed,
                })  # fmt: skip
        pictures = await asyncio.to_thread(self._pictures, incident.estate, moments)
        return {"links": links, "pictures": [_picture_json(p) for p in pictures]}

    def _pictures(self, estate: str, moments: list[_Moment]) -> list[Picture]:
        if self.pictures is None:
            return []
        found: dict[tuple[str, str], Picture] = {}
        for moment in moments:
            plate = moment.value if isinstance(moment.value, str) else None
            start, end = moment.at - self.window, moment.at + self.window
            for picture in self.pictures.find(estate, moment.device, start, end, plate):
                found.setdefault((picture.device, picture.ref), picture)
        return sorted(found.values(), key=lambda p: (p.ts, p.kind))


def _picture_json(picture: Picture) -> dict[str, Any]:
    stored = picture.url is None
    return {
        "device": picture.device,
        "kind": picture.kind,
        "ts": picture.ts,
        "plate": picture.plate,
        "stored": stored,  # ours, served by the gateway: may be shown inline
        "url": picture_route(picture.estate, picture.device, picture.ref) if stored else picture.url,
    }
