"""The egress outbox's bookkeeping: framing, latest-per-key, the window, resends after a connection ends.
(Over a real broker: tests/integration/test_mqtt_egress.py.)"""

from __future__ import annotations

import json

from drivers.transports.mqtt_outbox import Outbox, publish_packet
from gateway.incidents import IncidentChange
from gateway.model import Incident, IncidentState, Priority, TimelineEntry
from gateway.sinks.mqtt_egress import IncidentEgress


class _Paho:
    """What the outbox uses of paho's client: its packet-id counter, its socket and its output queue."""

    def __init__(self) -> None:
        self.last_mid = 0
        self.written: list[bytes] = []
        self._out_packet: list[bytes] = []  # paho's queue: empty, so writes go straight to the socket
        self._last_msg_out = 0.0

    def _sock_send(self, data: bytes) -> int:
        self.written.append(data)
        return len(data)

    def _mid_generate(self) -> int:
        self.last_mid = self.last_mid % 65535 + 1
        return self.last_mid

    def _packet_queue(self, command: int, packet: bytes, mid: int, qos: int) -> None:
        assert (command, mid, qos) == (0x32, 0, 1)
        self.written.append(packet)


def _messages(packets: list[bytes]) -> list[tuple[str, bytes]]:
    """(topic, payload) of the MQTT 3.1.1 QoS 1 PUBLISH packets written (several may share one write)."""
    out = []
    for chunk in packets:
        i = 0
        while i < len(chunk):
            length, mult, j = 0, 1, i + 1
            while True:
                byte = chunk[j]
                j += 1
                length += (byte & 127) * mult
                mult *= 128
                if not byte & 128:
                    break
            size = chunk[j] << 8 | chunk[j + 1]
            out.append((chunk[j + 2 : j + 2 + size].decode(), chunk[j + 2 + size + 2 : j + length]))
            i = j + length
    return out


def _topics(packets: list[bytes]) -> list[str]:
    return [topic for topic, _ in _messages(packets)]


def _payloads(packets: list[bytes]) -> list[bytes]:
    return [payload for _, payload in _messages(packets)]


def test_publish_packet_is_a_qos1_publish_in_either_protocol() -> None:
    assert publish_packet("a/b", b"xy", False, 7, v5=False) == b"\x32\x09\x00\x03a/b\x00\x07xy"
    assert publish_packet("a/b", b"", True, 258, v5=True) == b"\x33\x08\x00\x03a/b\x01\x02\x00"
    long = publish_packet("t", b"z" * 200, False, 1, v5=False)
    assert long[:3] == b"\x32\xcd\x01" and len(long) == 3 + 205  # remaining length 205 in two bytes


def test_latest_per_key_waits_while_disconnected_and_goes_in_order() -> None:
    box = Outbox(window=10)
    box.offer("i/1", "i/1", b"open", True)
    box.offer("i/2", "i/2", b"open", True)
    box.offer("i/1", "i/1", b"acknowledged", True)  # replaces the waiting one, moves behind i/2
    assert box.stats()["pending"] == 2 and box.replaced == 1
    paho = _Paho()
    box.attach(paho, receive_maximum=65535, v5=False)
    assert _topics(paho.written) == ["i/2", "i/1"] and _payloads(paho.written) == [b"open", b"acknowledged"]
    assert box.stats()["inflight"] == 2 and box.stats()["pending"] == 0


def test_the_window_is_the_smaller_of_ours_and_the_brokers_receive_maximum() -> None:
    box, paho = Outbox(window=3), _Paho()
    box.attach(paho, receive_maximum=2, v5=True)
    for n in range(5):
        box.offer(f"k{n}", f"t/{n}", b"x", True)
    assert _topics(paho.written) == ["t/0", "t/1"] and len(box.pending) == 3
    assert box.puback(1, 0) and _topics(paho.written)[-1] == "t/2"  # each ack makes room for one
    assert not box.puback(999, 0)  # not ours: paho's own publish (the Inbox hands it on)
    assert box.puback(2, 0x87)  # refused (not authorised): counted, not sent again
    assert (box.acked, box.refused) == (1, 1)


def test_unacknowledged_messages_are_sent_again_on_the_next_connection() -> None:
    box, first = Outbox(window=10), _Paho()
    box.attach(first, receive_maximum=65535, v5=False)
    box.offer("a", "t/a", b"1", True)
    box.offer("b", "t/b", b"1", True)
    box.puback(1, 0)  # a is acknowledged; b is not when the connection ends
    box.detach()
    box.offer("b", "t/b", b"2", True)  # newer b while away: the unacknowledged old one is not resent
    box.offer("c", "t/c", b"1", True)
    box.detach()  # (idempotent)
    second = _Paho()
    second.last_mid = 1  # the new connection's ids need not be the old ones
    box.attach(second, receive_maximum=65535, v5=False)
    assert _topics(second.written) == ["t/b", "t/c"] and _payloads(second.written) == [b"2", b"1"]
    assert box.sent == 4


def test_beyond_max_pending_the_oldest_key_is_dropped_and_counted() -> None:
    box = Outbox(max_pending=2)
    for key in "abc":
        box.offer(key, key, b"x", True)
    assert list(box.pending) == ["b", "c"] and box.dropped == 1
    box.withdraw("b")
    assert list(box.pending) == ["c"]


def _incident(state: IncidentState) -> Incident:
    return Incident(
        id=7, estate="sunshine", device="lvl-1", rule="septic_high", alarm_key="sunshine/lvl-1/septic_high",
        priority=Priority.HIGH, state=state, title="液位高", opened_at=100.0, updated_at=100.0,
    )  # fmt: skip


def _events(packets: list[bytes]) -> list[list[str]]:
    return [[e["action"] for e in json.loads(p)["events"]] for p in _payloads(packets) if p]


def test_a_coalesced_snapshot_carries_the_events_of_the_one_it_replaced() -> None:
    """While a snapshot waits (window full, or no connection), a newer one of the same incident replaces
    it and carries both changes' events, in order; once one went out, the next carries its own only."""
    outbox, paho = Outbox(window=1), _Paho()
    egress = IncidentEgress(outbox, "gw-1")
    egress.offer(_incident(IncidentState.OPEN), [TimelineEntry(100.0, "opened")])
    egress.offer(_incident(IncidentState.OPEN), [TimelineEntry(101.0, "alarm_returned_to_normal")])
    egress.offer(_incident(IncidentState.ACKNOWLEDGED), [TimelineEntry(102.0, "acknowledged", "li")])
    assert outbox.replaced == 2
    outbox.attach(paho, 65535, v5=False)
    assert _events(paho.written) == [["opened", "alarm_returned_to_normal", "acknowledged"]]
    egress.republish([_incident(IncidentState.ACKNOWLEDGED)])  # waits behind the one in flight: no events
    egress.offer(_incident(IncidentState.RESOLVED), [TimelineEntry(103.0, "resolved", "li")])
    outbox.puback(paho.last_mid, 0)
    assert _events(paho.written) == [["opened", "alarm_returned_to_normal", "acknowledged"], ["resolved"]]


def test_a_snapshot_back_from_a_lost_connection_still_hands_its_events_to_a_newer_one() -> None:
    """Unacknowledged when the connection ends, a snapshot waits again with its events; a newer change
    of the incident replaces it and carries them (at least once, as QoS 1 is)."""
    outbox, paho = Outbox(window=1), _Paho()
    outbox.attach(paho, 65535, v5=False)
    egress = IncidentEgress(outbox, "gw-1")
    egress.offer(_incident(IncidentState.OPEN), [TimelineEntry(100.0, "opened")])
    outbox.detach()  # no PUBACK came
    egress.offer(_incident(IncidentState.ACKNOWLEDGED), [TimelineEntry(102.0, "acknowledged", "li")])
    again = _Paho()
    outbox.attach(again, 65535, v5=False)
    assert _events(again.written) == [["opened", "acknowledged"]]


def test_a_commit_s_snapshots_leave_in_one_write_and_one_incident_s_changes_as_one_message() -> None:
    """The egress offers a commit's changes first and writes them after: one system call for the lot;
    two changes of one incident in the same commit become one message, the later state with both
    changes' events in order."""
    outbox, paho = Outbox(window=100), _Paho()
    outbox.attach(paho, 65535, v5=False)
    egress = IncidentEgress(outbox, "gw-1")
    first, second = _incident(IncidentState.OPEN), _incident(IncidentState.OPEN)
    second.id, second.alarm_key = 8, "sunshine/lvl-2/septic_high"
    egress(
        [
            IncidentChange(first, True, [TimelineEntry(100.0, "opened")]),
            IncidentChange(second, True, [TimelineEntry(100.5, "opened")]),
            IncidentChange(first, False, [TimelineEntry(101.0, "alarm_returned_to_normal")]),
        ]
    )
    assert len(paho.written) == 1  # one write
    assert [topic for topic, _ in _messages(paho.written)] == [
        "estate-gateway/sunshine/incident/8",
        "estate-gateway/sunshine/incident/7",
    ]
    assert _events(paho.written) == [["opened"], ["opened", "alarm_returned_to_normal"]]
