"""ANPR cameras that push over HTTP, as the simulator plays them: 臻识 Alphadigi and Dahua ITC JSON.

`read(plate, ...)` POSTs one vehicle the way the camera does and returns the status and JSON reply
(an Alphadigi camera opens its barrier on `info: ok`). Offline re-sends repeat a record with its flag.
"""

from __future__ import annotations

import base64
import itertools
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import httpx

Style = Literal["alphadigi", "dahua"]
SAMPLES = Path(__file__).with_name("data")  # sample plate and scene JPEGs (rendered once by Chromium)
ALPHADIGI_COLORS = {"blue": 1, "yellow": 2, "white": 3, "black": 4, "green": 5}
DAHUA_COLORS = {"blue": "Blue", "yellow": "Yellow", "white": "White", "black": "Black", "green": "Green"}


class PushCameraSimulator:
    def __init__(
        self, base: str, path: str, token: str, style: Style, serial: str = "sim-cam-0001",
        timezone: str = "Asia/Shanghai",
    ) -> None:  # fmt: skip
        self.path, self.token, self.style, self.serial = path, token, style, serial
        self.url = base + path
        self.zone = ZoneInfo(timezone)
        self._ids = itertools.count(21085)
        self._client: httpx.AsyncClient | None = None
        self.sent = 0

    async def __aenter__(self) -> PushCameraSimulator:
        self._client = httpx.AsyncClient(timeout=10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def payload(
        self,
        plate: str,
        *,
        at: float | None = None,
        color: str = "blue",
        confidence: int = 96,
        direction: str | None = None,
        offline: bool = False,
        record: int | None = None,
        block_listed: bool = False,
        pictures: dict[str, bytes] | Literal["sample"] | None = None,
    ) -> dict[str, Any]:
        """The document the camera would send (`record` repeats an earlier Alphadigi plateid;
        `pictures` {plate, scene: JPEG bytes}, or "sample" for the shipped sample pictures, ride along in
        base64, as the cameras send them)."""
        ts = time.time() if at is None else at
        if pictures == "sample":
            pictures = {kind: (SAMPLES / f"{kind}_sample.jpg").read_bytes() for kind in ("plate", "scene")}
        encoded = {k: base64.b64encode(v).decode() for k, v in (pictures or {}).items()}
        if self.style == "alphadigi":
            result = {
                "license": plate, "colorType": ALPHADIGI_COLORS.get(color, 0), "confidence": confidence,
                "direction": 0, "triggerType": 4, "plateid": next(self._ids) if record is None else record,
                "isoffline": int(offline), "timeStamp": {"Timeval": {"sec": int(ts), "usec": 0}},
            }  # fmt: skip
            if "scene" in encoded:
                result["imageFile"] = encoded["scene"]
            if "plate" in encoded:
                result["imageFragmentFile"] = encoded["plate"]
            return {"AlarmInfoPlate": {"serialno": self.serial, "result": {"PlateResult": result}}}
        local = datetime.fromtimestamp(ts, self.zone).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        snap = {"AccurateTime": local, "AllowUser": False, "BlockUser": block_listed}
        if direction is not None:
            snap["Direction"] = "Obverse" if direction == "in" else "Reverse"
        plate_info = {
            "PlateNumber": plate,
            "PlateColor": DAHUA_COLORS.get(color, "Unknown"),
            "Confidence": confidence,
        }
        picture: dict[str, Any] = {"Plate": plate_info, "SnapInfo": snap}
        if "scene" in encoded:
            picture["NormalPic"] = {"Content": encoded["scene"]}
        if "plate" in encoded:
            picture["CutoutPic"] = {"Content": encoded["plate"]}
        return {"Picture": picture}

    async def post(self, document: dict[str, Any] | bytes, token: str | None = None) -> tuple[int, Any]:
        assert self._client is not None, "use async with PushCameraSimulator(...)"
        body = document if isinstance(document, bytes) else None
        response = await self._client.post(
            self.url,
            params={"token": self.token if token is None else token},
            json=None if body is not None else document,
            content=body,
            headers={"Content-Type": "application/json"},
        )
        self.sent += 1
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, response.text

    async def read(self, plate: str, **options: Any) -> tuple[int, Any]:
        """One vehicle: build the camera's document and push it."""
        return await self.post(self.payload(plate, **options))
