"""The dead-letter topic: rejected MQTT payloads republished for whoever debugs a device's format.

A payload the gateway cannot decode is counted per device and reason (drivers/stats.py); the counter
says *that* a camera sends garbage, the dead letter shows *what* it sends. Each one goes out as a small
JSON document on `mqtt.dead_letter_topic`:

    {"topic": "estate/e1/cam/event", "reason": "bad_json", "time": 1732400000.123,
     "estate": "e1", "device": "cam", "size": 5123, "truncated": true, "payload": "{\"plate\": ..."}

(`payload_b64` instead of `payload` when the bytes are not UTF-8.) Publishing never blocks ingest: QoS 0,
handed to the client's send buffer without waiting, at most `rate` per second (the rest counted as
suppressed), each payload cut to `max_bytes`. A flood of junk therefore costs at most rate × ~max_bytes
bytes a second of broker traffic, and nothing at all when the broker is away (counted as `unsent`).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from gateway.model import Clock

__all__ = ["MAX_BYTES", "DeadLetters", "dead_letter_document"]

MAX_BYTES = 2048  # of the original payload kept in a dead letter
Send = Callable[[str, bytes], bool]  # QoS 0, non-blocking; False when it could not be handed over


def dead_letter_document(
    topic: str, reason: str, payload: bytes, time: float, device: tuple[str, str] | None, max_bytes: int
) -> bytes:
    """The JSON dead letter for one rejected payload (bounded: topic and reason are cut too)."""
    body = payload[:max_bytes]
    doc: dict[str, object] = {"topic": topic[:256], "reason": reason[:64], "time": round(time, 3)}
    if device is not None:
        doc["estate"], doc["device"] = device
    doc["size"], doc["truncated"] = len(payload), len(payload) > max_bytes
    try:
        doc["payload"] = body.decode("utf-8")
    except UnicodeDecodeError:
        # A cut may split a multi-byte character: keep the text if only the tail is broken.
        text = body.decode("utf-8", errors="ignore") if len(payload) > max_bytes else None
        if text is not None and len(text.encode()) >= len(body) - 3:
            doc["payload"] = text
        else:
            doc["payload_b64"] = base64.b64encode(body).decode("ascii")
    return orjson.dumps(doc)


@dataclass
class DeadLetters:
    """Rate-limited republisher of rejected payloads; `offer` is called on the ingest path."""

    topic: str
    rate: int
    send: Send
    clock: Clock
    max_bytes: int = MAX_BYTES
    published: int = 0
    suppressed: int = 0  # over the rate
    unsent: int = 0  # the client could not take it (disconnected)
    _second: int = -1
    _in_second: int = 0

    def offer(self, topic: str, reason: str, payload: bytes, device: tuple[str, str] | None = None) -> None:
        if topic == self.topic:  # never our own letters (a '#' subscription sees them)
            return
        second = int(self.clock.monotonic())
        if second != self._second:
            self._second, self._in_second = second, 0
        if self._in_second >= self.rate:
            self.suppressed += 1
            return
        self._in_second += 1
        doc = dead_letter_document(topic, reason, payload, self.clock.now(), device, self.max_bytes)
        if self.send(self.topic, doc):
            self.published += 1
        else:
            self.unsent += 1

    def stats(self) -> dict[str, int]:
        return {"published": self.published, "suppressed": self.suppressed, "unsent": self.unsent}
