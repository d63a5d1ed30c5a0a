"""`send_packets`: straight to the socket when paho has nothing queued, else behind paho's queue; the
bytes on the wire stay in order whatever the socket takes."""

from __future__ import annotations

from collections import deque

import pytest

from drivers.transports.mqtt_inbox import send_packets

PUBACKS = bytes((0x40, 2, 0, 1, 0x40, 2, 0, 2, 0x40, 2, 0, 3))


class _Paho:
    """paho's client as `send_packets` sees it: a socket that takes `room` bytes, and its output queue."""

    def __init__(self, room: int | None = None, error: type[OSError] | None = None) -> None:
        self.room, self.error = room, error
        self.socket: list[bytes] = []
        self._out_packet: deque[tuple[int, bytes, int]] = deque()
        self._last_msg_out = 0.0

    def _sock_send(self, data: bytes) -> int:
        if self.error is not None:
            raise self.error()
        taken = data if self.room is None else data[: self.room]
        self.socket.append(bytes(taken))
        return len(taken)

    def _packet_queue(self, command: int, packet: bytes, mid: int, qos: int) -> None:
        self._out_packet.append((command, bytes(packet), qos))

    def wire(self) -> bytes:
        """What reaches the broker: the socket's bytes, then the queue's as paho writes them later."""
        return b"".join(self.socket) + b"".join(packet for _, packet, _ in self._out_packet)


def test_the_socket_takes_it_all_and_paho_is_not_involved() -> None:
    paho = _Paho()
    send_packets(paho, 0x40, PUBACKS)
    assert paho.socket == [PUBACKS] and not paho._out_packet
    assert paho._last_msg_out > 0  # paho's keepalive clock knows something went out


def test_what_the_socket_does_not_take_is_queued_behind_it() -> None:
    paho = _Paho(room=5)
    send_packets(paho, 0x40, PUBACKS)
    assert paho.socket == [PUBACKS[:5]]
    assert list(paho._out_packet) == [(0x40, PUBACKS[5:], 0)]
    assert paho.wire() == PUBACKS


@pytest.mark.parametrize("error", [BlockingIOError, ConnectionResetError])
def test_a_socket_that_cannot_write_leaves_it_all_to_paho(error: type[OSError]) -> None:
    paho = _Paho(error=error)
    send_packets(paho, 0x32, b"publish", qos=1)
    assert list(paho._out_packet) == [(0x32, b"publish", 1)]  # paho retries, or reports the lost link
    assert paho._last_msg_out == 0.0


def test_nothing_overtakes_what_paho_has_queued() -> None:
    paho = _Paho()
    paho._packet_queue(0xC0, b"\xc0\x00", 0, 0)  # a PINGREQ paho has not written yet
    send_packets(paho, 0x40, PUBACKS)
    assert paho.socket == []
    assert paho.wire() == b"\xc0\x00" + PUBACKS
