"""One Modbus TCP connection per endpoint, shared by every unit id behind it.

Requests on one connection are serialised with a lock (one RS-485 bus behind a converter cannot carry
two at once). pymodbus' own reconnect is switched off: the endpoint reconnects on demand with backoff,
so a dead endpoint costs one refused connect per backoff period, not one per poll.

Framing: `socket` is Modbus TCP (MBAP header); `rtu` is RTU frames (unit id + PDU + CRC) carried over
TCP, what most RS-485-to-TCP converters in transparent mode speak.

A request is pymodbus' own exchange (`TransactionManager.execute`: transaction id, frame, send, await
the reply, check its unit and transaction ids, drop the connection after retries + 3 silent requests
in a row) without what the endpoint makes redundant: its lock (the endpoint holds its own) and its
`asyncio.wait_for` per request (a task-free waiter, a timer and a cancelled timer left in the loop's
heap, ~13 µs a request on the bench machine, a sixth of the whole read). The reply timeout is a
`Backstop` (drivers/backstop.py: one timer for many requests). Same frames, same checks, same
exceptions; a pymodbus without the parts it uses gets `client.execute` (`_lean_context`). One thing it
does better: a connection the device closes while a request waits fails that request at once as a lost
connection (pymodbus lets it wait out its timeout and calls it one), so a converter's reboot is reported
as what it is and the next poll reconnects without waiting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

import pymodbus
from pymodbus import FramerType
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU
from pymodbus.pdu.bit_message import ReadCoilsRequest, ReadDiscreteInputsRequest, WriteSingleCoilRequest
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersRequest,
    ReadInputRegistersRequest,
    WriteMultipleRegistersRequest,
)

from drivers.backstop import Backstop
from drivers.errors import DriverConnectionError, DriverProtocolError, DriverTimeout

log = logging.getLogger(__name__)
Table = Literal["coil", "discrete", "holding", "input"]
Framer = Literal["socket", "rtu"]
_T = TypeVar("_T")
_READ_REQUESTS: dict[str, type[ModbusPDU]] = {
    "holding": ReadHoldingRegistersRequest,
    "input": ReadInputRegistersRequest,
    "coil": ReadCoilsRequest,
    "discrete": ReadDiscreteInputsRequest,
}


class PreparedRead:
    """One block read, its request built once and sent again on every poll (`read_prepared`).

    pymodbus' `read_*_registers` build and validate a request PDU per call; a device reads the same
    blocks every cycle, so the driver keeps one per block. pymodbus sets the transaction id on each send,
    and the endpoint's lock keeps one request in flight, so reusing it is safe."""

    __slots__ = ("bits", "count", "request", "unit", "what")

    def __init__(self, table: Table, address: int, count: int, unit: int) -> None:
        self.request = _READ_REQUESTS[table](address=address, count=count, dev_id=unit)
        self.bits = table in ("coil", "discrete")
        self.count, self.unit = count, unit
        self.what = f"read {table}@{address}+{count}"


class ModbusEndpoint:
    """A shared client for host:port. Use `read` and `write_*`; they raise the DriverError tree."""

    def __init__(self, host: str, port: int, timeout: float, framer: Framer = "socket") -> None:
        self.host, self.port, self.timeout, self.framer = host, port, timeout, framer
        self._client = AsyncModbusTcpClient(
            host,
            port=port,
            framer=FramerType.RTU if framer == "rtu" else FramerType.SOCKET,
            timeout=timeout,
            retries=0,
            reconnect_delay=0,  # we reconnect ourselves, with backoff
            name=f"modbus-{host}:{port}-{framer}",
        )
        # pymodbus times each request out itself; beyond this a transaction is hung, not slow
        self.backstop = timeout * 2 + 1
        # the backstop of whoever holds the bus (a device's poll cycle, `read`, a write): one timer for many
        self.hang_guard = Backstop()
        self._reply_timer = Backstop()  # the request's own timeout (`timeout`), see the module doc
        self._ctx = _lean_context(self._client)
        self._waiting: asyncio.Future[ModbusPDU] | None = None  # the lean exchange's reply, while awaited
        if self._ctx is not None:
            self._on_disconnect = self._ctx.callback_disconnected  # pymodbus' own, called first
            self._ctx.callback_disconnected = self._disconnected
        self._lock = asyncio.Lock()
        self._connect_failures = 0
        self._next_connect = 0.0

    @property
    def label(self) -> str:
        return f"{self.host}:{self.port}" + (" (rtu)" if self.framer == "rtu" else "")

    async def _ensure_connected(self) -> None:
        if self._client.connected:
            return
        now = time.monotonic()
        if now < self._next_connect:
            raise DriverConnectionError(
                f"{self.label}: not connected (next attempt in {self._next_connect - now:.1f}s)"
            )
        try:
            ok = await asyncio.wait_for(self._client.connect(), self.timeout + 1.0)
        except (TimeoutError, OSError, ModbusException) as exc:
            ok = False
            log.debug("modbus connect %s failed: %r", self.label, exc)
        if not ok:
            # The first retry is immediate (next poll), so one lost connect is not two failed polls;
            # after that 0.5, 1, 2 ... 30 s, so a dead converter is not hammered.
            self._connect_failures += 1
            backoff = (
                0.0 if self._connect_failures == 1 else min(0.5 * 2 ** (self._connect_failures - 2), 30.0)
            )
            self._next_connect = time.monotonic() + backoff
            raise DriverConnectionError(f"{self.label}: connection failed")
        self._connect_failures = 0

    def exclusive(self) -> asyncio.Lock:
        """Hold the bus for several requests, e.g. one device's whole poll cycle: `async with
        endpoint.exclusive(): await endpoint.read_held(...)`. One hand-over per device instead of one
        per block (measured: bench/modbus_poll.py), and the device's blocks are read back to back."""
        return self._lock

    async def read(self, table: Table, address: int, count: int, unit: int) -> list[int] | list[bool]:
        """Read a block. Registers come back as 16-bit words, coils/discretes as bools."""
        return await self._held(lambda: self.read_held(table, address, count, unit), unit, "read")

    async def read_held(self, table: Table, address: int, count: int, unit: int) -> list[int] | list[bool]:
        """`read` for a caller that already holds `exclusive()`, without the backstop timer: pymodbus
        times each request out itself, and a poll cycle has one backstop for all its reads (a timer per
        read costs ~3 µs, ~6 % of a read's CPU: bench/modbus_poll.py)."""
        return await self.read_prepared(PreparedRead(table, address, count, unit))

    async def read_prepared(self, read: PreparedRead) -> list[int] | list[bool]:
        """`read_held` of a block read prepared once (`PreparedRead`): the driver's path, every poll."""
        reply = await self._request(read.request, read.unit, read.what)
        if read.bits:
            return list(reply.bits[: read.count])
        registers = reply.registers
        if len(registers) != read.count:
            raise DriverProtocolError(
                f"{self.label} unit {read.unit}: asked {read.count} registers, got {len(registers)}"
            )
        return list(registers)

    async def _request(self, request: ModbusPDU, unit: int, what: str) -> ModbusPDU:
        """One request on the held bus; pymodbus' failures and exception replies as DriverErrors."""
        client = self._client
        if not client.connected:  # checked here: no coroutine to await per read while connected
            await self._ensure_connected()
        try:
            reply: ModbusPDU = await self._exchange(request)
        except (ModbusIOException, TimeoutError) as exc:
            self._forget_late_reply()
            raise DriverTimeout(f"{self.label} unit {unit}: no reply to {what} in {self.timeout}s") from exc
        except (ConnectionException, OSError) as exc:
            client.close()
            raise DriverConnectionError(f"{self.label}: {exc}") from exc
        except ModbusException as exc:
            raise DriverProtocolError(f"{self.label} unit {unit}: {exc}") from exc
        if reply.isError():
            code = getattr(reply, "exception_code", None)
            raise DriverProtocolError(
                f"{self.label} unit {unit}: {what} refused, exception code {code}", code
            )
        return reply

    async def _exchange(self, request: ModbusPDU) -> ModbusPDU:
        """pymodbus' `TransactionManager.execute` with retries=0, as the module doc says; the caller
        holds the endpoint's lock, so one request is in flight."""
        ctx = self._ctx
        if ctx is None:
            return await self._client.execute(False, request)  # type: ignore[no-any-return]
        if not ctx.transport:
            raise ConnectionException(f"Not connected[{self.label}]")
        request.transaction_id = ctx.getNextTID()
        ctx.recv_buffer = b""
        reply = self._waiting = ctx.response_future = asyncio.get_running_loop().create_future()
        ctx.pdu_send(request)
        try:
            with self._reply_timer(self.timeout):
                response: ModbusPDU = await reply
        except TimeoutError:
            if ctx.count_until_disconnect < 0:  # pymodbus: the peer is gone, not slow
                ctx.connection_lost(TimeoutError("Server not responding"))
            else:
                ctx.count_until_disconnect -= 1
            raise
        finally:
            self._waiting = None
        ctx.count_until_disconnect = ctx.max_until_disconnect
        if request.dev_id and response.dev_id != request.dev_id:
            raise ModbusIOException(f"request to device id {request.dev_id}, reply from {response.dev_id}")
        if response.transaction_id and response.transaction_id != request.transaction_id:
            raise ModbusIOException(
                f"request transaction id {request.transaction_id}, reply {response.transaction_id}"
            )
        return response

    def _disconnected(self, exc: Exception | None) -> None:
        """pymodbus' connection-lost callback, then the request awaiting a reply fails: none can come."""
        self._on_disconnect(exc)
        waiting = self._waiting
        if waiting is not None and not waiting.done():
            waiting.set_exception(ConnectionException(f"connection lost while waiting for a reply ({exc})"))

    def _forget_late_reply(self) -> None:
        """RTU frames carry no transaction id: a slow unit's late reply would be taken as the answer to
        the next request (another block, read as this one). Dropping the connection after a timeout
        discards it; the next request reconnects at once (a converter accepts in milliseconds)."""
        if self.framer == "rtu":
            self._client.close()

    async def write_registers(self, address: int, values: list[int], unit: int) -> None:
        """FC16: several registers in one request (a DSE control key and its complement)."""
        await self._write(WriteMultipleRegistersRequest(address=address, registers=values, dev_id=unit), unit)

    async def write_coil(self, address: int, value: bool, unit: int) -> None:
        """FC05: one coil (a relay)."""
        await self._write(WriteSingleCoilRequest(address=address, bits=[value], dev_id=unit), unit)

    async def _write(self, request: ModbusPDU, unit: int) -> None:
        await self._held(lambda: self._request(request, unit, "write"), unit, "write")

    async def _held(self, operation: Callable[[], Awaitable[_T]], unit: int, what: str) -> _T:
        """One request with the bus held and `hang_guard` around it, as a poll cycle has: pymodbus (or
        `_exchange`) times the request out itself; the guard only ends a hung transaction."""
        async with self._lock:
            try:
                with self.hang_guard(self.backstop):
                    return await operation()
            except TimeoutError as exc:
                self.reset()
                raise DriverTimeout(f"{self.label} unit {unit}: {what} hung, connection reset") from exc

    def reset(self) -> None:
        """Drop the connection after a hung transaction; the next request reconnects."""
        log.warning("modbus %s: transaction hung, connection reset", self.label)
        self._client.close()

    def close(self) -> None:
        self.hang_guard.close()
        self._reply_timer.close()
        self._client.close()


_LEAN_PARTS = ("transport", "getNextTID", "recv_buffer", "response_future", "pdu_send", "connection_lost",
               "callback_disconnected", "count_until_disconnect", "max_until_disconnect")  # fmt: skip


def _lean_context(client: AsyncModbusTcpClient) -> Any:
    """The client's pymodbus transaction manager if it has every part `_exchange` uses (3.16 has), else
    None: `client.execute` then. tests/integration/test_modbus_driver.py checks that the installed
    pymodbus takes the lean path."""
    ctx = getattr(client, "ctx", None)
    if ctx is None or not all(hasattr(ctx, part) for part in _LEAN_PARTS):
        log.warning("pymodbus %s lacks a part of the lean request path: client.execute", pymodbus.__version__)
        return None
    return ctx


class EndpointPool:
    """Endpoints by (host, port, framer): devices on the same converter share one connection."""

    def __init__(self) -> None:
        self._endpoints: dict[tuple[str, int, Framer], ModbusEndpoint] = {}

    def get(self, host: str, port: int, timeout: float, framer: Framer = "socket") -> ModbusEndpoint:
        key = (host, port, framer)
        endpoint = self._endpoints.get(key)
        if endpoint is None:
            endpoint = self._endpoints[key] = ModbusEndpoint(host, port, timeout, framer)
        return endpoint

    def close(self) -> None:
        for endpoint in self._endpoints.values():
            endpoint.close()
