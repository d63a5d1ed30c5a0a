"""Decode one MQTT device's JSON payloads through its profile into Readings and DeviceEvents.

The channel is the topic's last level (event / state / heartbeat ...). Every failure raises DecodeError
with a short reason ('too_large', 'bad_json', 'not_object', 'unknown_channel', 'missing_field',
'unknown_kind', 'bad_type') that the ingress counts per device.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from drivers.errors import DecodeError
from drivers.profiles.schema import EventChannel, JsonPoint, MqttProfile, StateChannel
from gateway.model import DeviceEvent, Item, Reading, Source, Value

_MISSING = object()


def _at(payload: dict[str, Any], path: str) -> Any:
    node: Any = payload
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _coerce(raw: Any, point: JsonPoint, name: str) -> Value:
    kind = point.type
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        if raw in (0, 1):
            return bool(raw)
    elif kind in ("float", "int"):
        if isinstance(raw, int | float) and not isinstance(raw, bool) and math.isfinite(raw):
            return float(raw) if kind == "float" else int(raw)
    elif isinstance(raw, str) and len(raw) <= 256:
        return raw
    raise DecodeError("bad_type", f"{name}: expected {kind}, got {type(raw).__name__}")


def _plain_scalar(value: Any) -> bool:
    """Attributes keep only small scalars: no nested objects, no NaN, no megabyte strings."""
    if isinstance(value, bool | int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str) and len(value) <= 256


class MqttJsonDecoder:
    """Decoder bound to one device; `decode` is called once per message on the hot path."""

    def __init__(self, estate: str, device: str, profile: MqttProfile) -> None:
        self.estate, self.device, self.profile = estate, device, profile

    def decode(self, topic: str, payload: bytes, now_ns: int) -> list[Item]:
        if len(payload) > self.profile.max_payload:
            raise DecodeError("too_large", f"{len(payload)} bytes")
        channel_name = topic.rsplit("/", 1)[-1]
        channel = self.profile.channels.get(channel_name)
        if channel is None:
            raise DecodeError("unknown_channel", channel_name)
        if channel.type == "heartbeat":
            return [Reading(now_ns, self.estate, self.device, "heartbeat", True, "", source=Source.MQTT)]
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise DecodeError("bad_json", str(exc)[:80]) from exc
        if not isinstance(data, dict):
            raise DecodeError("not_object", type(data).__name__)
        ts_ns = self._timestamp(data, channel, now_ns)
        if isinstance(channel, EventChannel):
            return [self._event(data, channel, ts_ns)]
        return self._state(data, channel, ts_ns)

    @staticmethod
    def _timestamp(data: dict[str, Any], channel: EventChannel | StateChannel, now_ns: int) -> int:
        if channel.ts_path is None:
            return now_ns
        raw = _at(data, channel.ts_path)
        if raw is _MISSING:
            return now_ns
        if (
            isinstance(raw, int | float)
            and not isinstance(raw, bool)
            and math.isfinite(raw)
            and 0 < raw < 1e11
        ):
            return int(raw * 1e9)
        raise DecodeError("bad_type", f"{channel.ts_path}: not an epoch timestamp")

    def _event(self, data: dict[str, Any], channel: EventChannel, ts_ns: int) -> DeviceEvent:
        raw_kind = _at(data, channel.kind_path)
        if raw_kind is _MISSING:
            raise DecodeError("missing_field", channel.kind_path)
        if isinstance(raw_kind, bool) or not isinstance(raw_kind, str | int):
            raise DecodeError("bad_type", f"{channel.kind_path}: {type(raw_kind).__name__}")
        kind = channel.kinds.get(str(raw_kind))
        if kind is None:
            raise DecodeError("unknown_kind", str(raw_kind)[:64])
        attributes: dict[str, Any] = {}
        for name, path in channel.attributes.items():
            value = _at(data, path)
            if _plain_scalar(value):
                attributes[name] = value
        return DeviceEvent(ts_ns, self.estate, self.device, kind, attributes, Source.MQTT)

    def _state(self, data: dict[str, Any], channel: StateChannel, ts_ns: int) -> list[Item]:
        items: list[Item] = []
        for name, point in channel.points.items():
            raw = _at(data, point.path)
            if raw is _MISSING:
                continue
            items.append(
                Reading(
                    ts_ns,
                    self.estate,
                    self.device,
                    name,
                    _coerce(raw, point, name),
                    point.unit,
                    source=Source.MQTT,
                )
            )
        if not items:
            raise DecodeError("missing_field", "no known point in state payload")
        return items
