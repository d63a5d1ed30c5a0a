"""Hostile MQTT payloads for the fuzz bench and the property tests: each MQTT profile's real payloads
(as the simulator's vendor builders write them) and seeded mutations of them, plus plain junk.

`mutate(rng, seed_payload)` returns bytes: mostly a JSON document with one change (a key dropped, a value
of the wrong type, a huge string, NaN, a deep nest, the whole thing wrapped in a list), else broken bytes
(truncated, a byte flipped, invalid UTF-8, random noise). Deterministic for a given `random.Random`.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from drivers.sim.vendor_payloads import build_event

__all__ = ["MQTT_PROFILES", "Seed", "junk", "mutate", "seeds"]

MQTT_PROFILES = (
    "generic_access_gate",
    "generic_anpr_json",
    "hikvision_access_mqtt",
    "uhppoted_mqtt",
    "frigate_lpr",
)
NOW = 1_732_400_000.0
ZONE = "Asia/Shanghai"


@dataclass(frozen=True)
class Seed:
    """A real payload of one profile: the channel (last topic level) it is published on."""

    channel: str
    payload: dict[str, Any]


def seeds(profile: str) -> list[Seed]:
    """Real payloads of `profile` (valid: each decodes to at least one item)."""
    if profile == "generic_access_gate":
        return [
            Seed(
                "event", {"event": "card_granted", "ts": NOW, "card": "12345", "reader": 1, "direction": "in"}
            ),
            Seed("event", {"event": "door_forced", "ts": NOW, "reader": 2}),
            Seed("state", {"door_open": True, "tamper": False, "ts": NOW}),
            Seed("heartbeat", {"uptime": 100}),
        ]
    if profile == "generic_anpr_json":
        read = {"list": "allowList", "plate": "粤B12345", "confidence": 93.5, "direction": "in", "lane": 1}
        return [
            Seed("event", {**read, "color": "blue", "ts": NOW}),
            Seed("event", {**read, "list": "blockList", "plate": "京A00001"}),
            Seed("state", {"barrier_open": False, "vehicle_present": True, "ts": NOW}),
            Seed("heartbeat", {}),
        ]
    if profile == "hikvision_access_mqtt":
        out = []
        for record, (kind, attrs) in enumerate(
            [("card_granted", {"card": "8812"}), ("door_forced", {}), ("tamper", {}), ("panic", {})], 1
        ):
            channels, doc = build_event("hikvision", kind, attrs, record, ZONE, NOW)
            out.append(Seed(channels[0], doc))
        return [*out, Seed("heartbeat", {"status": "ok"})]
    if profile == "uhppoted_mqtt":
        out = []
        for record, kind in enumerate(["card_granted", "card_denied", "door_forced", "exit_button"], 1):
            _, doc = build_event("uhppoted", kind, {"card": 10058400}, record, ZONE, NOW)
            out.append(Seed("events" if record % 2 else "live", doc))
        return out
    if profile == "frigate_lpr":
        _, doc = build_event("frigate", "plate_read", {"plate": "ABC123", "camera": "gate_cam"}, 1, ZONE, NOW)
        return [Seed("tracked_object_update", doc)]
    raise KeyError(profile)


_ODD_VALUES: list[Any] = [
    None, True, False, 0, -1, 2**63, -(2**63) - 1, 10**30, 1e308, -0.0, 0.1, "", "x" * 5000, "\u0000",
    "ñ粤\U0001f600", [], {}, [1, [2, [3]]], {"a": {"b": None}}, "2024-13-45T99:99:99+25:00",
    "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "NaN", 1e11, -5,
]  # fmt: skip
_RAW_TOKENS = [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400", b"1" * 400]


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out.extend(_paths(value, (*prefix, key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out.extend(_paths(value, (*prefix, index)))
    return out


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> None:
    node = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


def _delete(doc: Any, path: tuple[Any, ...]) -> None:
    node = doc
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]


def mutate(rng: random.Random, payload: dict[str, Any]) -> bytes:
    """One hostile variant of a real payload."""
    doc = json.loads(json.dumps(payload))
    paths = _paths(doc)
    choice = rng.randrange(16)
    if choice <= 4 and paths:  # a value of the wrong type / out of range
        _set(doc, rng.choice(paths), rng.choice(_ODD_VALUES))
    elif choice == 5 and paths:
        _delete(doc, rng.choice(paths))
    elif choice == 6:
        doc[f"extra{rng.randrange(100)}"] = rng.choice(_ODD_VALUES)
    elif choice == 7:
        doc = [doc]
    elif choice == 8:  # a raw token JSON does not allow, spliced in for one value
        text = json.dumps(doc).encode()
        if paths:
            marker = "\u2603MARK"
            _set(doc, rng.choice(paths), marker)
            text = (
                json.dumps(doc, ensure_ascii=False)
                .encode()
                .replace(json.dumps(marker, ensure_ascii=False).encode(), rng.choice(_RAW_TOKENS))
            )
        return text
    elif choice == 9 and paths:  # a deep nest (orjson refuses beyond 1024 levels)
        marker = "\u2603DEEP"
        _set(doc, rng.choice(paths), marker)
        return (
            json.dumps(doc, ensure_ascii=False)
            .replace(json.dumps(marker, ensure_ascii=False), _deep(rng.choice([10, 500, 1000, 1100, 5000])))
            .encode()
        )
    raw = json.dumps(doc, ensure_ascii=False).encode()
    if choice == 10 and raw:
        return raw[: rng.randrange(len(raw))]
    if choice == 11 and raw:
        i = rng.randrange(len(raw))
        return raw[:i] + bytes([rng.randrange(256)]) + raw[i + 1 :]
    if choice == 12:
        i = rng.randrange(len(raw) + 1)
        return raw[:i] + rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00"]) + raw[i:]
    if choice == 13:
        return junk(rng)
    return raw  # 14, 15 (and a mutation that found nothing to change): the document as it is


def junk(rng: random.Random) -> bytes:
    """Bytes that were never a payload of any profile."""
    kind = rng.randrange(6)
    if kind == 0:
        return b""
    if kind == 1:
        return rng.randbytes(rng.randrange(1, 200))
    if kind == 2:
        return json.dumps(rng.choice(_ODD_VALUES)).encode()
    if kind == 3:
        return _deep(rng.choice([100, 1023, 1025, 3000])).encode()
    if kind == 4:
        return b'{"a":' * 50
    return b"\xef\xbb\xbf{}"  # a UTF-8 BOM before an empty object
