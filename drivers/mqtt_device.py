"""Decode one MQTT device's JSON payloads through its profile into Readings and DeviceEvents.

The channel is the topic's last level (event / state / heartbeat ...). Every failure raises DecodeError
with a short reason ('too_large', 'bad_json', 'not_object', 'unknown_channel', 'missing_field',
'unknown_kind', 'bad_type') that the ingress counts per device.

Some messages are consumed without an item, and `decode` returns [] for them:
- not this channel's (`when` does not hold: Frigate's update topic also carries faces), or a code the
  profile marks null (a door closing normally): counted in `stats.ignored`, not an error;
- the gateway's own command to the device (`{base}/command` is under the device's `+` filter, and
  MQTT 3.1.1 has no way to say "not my own"): ignored;
- a repeat of one of the device's last DEDUP_SIZE record ids (`dedup_path`: uhppoted-mqtt publishes
  each event on its feed and its live topic, Hikvision re-sends after an outage): counted as the error
  reason 'duplicate', so a device that repeats itself shows up in /devices.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from drivers.errors import DecodeError
from drivers.payload import MISSING, at, parse_object, plain_scalar
from drivers.payload_match import as_text, holds
from drivers.profiles.schema import EventChannel, HeartbeatChannel, JsonPoint, MqttProfile, StateChannel
from drivers.stats import DeviceStats
from gateway.model import DeviceEvent, Item, Quality, Reading, Source, Value

__all__ = ["DEDUP_SIZE", "MqttJsonDecoder", "parse_object"]

DEDUP_SIZE = 1024
_GOOD, _MQTT = Quality.GOOD, Source.MQTT  # an enum member lookup costs ~60 ns a time in 3.11, per reading
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _coerce(raw: Any, point: JsonPoint, name: str) -> Value:
    kind = point.type
    if kind == "float" and type(raw) is float and raw - raw == 0.0:  # the common case; inf - inf is nan
        return raw
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


def _epoch_ns(raw: Any, path: str) -> int:
    """Epoch seconds, or an ISO 8601 time that says its offset (Hikvision's dateTime); a naive local
    time is refused: the decoder cannot know the device's zone."""
    kind = type(raw)  # JSON numbers are exactly int or float (bool is neither here)
    if (kind is float or kind is int) and 0 < raw < 1e11:  # also false for nan; inf is out of range
        return int(raw * 1e9)
    if isinstance(raw, str) and len(raw) <= 64:
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            seconds = (moment - _EPOCH).total_seconds()  # no OverflowError for year 1 at +14:00
            if 0 < seconds < 1e11:  # the range epoch numbers are held to: year 1 is no capture time
                return int(seconds * 1e9)
    raise DecodeError("bad_type", f"{path}: not an epoch timestamp or an ISO 8601 time with an offset")


class MqttJsonDecoder:
    """Decoder bound to one device; `decode` is called once per message on the hot path."""

    def __init__(
        self, estate: str, device: str, profile: MqttProfile, stats: DeviceStats | None = None
    ) -> None:
        self.estate, self.device, self.profile = estate, device, profile
        self.stats = stats if stats is not None else DeviceStats()
        self._seen: OrderedDict[str, None] = OrderedDict()  # recent record ids, oldest first
        self._commands = {
            last for c in profile.commands.values() if "{" not in (last := c.topic.rsplit("/", 1)[-1])
        }
        # per state channel: (point name, top-level key or None for a dotted path, point), built once
        self._state_points: dict[int, list[tuple[str, str | None, JsonPoint]]] = {
            id(channel): [(name, None if "." in p.path else p.path, p) for name, p in channel.points.items()]
            for channel in profile.channels.values()
            if isinstance(channel, StateChannel)
        }

    def decode(self, topic: str, payload: bytes, now_ns: int) -> list[Item]:
        channel = self._channel(topic, len(payload))
        if channel is None or isinstance(channel, HeartbeatChannel):
            return self._heartbeat(now_ns) if channel else []
        return self._items(channel, parse_object(payload), now_ns)

    def decode_object(self, topic: str, data: dict[str, Any], size: int, now_ns: int) -> list[Item]:
        """As `decode`, for a payload the ingress already parsed (devices sharing one topic)."""
        channel = self._channel(topic, size)
        if channel is None or isinstance(channel, HeartbeatChannel):
            return self._heartbeat(now_ns) if channel else []
        return self._items(channel, data, now_ns)

    def _channel(self, topic: str, size: int) -> EventChannel | StateChannel | HeartbeatChannel | None:
        """The topic's channel; None (counted as ignored) for the gateway's own command topic."""
        if size > self.profile.max_payload:
            raise DecodeError("too_large", f"{size} bytes")
        name = topic.rsplit("/", 1)[-1]
        channel = self.profile.channels.get(name)
        if channel is None:
            if name in self._commands:
                self.stats.ignored += 1
                return None
            raise DecodeError("unknown_channel", name)
        return channel

    def _heartbeat(self, now_ns: int) -> list[Item]:
        return [Reading(now_ns, self.estate, self.device, "heartbeat", True, "", source=Source.MQTT)]

    def _items(self, channel: EventChannel | StateChannel, data: dict[str, Any], now_ns: int) -> list[Item]:
        if isinstance(channel, StateChannel):
            return self._state(data, channel, self._timestamp(data, channel, now_ns))
        if not holds(data, channel.when):
            self.stats.ignored += 1
            return []
        record = self._record_id(data, channel)
        if record is not None and record in self._seen:
            self.stats.error("duplicate")
            return []
        kind = self._kind(data, channel)
        ts_ns = self._timestamp(data, channel, now_ns)
        self._remember(record)
        if kind is None:
            self.stats.ignored += 1
            return []
        return [DeviceEvent(ts_ns, self.estate, self.device, kind, self._attributes(data, channel))]

    @staticmethod
    def _timestamp(data: dict[str, Any], channel: EventChannel | StateChannel, now_ns: int) -> int:
        if channel.ts_path is None:
            return now_ns
        raw = at(data, channel.ts_path)
        return now_ns if raw is MISSING else _epoch_ns(raw, channel.ts_path)

    @staticmethod
    def _record_id(data: dict[str, Any], channel: EventChannel) -> str | None:
        """The record id as text; None when the channel has none or this message lacks it (kept)."""
        return None if channel.dedup_path is None else as_text(at(data, channel.dedup_path))

    def _remember(self, record: str | None) -> None:
        if record is None:
            return
        self._seen[record] = None
        if len(self._seen) > DEDUP_SIZE:
            self._seen.popitem(last=False)

    @staticmethod
    def _kind(data: dict[str, Any], channel: EventChannel) -> str | None:
        """The canonical kind, None for a code marked null; raises for a missing or unknown one."""
        paths = [channel.kind_path] if isinstance(channel.kind_path, str) else channel.kind_path
        parts = []
        for path in paths:
            raw = at(data, path)
            if raw is MISSING:
                raise DecodeError("missing_field", path)
            text = as_text(raw)
            if text is None or isinstance(raw, float):
                raise DecodeError("bad_type", f"{path}: {type(raw).__name__}")
            parts.append(text)
        key = "/".join(parts)
        if key in channel.kinds:
            return channel.kinds[key]
        wildcard = "/".join([*parts[:-1], "*"])
        if len(parts) > 1 and wildcard in channel.kinds:
            return channel.kinds[wildcard]
        raise DecodeError("unknown_kind", key[:64])

    @staticmethod
    def _attributes(data: dict[str, Any], channel: EventChannel) -> dict[str, Any]:
        attributes: dict[str, Any] = {}
        for name, path in channel.attributes.items():
            value = at(data, path)
            mapping = channel.attribute_values.get(name)
            if mapping is not None:
                text = as_text(value)
                value = mapping.get(text) if text is not None else None
            factor = channel.attribute_scale.get(name)
            if factor is not None and isinstance(value, int | float) and not isinstance(value, bool):
                value = round(value * factor, 6)  # 0.95 × 100 is 95.0, not 94.99999999999999
            if plain_scalar(value):
                attributes[name] = value
        return attributes

    def _state(self, data: dict[str, Any], channel: StateChannel, ts_ns: int) -> list[Item]:
        items: list[Item] = []
        estate, device, get = self.estate, self.device, data.get
        for name, key, point in self._state_points[id(channel)]:
            raw = get(key, MISSING) if key is not None else at(data, point.path)
            if raw is MISSING:
                continue
            value = _coerce(raw, point, name)
            items.append(Reading(ts_ns, estate, device, name, value, point.unit, _GOOD, _MQTT))
        if not items:
            raise DecodeError("missing_field", "no known point in state payload")
        return items
