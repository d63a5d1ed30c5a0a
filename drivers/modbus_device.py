"""Poll one Modbus device through its profile: block reads → decoded Readings, offline detection.

A timeout or lost connection ends the device's cycle at once, so a dead unit id costs its neighbours on
the same bus at most one timeout per cycle. An exception reply means the device is alive: the block is
counted and skipped, the rest of the map is still read.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

from drivers.blocks import Block
from drivers.derived import derive
from drivers.errors import DriverConnectionError, DriverError, DriverProtocolError, DriverTimeout
from drivers.poll_plan import PollPlan, Slot
from drivers.profiles.schema import ModbusPoint, ModbusProfile
from drivers.registers import ValueDecoder, decode_nibbles
from drivers.stats import DeviceStats
from drivers.transports.modbus import ModbusEndpoint, PreparedRead
from gateway.model import Clock, Envelope, Item, Quality, Reading, Source, Value

log = logging.getLogger(__name__)
# enum members looked up once: ~60 ns a lookup in 3.11, several per point per poll
_GOOD, _MODBUS, _DERIVED = Quality.GOOD, Source.MODBUS, Source.DERIVED
Emit = Callable[[Envelope], Awaitable[None]]


@dataclass(slots=True)
class _Cycle:
    """What one poll cycle read so far."""

    blocks: list[tuple[tuple[Slot, ...], list[int]]] = field(default_factory=list)  # (slots, words)
    alarm_words: list[tuple[Block, list[int] | list[bool]]] = field(default_factory=list)
    refused: list[ModbusPoint] = field(default_factory=list)  # points of blocks answered with an exception
    answered: int = 0  # blocks answered so far (values or an exception)
    alive: bool = False  # the device answered at least once
    complete: bool = True  # no block timed out or lost its connection


class ModbusDeviceDriver:
    """One device behind an endpoint; `poll_once` is one cycle. drivers.modbus_bus.BusPoller schedules
    the cycles of all devices behind one endpoint."""

    def __init__(
        self,
        estate: str,
        device: str,
        profile: ModbusProfile,
        endpoint: ModbusEndpoint,
        unit_id: int,
        poll_interval: float,
        offline_after: int,
        stats: DeviceStats,
        clock: Clock,
        retries: int = 0,
    ) -> None:
        self.estate, self.device, self.profile = estate, device, profile
        self.endpoint, self.unit_id = endpoint, unit_id
        self.poll_interval, self.offline_after = poll_interval, offline_after
        self.stats, self.clock = stats, clock
        self.retries = retries
        plan = PollPlan.of(profile)  # blocks and decoders, shared by the profile's devices
        self.blocks, self._slots = plan.blocks, plan.slots
        self._reads = [PreparedRead(b.table, b.address, b.count, unit_id) for b in self.blocks]  # type: ignore[arg-type]
        self._failures = 0
        self._online: bool | None = None
        self._failing_blocks: set[int] = set()  # block addresses currently failing (logged once)
        self._last_good: dict[str, Reading] = {}  # per point, for stale readings when it goes offline

    @property
    def name(self) -> str:
        return f"{self.estate}/{self.device}"

    async def poll_once(self, emit: Emit) -> None:
        self.stats.polls += 1
        ts_ns = int(self.clock.now() * 1e9)
        cycle = _Cycle()
        async with self.endpoint.exclusive():  # the device's blocks back to back: one bus hand-over
            try:
                # pymodbus times out each request itself; this backstop (drivers/backstop.py: one timer
                # for many cycles) only fires when a transaction hangs, and then the connection is dropped.
                with self.endpoint.hang_guard(self._backstop()):
                    await self._read_blocks(cycle)
            except TimeoutError:
                self.endpoint.reset()
                block = self.blocks[cycle.answered]
                self._count_error(
                    "timeout", DriverTimeout(f"{self.name}: poll hung, connection reset"), block
                )
                cycle.complete = False
        items: list[Item] = []
        if cycle.complete:  # a cycle cut short by a timeout reports nothing but the device's state
            items += self._point_readings(cycle.blocks, ts_ns)
            items += self._refused_readings(cycle.refused, ts_ns)
            for block, words in cycle.alarm_words:
                items += self._alarm_readings(block, words, ts_ns)
        if cycle.alive:
            self.stats.last_seen = self.clock.now()
        self._track_online(cycle.alive, ts_ns, items)
        if items:
            self.stats.readings += len(items)
            await emit(Envelope(items))

    def _backstop(self) -> float:
        """Every read may take its own timeout (retries included) before pymodbus gives up: beyond twice
        that, plus a second a read, the cycle is hung, not slow."""
        return self.endpoint.backstop * (self.retries + 1) * max(len(self.blocks), 1)

    async def _read_blocks(self, cycle: _Cycle) -> None:
        """Read the device's blocks in turn into `cycle`; stop at the first timeout or lost connection."""
        read_prepared = self.endpoint.read_prepared
        for block, slots, read in zip(self.blocks, self._slots, self._reads, strict=True):
            try:
                # most devices are read without retries: no coroutine in between then
                words = await (self._read(read) if self.retries else read_prepared(read))
            except DriverProtocolError as exc:
                cycle.alive = True  # it answered, with an exception
                code = exc.exception_code
                self._count_error(f"exception_{code}" if code is not None else "protocol", exc, block)
                cycle.refused.extend(block.points)
                cycle.answered += 1
                continue
            except (DriverTimeout, DriverConnectionError) as exc:
                self._count_error("timeout" if isinstance(exc, DriverTimeout) else "connection", exc, block)
                cycle.complete = False
                return
            cycle.alive = True
            cycle.answered += 1
            if block.address in self._failing_blocks:
                self._failing_blocks.discard(block.address)
                log.info("%s: %s@%d+%d reads again", self.name, block.table, block.address, block.count)
            if slots:
                if block.table in ("coil", "discrete"):  # bits as 0/1 words
                    words = [int(w) for w in words]
                cycle.blocks.append((slots, words))  # type: ignore[arg-type]
            else:
                cycle.alarm_words.append((block, words))

    async def _read(self, read: PreparedRead) -> list[int] | list[bool]:
        """Read one block; a timeout is retried `retries` times at once (a noisy RS-485 line)."""
        for attempt in range(self.retries + 1):
            try:
                return await self.endpoint.read_prepared(read)
            except DriverTimeout:
                if attempt == self.retries:
                    raise
                self.stats.error("timeout_retried")
        raise AssertionError("unreachable")

    def _count_error(self, reason: str, exc: DriverError, block: Block) -> None:
        """Count every failure; log a failing block once, not on every poll (and not while offline)."""
        self.stats.error(reason)
        if block.address in self._failing_blocks:
            return
        self._failing_blocks.add(block.address)
        if self._online is not False:
            log.warning(
                "%s: %s reading %s@%d+%d: %s", self.name, reason, block.table, block.address, block.count, exc
            )

    def _alarm_readings(self, block: Block, words: list[int] | list[bool], ts_ns: int) -> list[Item]:
        nib = self.profile.alarm_nibbles
        if nib is None:
            return []
        first = nib.first_address - block.address
        codes = decode_nibbles([int(w) for w in words[first:]], len(nib.names))
        items: list[Item] = []
        for name, code in zip(nib.names, codes, strict=False):
            reading = Reading(
                ts_ns, self.estate, self.device, f"alarm.{name}", nib.codes.get(code, f"code_{code}")
            )
            self._last_good[reading.point] = reading
            items.append(reading)
        return items

    def _point_readings(self, blocks: list[tuple[tuple[Slot, ...], list[int]]], ts_ns: int) -> list[Item]:
        """Decode the poll's points block by block (a value may take its decimals from another point of
        the same poll), then the derived points; a bad value is reported as quality bad, never as a
        number."""
        last_good, estate, device = self._last_good, self.estate, self.device
        values: dict[str, Value | None] = {}  # this poll's, for decimals_from and derived points
        items: list[Item] = []
        deferred: list[tuple[str, str, ValueDecoder, int, str, list[int]]] = []
        for slots, words in blocks:  # the hot loop: `_reading` inlined for a good value
            for name, unit, decode, first, source, later in slots:
                if source is None:
                    value = decode(words, first, None)
                elif later:  # its decimals come later in the poll
                    deferred.append((name, unit, decode, first, source, words))
                    continue
                else:
                    value = decode(words, first, values.get(source))
                values[name] = value
                if value is None:
                    items.append(self._reading(name, None, unit, _MODBUS, ts_ns))
                    continue
                reading = Reading(ts_ns, estate, device, name, value, unit, _GOOD, _MODBUS)
                last_good[name] = reading
                items.append(reading)
        for name, unit, decode, first, source, words in deferred:
            value = values[name] = decode(words, first, values.get(source))
            items.append(self._reading(name, value, unit, _MODBUS, ts_ns))
        if self.profile.derived:
            items += [
                self._reading(d.name, d.value, d.unit, _DERIVED, ts_ns) for d in derive(self.profile, values)
            ]
        return items

    def _reading(self, point: str, value: Value | None, unit: str, source: Source, ts_ns: int) -> Item:
        """A good value (remembered: it is what goes stale when the device goes offline), or quality bad
        for None: a sentinel, an unknown code, or a derived point of a bad source."""
        if value is None:
            if source is _MODBUS:
                self.stats.error("bad_value")
            return Reading(ts_ns, self.estate, self.device, point, 0, unit, Quality.BAD, source)
        reading = Reading(ts_ns, self.estate, self.device, point, value, unit, _GOOD, source)
        self._last_good[point] = reading
        return reading

    def _refused_readings(self, points: list[ModbusPoint], ts_ns: int) -> list[Item]:
        """A point whose block the device refuses (device failure, illegal address) is unknown now: it is
        reported bad on every such poll, not left at its last value (which would look current)."""
        for point in points:
            self._last_good.pop(point.name, None)
        return [Reading(ts_ns, self.estate, self.device, p.name, 0, p.unit, Quality.BAD) for p in points]

    def _track_online(self, alive: bool, ts_ns: int, items: list[Item]) -> None:
        if alive:
            self._failures = 0
            if self._online is not True:
                if self._online is False:
                    log.info("%s: back online", self.name)
                self._set_online(True, ts_ns, items)
            return
        self._failures += 1
        if self._failures >= self.offline_after and self._online is not False:
            log.warning("%s: offline after %d failed polls", self.name, self._failures)
            self._set_online(False, ts_ns, items)

    def _set_online(self, online: bool, ts_ns: int, items: list[Item]) -> None:
        self._online = online
        self.stats.online = online
        if not online:  # last known values become stale, not frozen: consumers see they are old
            items.extend(replace(r, ts_ns=ts_ns, quality=Quality.STALE) for r in self._last_good.values())
            self._last_good.clear()
        items.append(
            Reading(ts_ns, self.estate, self.device, "online", online, "", Quality.GOOD, Source.DERIVED)
        )
