"""Poll one Modbus device through its profile: block reads → decoded Readings, offline detection.

A timeout or lost connection ends the device's cycle at once, so a dead unit id costs its neighbours on
the same bus at most one timeout per cycle. An exception reply means the device is alive: the block is
counted and skipped, the rest of the map is still read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace

from drivers.blocks import Block, plan_blocks
from drivers.derived import derive
from drivers.errors import DriverConnectionError, DriverError, DriverProtocolError, DriverTimeout
from drivers.profiles.schema import ModbusPoint, ModbusProfile
from drivers.registers import decode_nibbles, decode_points
from drivers.stats import DeviceStats
from drivers.transports.modbus import ModbusEndpoint
from gateway.model import Clock, Envelope, Item, Quality, Reading, Source

log = logging.getLogger(__name__)
Emit = Callable[[Envelope], Awaitable[None]]


class ModbusDeviceDriver:
    """One device behind an endpoint. `run` loops forever; `poll_once` is one cycle (used by tests)."""

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
        self.blocks = plan_blocks(profile)
        self._failures = 0
        self._online: bool | None = None
        self._failing_blocks: set[int] = set()  # block addresses currently failing (logged once)
        self._last_good: dict[str, Reading] = {}  # per point, for stale readings when it goes offline

    @property
    def name(self) -> str:
        return f"{self.estate}/{self.device}"

    async def run(self, emit: Emit) -> None:
        next_due = self.clock.monotonic()
        while True:
            await self.poll_once(emit)
            next_due += self.poll_interval
            delay = next_due - self.clock.monotonic()
            if delay < 0:  # fell behind (slow device): do not burst to catch up
                next_due, delay = self.clock.monotonic(), 0.0
            await asyncio.sleep(delay)

    async def poll_once(self, emit: Emit) -> None:
        self.stats.polls += 1
        ts_ns = int(self.clock.now() * 1e9)
        items: list[Item] = []
        chunks: list[tuple[ModbusPoint, list[int]]] = []
        refused: list[ModbusPoint] = []  # points of blocks answered with an exception
        alive, complete = False, True
        for block in self.blocks:
            try:
                words = await self._read(block)
            except DriverProtocolError as exc:
                alive = True  # it answered, with an exception
                reason = f"exception_{exc.exception_code}" if exc.exception_code is not None else "protocol"
                self._count_error(reason, exc, block)
                refused.extend(block.points)
                continue
            except (DriverTimeout, DriverConnectionError) as exc:
                self._count_error("timeout" if isinstance(exc, DriverTimeout) else "connection", exc, block)
                alive = complete = False
                break
            alive = True
            if block.address in self._failing_blocks:
                self._failing_blocks.discard(block.address)
                log.info("%s: %s@%d+%d reads again", self.name, block.table, block.address, block.count)
            chunks.extend(self._slice(block, words))
            items.extend(self._alarm_readings(block, words, ts_ns))
        if complete:  # a cycle cut short by a timeout reports nothing but the device's state
            items = self._point_readings(chunks, ts_ns) + self._refused_readings(refused, ts_ns) + items
        else:
            items.clear()
        if alive:
            self.stats.last_seen = self.clock.now()
        for item in items:
            if isinstance(item, Reading) and item.quality is Quality.GOOD and item.point != "online":
                self._last_good[item.point] = item
        self._track_online(alive, ts_ns, items)
        if items:
            self.stats.readings += len(items)
            await emit(Envelope(items))

    async def _read(self, block: Block) -> list[int] | list[bool]:
        """Read one block; a timeout is retried `retries` times at once (a noisy RS-485 line)."""
        for attempt in range(self.retries + 1):
            try:
                return await self.endpoint.read(block.table, block.address, block.count, self.unit_id)  # type: ignore[arg-type]
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

    @staticmethod
    def _slice(block: Block, words: list[int] | list[bool]) -> list[tuple[ModbusPoint, list[int]]]:
        return [
            (point, [int(w) for w in words[point.address - block.address :][: point.words]])
            for point in block.points
        ]

    def _alarm_readings(self, block: Block, words: list[int] | list[bool], ts_ns: int) -> list[Item]:
        nib = self.profile.alarm_nibbles
        if nib is None or block.points:
            return []
        first = nib.first_address - block.address
        codes = decode_nibbles([int(w) for w in words[first:]], len(nib.names))
        return [
            Reading(ts_ns, self.estate, self.device, f"alarm.{name}", nib.codes.get(code, f"code_{code}"))
            for name, code in zip(nib.names, codes, strict=False)
        ]

    def _point_readings(self, chunks: list[tuple[ModbusPoint, list[int]]], ts_ns: int) -> list[Item]:
        """Decode the poll's points together (a value may take its decimals from another point), then
        the derived points; a bad value is reported as quality bad, never as a number."""
        units = {p.name: p.unit for p, _ in chunks}
        decoded = decode_points(chunks, self.profile)
        items: list[Item] = []
        for name, result in decoded.items():
            if result.value is None:
                self.stats.error("bad_value")
                items.append(Reading(ts_ns, self.estate, self.device, name, 0, units[name], Quality.BAD))
            else:
                items.append(Reading(ts_ns, self.estate, self.device, name, result.value, units[name]))
        for extra in derive(self.profile, decoded):
            quality, value = (Quality.GOOD, extra.value) if extra.value is not None else (Quality.BAD, 0)
            items.append(
                Reading(
                    ts_ns, self.estate, self.device, extra.name, value, extra.unit, quality, Source.DERIVED
                )
            )
        return items

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
