"""The gateway's own QoS 1 PUBLISHes (incident snapshots, DESIGN §4) on the egress's connection.

Each message has a key (an incident's topic): while it waits, a newer message with the same key takes
its place, so what the broker gets after an outage is the latest state of each key and memory is
bounded by the number of keys (`max_pending`, the oldest dropped beyond it, counted and logged). A
message may carry a `note` for its producer: `waiting(key)` gives back the note of the message that a
new one would replace (the incident egress carries the replaced snapshot's timeline events forward).

Packets are framed here and written through paho's output queue; the broker's PUBACKs are read by the
connection's `Inbox` and handed to `puback`. Why not paho's `publish`: an `MQTTMessageInfo` with a
`threading.Condition` per message, and paho's PUBACK handling, cost 9 % of a 60,000-message drain with
1,200 outputs (py-spy, issue 9). At most `window` messages are unacknowledged at once, never more than
the broker's Receive Maximum (MQTT 5 CONNACK). Messages not acknowledged when a connection ends go
back to the queue (behind nothing: they are older) and are sent again, with new packet ids, on the
next connection: at least once, as QoS 1 promises.
"""

from __future__ import annotations

import logging
from typing import Any

from drivers.transports.mqtt_inbox import send_packets

__all__ = ["STATS", "Outbox"]

log = logging.getLogger(__name__)

Message = tuple[str, bytes, bool, Any]  # topic, payload, retain, the producer's note
STATS = ("sent", "acked", "pending", "inflight", "replaced", "dropped", "refused")  # keys of `stats()`
_PUBLISH_QOS1 = 0x32


def _vbi(n: int) -> bytes:
    """MQTT variable byte integer."""
    out = bytearray()
    while True:
        byte, n = n & 127, n >> 7
        out.append(byte | 128 if n else byte)
        if not n:
            return bytes(out)


def publish_packet(topic: str, payload: bytes, retain: bool, mid: int, v5: bool) -> bytes:
    """A QoS 1 PUBLISH: fixed header, topic, packet id, (MQTT 5: empty properties), payload."""
    name = topic.encode()
    properties = b"\x00" if v5 else b""
    body = b"".join((len(name).to_bytes(2, "big"), name, mid.to_bytes(2, "big"), properties, payload))
    return bytes((_PUBLISH_QOS1 | int(retain),)) + _vbi(len(body)) + body


class Outbox:
    """Keyed QoS 1 messages for one MQTT connection at a time; lives across reconnections."""

    def __init__(self, window: int = 100, max_pending: int = 100_000) -> None:
        self.window = max(1, window)
        self.max_pending = max(1, max_pending)
        self.pending: dict[str, Message] = {}  # key → message, oldest first
        self.inflight: dict[int, tuple[str, Message]] = {}  # packet id → (key, message)
        self.sent = 0  # PUBLISH packets written (a resend counts again)
        self.acked = 0
        self.replaced = 0  # waiting messages a newer one of the same key took the place of
        self.dropped = 0  # waiting messages dropped beyond max_pending
        self.refused = 0  # PUBACKs with a failure reason (MQTT 5: not authorised, quota...): not resent
        self._paho: Any = None
        self._limit = 0
        self._v5 = False

    # -- the producer side -------------------------------------------------------------------------
    def offer(
        self, key: str, topic: str, payload: bytes, retain: bool, note: Any = None, *, send: bool = True
    ) -> None:
        """Queue a message; it replaces a waiting one of the same key (a newer state of the same thing).
        `send=False`: leave it waiting until `send()`, so a producer with several messages at once (a
        commit's changes) writes them to the socket together: one system call, not one per message."""
        pending = self.pending
        if key in pending:
            self.replaced += 1
            del pending[key]  # the newer one goes to the back: keys stay in the order they last changed
        elif len(pending) >= self.max_pending:
            oldest = next(iter(pending))
            del pending[oldest]
            self.dropped += 1
            if self.dropped & 0x3FF == 1:
                log.warning("mqtt egress: %d messages waiting; dropped the oldest (%s)", len(pending), oldest)
        pending[key] = (topic, payload, retain, note)
        if send:
            self._pump()

    def send(self) -> None:
        """Write what waits, as far as the window allows (after offers with `send=False`)."""
        self._pump()

    def waiting(self, key: str) -> Any:
        """The note of `key`'s message not sent yet (None if none): of what `offer` would replace."""
        message = self.pending.get(key)
        return None if message is None else message[3]

    def withdraw(self, key: str) -> None:
        """Forget a waiting message (sent ones are the broker's already)."""
        self.pending.pop(key, None)

    # -- the connection side -----------------------------------------------------------------------
    def attach(self, paho_client: Any, receive_maximum: int, v5: bool) -> None:
        """A connection is up: send what waits, at most min(window, Receive Maximum) unacknowledged."""
        self._paho, self._v5 = paho_client, v5
        self._limit = max(1, min(self.window, receive_maximum))
        self._pump()

    def detach(self) -> None:
        """The connection is gone: unacknowledged messages wait again (unless a newer one of their key
        is already waiting), ahead of the ones that never went out."""
        self._paho = None
        back = {key: message for key, message in self.inflight.values() if key not in self.pending}
        self.inflight.clear()
        if back:
            self.pending = {**back, **self.pending}

    def puback(self, mid: int, reason: int) -> bool:
        """A PUBACK the Inbox read: True when it was for one of ours (consumed here)."""
        entry = self.inflight.pop(mid, None)
        if entry is None:
            return False
        if reason >= 0x80:
            self.refused += 1
            if self.refused & 0x3FF == 1:
                log.warning("mqtt egress: the broker refused %s (reason 0x%02x)", entry[1][0], reason)
        else:
            self.acked += 1
        self._pump()
        return True

    def stats(self) -> dict[str, int]:
        return {
            "sent": self.sent, "acked": self.acked, "pending": len(self.pending),
            "inflight": len(self.inflight), "replaced": self.replaced, "dropped": self.dropped,
            "refused": self.refused,
        }  # fmt: skip

    def _pump(self) -> None:
        client = self._paho
        room = self._limit - len(self.inflight)
        if client is None or room <= 0 or not self.pending:
            return
        pending, inflight, packets = self.pending, self.inflight, []
        while room > 0 and pending:
            key = next(iter(pending))
            message = pending.pop(key)
            mid = client._mid_generate()  # paho's own counter: no clash with its publishes (status, commands)
            while mid in inflight:
                mid = client._mid_generate()
            inflight[mid] = (key, message)
            packets.append(publish_packet(message[0], message[1], message[2], mid, self._v5))
            room -= 1
        send_packets(client, _PUBLISH_QOS1, b"".join(packets), 1)
        self.sent += len(packets)
