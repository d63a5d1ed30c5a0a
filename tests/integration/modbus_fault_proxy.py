"""A Modbus TCP proxy on 127.0.0.1 that injects device and network faults between the gateway and a
pymodbus simulator: the faults a real converter or device shows that the simulator cannot play itself.

It parses MBAP frames (transaction id, protocol, length, unit id, PDU), so a fault can hit one unit id
while its neighbours behind the same connection are served normally.

Modes (`proxy.mode`, with `proxy.unit` the unit it hits, or None for every unit):
    pass        forward both ways
    silent      swallow the unit's requests (it never answers)
    garbage     answer the unit's requests with random bytes
    wrong_tid   forward the reply with another transaction id
    wrong_unit  forward the reply stamped with another unit id
    slow        forward the reply `slow_s` seconds late (other replies overtake it)
    half_open   connections accepted in this mode read and discard every byte forever and never close
                (a peer that vanished without a FIN); connections made later are served normally
`refuse()` closes the listener and every connection (connection refused); `accept()` listens again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct

from gateway.runtime.broker import free_port

MODES = ("pass", "silent", "garbage", "wrong_tid", "wrong_unit", "slow", "half_open")
_MBAP = struct.Struct(">HHHB")


async def _frame(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readexactly(_MBAP.size)
    length = _MBAP.unpack(head)[2]
    return head + await reader.readexactly(max(0, length - 1))


class FaultProxy:
    def __init__(self, upstream_port: int, slow_s: float = 2.0) -> None:
        self.upstream_port, self.slow_s = upstream_port, slow_s
        self.port = free_port()
        self.mode = "pass"
        self.unit: int | None = None
        self.requests_faulted = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()  # reply pumps and late replies
        self._handlers: set[asyncio.Task[None]] = set()  # one per connection; end when it is aborted

    def fault(self, mode: str, unit: int | None = None) -> None:
        assert mode in MODES, mode
        self.mode, self.unit = mode, unit

    def clear(self) -> None:
        self.mode, self.unit = "pass", None

    async def accept(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def refuse(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def close(self) -> None:
        await self.refuse()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for _ in range(100):  # bounded: a handler accepted during the refuse starts a moment later
            for writer in list(self._writers):
                writer.transport.abort()
            await asyncio.sleep(0.02)
            if not self._handlers:
                break

    def _spawn(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _hits(self, unit: int) -> bool:
        return self.mode != "pass" and (self.unit is None or self.unit == unit)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        self._handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        up_writer: asyncio.StreamWriter | None = None
        try:
            if self.mode == "half_open":
                while await reader.read(4096):  # swallowed; never answered, never closed (until refuse)
                    self.requests_faulted += 1
                return
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            self._writers.add(up_writer)
            marked: dict[int, str] = {}  # transaction id → the fault its reply gets
            self._spawn(self._replies(up_reader, writer, marked))
            while True:
                frame = await _frame(reader)
                tid, _, _, unit = _MBAP.unpack_from(frame)
                if self._hits(unit):
                    self.requests_faulted += 1
                    if self.mode == "silent":
                        continue
                    if self.mode == "garbage":
                        writer.write(os.urandom(11))
                        continue
                    marked[tid] = self.mode
                up_writer.write(frame)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        except asyncio.CancelledError:  # the loop is closing: end quietly (asyncio logs a cancelled
            pass  # connection handler as an error, which the suite turns into a failure)
        finally:
            self._writers.discard(writer)
            self._handlers.discard(asyncio.current_task())  # type: ignore[arg-type]
            writer.transport.abort()
            if up_writer is not None:
                self._writers.discard(up_writer)
                up_writer.transport.abort()

    async def _replies(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, marked: dict[int, str]
    ) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, OSError):
            while True:
                frame = await _frame(reader)
                tid, proto, length, unit = _MBAP.unpack_from(frame)
                fault = marked.pop(tid, None)
                if fault == "wrong_tid":
                    frame = _MBAP.pack((tid + 1000) & 0xFFFF, proto, length, unit) + frame[_MBAP.size :]
                elif fault == "wrong_unit":
                    frame = _MBAP.pack(tid, proto, length, (unit + 100) & 0xFF) + frame[_MBAP.size :]
                elif fault == "slow":
                    self._spawn(self._late(writer, frame))
                    continue
                writer.write(frame)

    async def _late(self, writer: asyncio.StreamWriter, frame: bytes) -> None:
        await asyncio.sleep(self.slow_s)
        if not writer.is_closing():
            writer.write(frame)
