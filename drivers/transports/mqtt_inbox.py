"""The inbound side of one MQTT connection, batched: socket → PUBLISH tuples → acks in one write.

Why (issue 9, measured with py-spy at 6,000 msgs/s): paho-mqtt, under aiomqtt, reads one packet per
socket-readable callback with three `recv()` calls, builds an `MQTTMessage` (with a `threading.Condition`
in its `MQTTMessageInfo`) and, in MQTT 5, a `Properties` object whose constructor alone builds two dicts;
aiomqtt wraps it again and hands it over through a Task per message; each PUBACK is its own `send()`.
That was about 70 % of the gateway's CPU. This module takes over the inbound path of one paho client, at
the seam the ingress already uses for manual acks:

- the socket is read in 64 KiB chunks and every complete packet in a chunk is framed here;
- a PUBLISH at QoS 0/1 becomes a tuple `(topic bytes, payload, packet id, qos)` in the inbox (MQTT 5
  properties are skipped: the gateway uses none of them, and it announces no Topic Alias Maximum, so the
  broker sends none);
- a PUBACK of a message the gateway's `Outbox` sent is handed to it (`outbox`);
- every other packet (CONNACK, SUBACK, PUBACK of paho's own publishes, PINGRESP, DISCONNECT, QoS 2 flows)
  is handed to paho's own handler unchanged;
- the acks of a batch go out as one write, in the order the messages arrived, straight to the socket
  when paho has nothing queued ahead of them (`send_packets`).

Back-pressure: when the messages read but not yet acknowledged reach `high`, reading stops (the broker
keeps the rest queued for our persistent session) and resumes at `high // 2`. Unparsed bytes already read
stay in the buffer meanwhile (at most one chunk: CHUNK).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.exception import MalformedPacket, MQTTException

if TYPE_CHECKING:
    from drivers.transports.mqtt_outbox import Outbox

__all__ = ["Delivery", "Inbox", "send_packets"]

Delivery = tuple[bytes, bytes, int, int]  # topic (UTF-8 bytes), payload, packet id, qos
CHUNK = 16384  # about 250 small messages: one read callback stays well under a millisecond
CHUNKS_PER_CALL = 4  # then yield to the loop (call_soon), so a flood cannot starve other work
_PUBLISH, _PUBACK = 0x30, 0x40
_FRESH = {"command": 0, "have_remaining": 0, "remaining_count": [], "remaining_mult": 1,
          "remaining_length": 0, "packet": bytearray(b""), "to_process": 0, "pos": 0}  # fmt: skip


def supported(client: aiomqtt.Client) -> bool:
    """Whether the paho client has the internals this module relies on (paho-mqtt 2.x)."""
    inner = client._client
    names = ("_packet_handle", "_in_packet", "_sock_recv", "_loop_rc_handle", "_packet_queue", "_protocol",
             "_sock_send", "_out_packet", "_last_msg_out")  # fmt: skip
    return all(hasattr(inner, name) for name in names)


def send_packets(client: Any, command: int, data: bytes, qos: int = 0) -> None:
    """Write `data` (whole MQTT packets) on a paho client's connection, now when nothing of paho's is
    queued ahead of it, else behind what is.

    paho queues every packet and, under aiomqtt, asks the event loop to watch the socket for writability
    first: a write to its socket pair, `call_soon_threadsafe` (the loop's self-pipe), `add_writer`, the
    write, `remove_writer`; five callbacks and six system calls a packet. At 8,000 msgs/s in batches of
    two that was 28 % of the event loop (issue 9, bench/README.md). The socket takes a few hundred bytes
    at once almost always; whatever it does not take goes through paho's queue, so the order of bytes on
    the wire is kept either way. `command`/`qos` label the queued rest for paho (it only looks at them to
    call `on_publish` for QoS 0 publishes)."""
    sent = 0
    if not client._out_packet:
        try:
            sent = client._sock_send(data)  # maps TLS's want-read/write to BlockingIOError
        except OSError:  # would block (all of it goes through paho's queue), or the connection is failing
            sent = 0  # (paho's queue meets the same error and reports the lost connection)
        else:
            client._last_msg_out = time.monotonic()  # paho's keepalive clock (paho.mqtt.client.time_func)
    if sent < len(data):
        client._packet_queue(command, data[sent:] if sent else data, 0, qos)


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


class Inbox:
    """Messages read from one connection and not yet taken by the ingress, with TCP back-pressure.

    `install()` must run before the client connects; the reader is swapped in right after aiomqtt's.
    """

    def __init__(self, client: aiomqtt.Client, high: int) -> None:
        self._client = client
        self._paho: Any = client._client  # private paho API: see the module docstring
        self._loop = asyncio.get_running_loop()
        self.high = max(2, high)
        self.messages: deque[Delivery] = deque()
        self.unacked = 0  # taken by the ingress, not yet acknowledged
        self.paused = False
        self.pauses = 0
        self.closed = False
        self._rest = b""  # bytes read but not yet framed (a packet cut by the chunk, or paused)
        self._fd = -1
        self._waiter: asyncio.Future[None] | None = None
        self._v5 = False
        self.outbox: Outbox | None = None  # the gateway's own publishes: their PUBACKs go there
        self.receive_maximum = 65535  # the broker's (MQTT 5 CONNACK; the protocol's default otherwise)

    # -- wiring ------------------------------------------------------------------------------------
    def install(self) -> None:
        inner = self._paho
        opened = inner.on_socket_open  # aiomqtt's: adds its reader via call_soon_threadsafe
        closed = inner.on_socket_close

        def on_socket_open(client: paho.Client, userdata: Any, sock: Any) -> None:
            opened(client, userdata, sock)
            # Queued behind aiomqtt's add_reader: ours replaces it before the loop reads anything.
            self._loop.call_soon_threadsafe(self._attach, sock.fileno())

        def on_socket_close(client: paho.Client, userdata: Any, sock: Any) -> None:
            self.closed = True
            closed(client, userdata, sock)
            self._wake()

        connected = inner.on_connect  # aiomqtt's

        def on_connect(*args: Any) -> None:  # (client, userdata, flags, reason code, properties)
            properties = args[4] if len(args) > 4 else None
            self.receive_maximum = getattr(properties, "ReceiveMaximum", 65535)
            connected(*args)

        inner.on_socket_open, inner.on_socket_close = on_socket_open, on_socket_close
        inner.on_connect = on_connect
        inner.on_message = self._on_paho_message  # QoS 2 only: paho's own path
        # The ingress reconnects on any disconnection; the cause is logged there, not left unretrieved.
        self._client._disconnected.add_done_callback(_retrieve)

    def _attach(self, fd: int) -> None:
        self._fd, self._v5 = fd, self._paho._protocol == paho.MQTTv5
        if not self.paused:
            self._loop.add_reader(fd, self._on_readable)

    # -- back-pressure -----------------------------------------------------------------------------
    @property
    def backlog(self) -> int:
        return len(self.messages)

    def _pause(self) -> None:
        if not self.paused:
            self.paused = True
            self.pauses += 1
            if self._fd >= 0:
                self._loop.remove_reader(self._fd)

    def _resume(self) -> None:
        if self.paused and not self.closed:
            self.paused = False
            if self._fd >= 0:
                self._loop.add_reader(self._fd, self._on_readable)
                if self._rest:
                    self._loop.call_soon(self._on_readable)

    def _check(self) -> None:
        held = len(self.messages) + self.unacked
        if held >= self.high:
            self._pause()
        elif self.paused and held <= self.high // 2:
            self._resume()

    # -- reading -----------------------------------------------------------------------------------
    def _on_readable(self) -> None:
        if self.paused or self.closed:
            return
        try:
            for _ in range(CHUNKS_PER_CALL):
                if self._rest and not self._frame(b""):
                    return  # paused or failed
                try:
                    chunk = self._paho._sock_recv(CHUNK)
                except BlockingIOError:
                    return
                except OSError:
                    self._lost()
                    return
                if not chunk:
                    self._lost()
                    return
                self._paho._last_bytes_received = time.monotonic()
                if not self._frame(chunk):
                    return
            self._loop.call_soon(self._on_readable)  # more may be waiting: continue after others ran
        except Exception as exc:  # as aiomqtt's reader: a failed read fails the connection
            self._fail(exc)
        finally:
            self._wake()

    def _frame(self, chunk: bytes) -> bool:
        """Handle every complete packet of rest + chunk; False when reading must stop (paused, lost)."""
        buf = self._rest + chunk if self._rest else chunk
        n, i = len(buf), 0
        ok = True
        while i < n:
            if self.paused:
                ok = False
                break
            j, length, mult = i + 1, 0, 1
            while True:  # remaining length: variable byte integer, at most 4 bytes
                if j >= n:
                    length = -1
                    break
                byte = buf[j]
                j += 1
                length += (byte & 127) * mult
                if not byte & 128:
                    break
                mult *= 128
                if j - i > 4:
                    raise MalformedPacket("remaining length longer than 4 bytes")
            end = j + length
            if length < 0 or end > n:
                break  # incomplete: wait for more bytes
            command = buf[i]
            if command & 0xF0 == _PUBLISH and command & 0x06 != 0x04:
                self._publish(command, buf, j, end)
            elif (
                command == _PUBACK
                and self.outbox is not None
                and length >= 2
                and self.outbox.puback(buf[j] << 8 | buf[j + 1], buf[j + 2] if length > 2 else 0)
            ):
                pass  # one of the gateway's own publishes, acknowledged
            else:
                ok = self._to_paho(command, buf[j:end], length)
            i = end
            if not ok:
                break
        self._rest = buf[i:] if i < n else b""
        return ok and not self.paused

    def _publish(self, command: int, buf: bytes, start: int, end: int) -> None:
        qos = (command >> 1) & 3
        k = start + 2 + (buf[start] << 8 | buf[start + 1])
        topic = buf[start + 2 : k]
        mid = 0
        if qos:
            mid = buf[k] << 8 | buf[k + 1]
            k += 2
        if self._v5:  # skip the properties: length (variable byte integer) and body
            size, mult = 0, 1
            while True:
                byte = buf[k]
                k += 1
                size += (byte & 127) * mult
                if not byte & 128:
                    break
                mult *= 128
            k += size
        self.messages.append((topic, bytes(buf[k:end]), mid, qos))
        if len(self.messages) + self.unacked >= self.high:
            self._pause()

    def _to_paho(self, command: int, body: bytes, length: int) -> bool:
        """A packet that is not a QoS 0/1 PUBLISH: paho handles it exactly as it would have."""
        inner = self._paho
        inner._in_packet = {**_FRESH, "command": command, "have_remaining": 1, "remaining_length": length,
                            "packet": bytearray(body), "remaining_count": []}  # fmt: skip
        try:
            rc = inner._packet_handle()
        except MQTTException:
            rc = paho.MQTT_ERR_PROTOCOL
        finally:
            inner._in_packet = {**_FRESH, "remaining_count": [], "packet": bytearray(b"")}
        if rc > 0:
            inner._loop_rc_handle(rc)
            self.closed = True
            return False
        return True

    def _on_paho_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        self.messages.append((message._topic, bytes(message.payload), message.mid, message.qos))

    def _lost(self) -> None:
        self.closed = True
        self._paho._loop_rc_handle(paho.MQTT_ERR_CONN_LOST)

    def _fail(self, exc: Exception) -> None:
        self.closed = True
        disconnected = self._client._disconnected
        if not disconnected.done():
            disconnected.set_exception(exc)

    # -- the consumer side ---------------------------------------------------------------------------
    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done() and (self.messages or self.closed):
            waiter.set_result(None)

    async def wait(self) -> None:
        """Until there are messages; raises aiomqtt.MqttError when the connection is gone."""
        disconnected = self._client._disconnected
        while not self.messages:
            if disconnected.done() or self.closed:
                cause = disconnected.exception() if disconnected.done() else None
                raise aiomqtt.MqttError("Disconnected during message iteration") from cause
            self._waiter = self._loop.create_future()
            await asyncio.wait((self._waiter, disconnected), return_when=asyncio.FIRST_COMPLETED)
            self._waiter = None

    def take(self, limit: int) -> list[Delivery]:
        """Up to `limit` messages, oldest first; they count as unacked until `ack_many` is called."""
        messages = self.messages
        batch = [messages.popleft() for _ in range(min(limit, len(messages)))]
        self.unacked += len(batch)
        self._check()
        return batch

    def ack_many(self, mids: list[int], taken: int, exactly_once: tuple[int, ...] = ()) -> None:
        """PUBACK these QoS 1 packet ids in one write, and release `taken` messages from the bound.

        `exactly_once`: QoS 2 packet ids (paho's own flow; only a QoS 2 subscription would bring them).
        Nothing is sent once this connection is gone: the broker redelivers, the core dedups."""
        self.unacked -= taken
        if not self.closed and self._paho._sock is not None:
            if mids:
                packet = b"".join(bytes((_PUBACK, 2, mid >> 8, mid & 255)) for mid in mids)
                send_packets(self._paho, _PUBACK, packet)
            for mid in exactly_once:
                self._paho.ack(mid, 2)
        self._check()

    def acker(self, mids: list[int], taken: int, exactly_once: tuple[int, ...] = ()) -> Callable[[], None]:
        done = False

        def ack() -> None:
            nonlocal done
            if not done:  # once: a retried batch must not release the bound twice
                done = True
                self.ack_many(mids, taken, exactly_once)

        return ack
