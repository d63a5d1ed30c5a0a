"""Dead letters: the document (bounded, base64 when not UTF-8) and the per-second rate limit."""

from __future__ import annotations

import base64

import orjson

from drivers.transports.dead_letter import DeadLetters, dead_letter_document


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return 1_732_400_000.0 + self.t

    def monotonic(self) -> float:
        return self.t


def test_document_keeps_text_and_cuts_long_payloads() -> None:
    doc = orjson.loads(dead_letter_document("a/b/event", "bad_json", b"{oops", 1.23456, ("e1", "d1"), 8))
    assert doc == {"topic": "a/b/event", "reason": "bad_json", "time": 1.235, "estate": "e1", "device": "d1",
                   "size": 5, "truncated": False, "payload": "{oops"}  # fmt: skip
    doc = orjson.loads(dead_letter_document("t", "too_large", b"x" * 5000, 0.0, None, 100))
    assert (doc["size"], doc["truncated"], len(doc["payload"])) == (5000, True, 100)
    assert "estate" not in doc


def test_document_is_base64_when_not_utf8_but_keeps_text_cut_mid_character() -> None:
    raw = b"\xff\xfe\x00junk"
    doc = orjson.loads(dead_letter_document("t", "bad_json", raw, 0.0, None, 100))
    assert base64.b64decode(doc["payload_b64"]) == raw and "payload" not in doc
    text = "粤B12345".encode() * 10  # cut inside a 3-byte character: still text
    doc = orjson.loads(dead_letter_document("t", "bad_type", text, 0.0, None, 10))
    assert doc["payload"] == "粤B12345" and doc["truncated"] is True  # 9 bytes + 1 of the next 粤


def test_rate_limit_per_second_counts_what_it_suppresses() -> None:
    sent: list[tuple[str, bytes]] = []
    clock = FakeClock()
    letters = DeadLetters("gw/dead-letter", 3, lambda t, p: sent.append((t, p)) is None, clock)
    for _ in range(10):
        letters.offer("a/b/event", "bad_json", b"x")
    clock.t += 1.0
    letters.offer("a/b/event", "bad_json", b"x")
    letters.offer("gw/dead-letter", "unknown_channel", b"x")  # its own topic: never looped back
    assert letters.stats() == {"published": 4, "suppressed": 7, "unsent": 0}
    assert {t for t, _ in sent} == {"gw/dead-letter"}


def test_a_disconnected_client_counts_unsent() -> None:
    letters = DeadLetters("gw/dl", 10, lambda t, p: False, FakeClock())
    letters.offer("a", "bad_json", b"x")
    assert letters.stats() == {"published": 0, "suppressed": 0, "unsent": 1}
