"""Decode one HTTP-push camera document through its profile into a `plate_read` DeviceEvent.

Every failure raises DecodeError with a short reason ('too_large', 'bad_json', 'not_object',
'missing_field', 'bad_type') that the receiver counts per camera and returns as a 400.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from drivers.anpr.classifier import PLATE_READ
from drivers.errors import DecodeError
from drivers.payload import MISSING, at, parse_object, plain_scalar
from drivers.payload_match import as_text
from drivers.profiles.push import HttpPushProfile
from gateway.model import DeviceEvent, Source

MAX_RECORD_PART = 128
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _text(value: Any) -> str:
    """JSON scalars as the text keys of a profile's `values`, compared as the MQTT profiles compare them
    (true → "true", 4 and 4.0 → "4"); anything else by its str."""
    text = as_text(value)
    return text if text is not None else str(value)


@dataclass(frozen=True)
class PushedRead:
    event: DeviceEvent  # kind plate_read
    record: str  # the camera's record identity: a re-send repeats it
    offline: bool  # the camera kept it during an outage and sends it late
    pictures: dict[str, str] = field(default_factory=dict)  # kind → base64 text or URL, undecoded


class PushDecoder:
    """Decoder bound to one camera (estate, device) and its estate's timezone."""

    def __init__(self, estate: str, device: str, profile: HttpPushProfile, timezone: str) -> None:
        self.estate, self.device, self.profile = estate, device, profile
        self.zone = ZoneInfo(timezone)

    def decode(self, body: bytes, now_ns: int) -> PushedRead:
        profile = self.profile
        if len(body) > profile.max_body:
            raise DecodeError("too_large", f"{len(body)} bytes")
        data = parse_object(body)
        plate = at(data, profile.plate)
        if plate is MISSING:
            raise DecodeError("missing_field", profile.plate)
        if not isinstance(plate, str) or len(plate) > 32:
            raise DecodeError("bad_type", f"{profile.plate}: not a plate")
        ts_ns = self._timestamp(data, now_ns)
        attributes: dict[str, Any] = {"plate": plate}
        for name, path in profile.attributes.items():
            value = at(data, path)
            if plain_scalar(value, 128):
                attributes[name] = self._mapped(name, value)
        for name in ("direction", "camera_list"):
            path = getattr(profile, name)
            value = at(data, path) if path else MISSING
            if value is not MISSING and isinstance(value, str | int | bool):
                attributes[name] = self._mapped(name, value)
        offline = bool(profile.offline and at(data, profile.offline) in (1, True, "1", "true"))
        if offline:
            attributes["offline_resend"] = True
        record = self._record(data, plate, ts_ns)
        attributes["record_id"] = record
        event = DeviceEvent(ts_ns, self.estate, self.device, PLATE_READ, attributes, Source.HTTP)
        return PushedRead(event, record, offline, self._pictures(data))

    def _pictures(self, data: dict[str, Any]) -> dict[str, str]:
        """The pictures' text as sent (decoding is the evidence writer's job, off the event loop)."""
        found: dict[str, str] = {}
        for kind, path in self.profile.pictures.items():
            value = at(data, path)
            if isinstance(value, str) and value:
                found[kind] = value
        return found

    def _mapped(self, name: str, value: Any) -> Any:
        table = self.profile.values.get(name)
        return table.get(_text(value), value) if table else value

    def _timestamp(self, data: dict[str, Any], now_ns: int) -> int:
        spec = self.profile.timestamp
        raw = at(data, spec.path) if spec else MISSING
        if spec is None or raw is MISSING:
            return now_ns
        if spec.format == "epoch":
            if isinstance(raw, int | float) and not isinstance(raw, bool) and 0 < raw < 1e11:
                return int(raw * 1e9)
            raise DecodeError("bad_type", f"{spec.path}: not an epoch timestamp")
        if not isinstance(raw, str) or len(raw) > 64:  # str() of a deep nest would blow the stack
            raise DecodeError("bad_type", f"{spec.path}: not a local time: {type(raw).__name__}")
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError as exc:
            raise DecodeError("bad_type", f"{spec.path}: not a local time: {raw[:32]}") from exc
        if moment.tzinfo is None:  # the usual case: the camera's wall clock, in the estate's zone
            moment = moment.replace(tzinfo=self.zone)
        seconds = (moment - _EPOCH).total_seconds()
        if not 0 < seconds < 1e11:  # the range epoch numbers are held to
            raise DecodeError("bad_type", f"{spec.path}: out of range: {raw}")
        return int(seconds * 1e9)

    def _record(self, data: dict[str, Any], plate: str, ts_ns: int) -> str:
        paths = self.profile.record_id
        if not paths:
            return f"{plate}@{ts_ns}"
        texts = []
        for path in paths:
            part = at(data, path)
            if part is MISSING:
                raise DecodeError("missing_field", path)
            # An object is no id (and str() of a deep nest blows the stack); a huge one would sit in
            # the camera's dedup memory: both refused.
            text = None if isinstance(part, dict | list) else _text(part)
            if text is None or len(text) > MAX_RECORD_PART:
                raise DecodeError("bad_type", f"{path}: not a record id")
            texts.append(text)
        return "/".join(texts)
