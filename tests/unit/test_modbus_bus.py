"""BusPoller scheduling (each device on its own interval, a crash or a swallowed cancel contained) and the
driver's per-cycle backstop against a hung transaction. Real devices on real sockets:
tests/integration/test_faults_modbus.py; these pin the scheduling rules with stand-in drivers."""

from __future__ import annotations

import asyncio
import time
from typing import cast

from drivers.modbus_bus import BusPoller
from drivers.modbus_device import ModbusDeviceDriver
from drivers.profiles import ModbusProfile, ProfileLibrary
from drivers.stats import DeviceStats
from drivers.transports.modbus import ModbusEndpoint, PreparedRead
from gateway.model import Envelope, Reading, SystemClock


class StandIn:
    """What BusPoller uses of a driver: poll_once, poll_interval, stats, name, endpoint."""

    def __init__(self, name: str, interval: float, crash: bool = False, swallow_cancel: bool = False) -> None:
        self.name, self.poll_interval = name, interval
        self.crash, self.swallow_cancel = crash, swallow_cancel
        self.stats = DeviceStats()
        self.polls: list[float] = []

    async def poll_once(self, emit: object) -> None:
        self.polls.append(time.monotonic())
        if self.crash:
            raise ZeroDivisionError("decode bug")
        try:
            await asyncio.sleep(0.005)  # the bus is busy for a moment
        except asyncio.CancelledError:
            if not self.swallow_cancel:
                raise
            # as Python 3.11's wait_for does when the reply and the cancel arrive together


async def _emit(envelope: Envelope) -> None:
    return None


def _poller(*drivers: StandIn) -> BusPoller:
    return BusPoller(cast(list[ModbusDeviceDriver], list(drivers)), SystemClock())


async def test_each_device_is_polled_at_its_own_interval() -> None:
    fast, slow = StandIn("fast", 0.05), StandIn("slow", 0.25)
    task = asyncio.create_task(_poller(fast, slow).run(_emit))
    await asyncio.sleep(1.0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert 15 <= len(fast.polls) <= 22, len(fast.polls)  # 1.0 / 0.05 + the first
    assert 4 <= len(slow.polls) <= 6, len(slow.polls)
    gaps = [b - a for a, b in zip(slow.polls, slow.polls[1:], strict=False)]
    assert all(0.2 <= g <= 0.35 for g in gaps), gaps


async def test_a_crashing_device_does_not_stop_its_neighbours() -> None:
    broken, healthy = StandIn("broken", 0.1, crash=True), StandIn("healthy", 0.1)
    task = asyncio.create_task(_poller(broken, healthy).run(_emit))
    await asyncio.sleep(0.55)
    assert not task.done()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert len(healthy.polls) >= 5
    assert 5 <= len(broken.polls) <= 7  # tried again every interval, not in a tight loop
    assert broken.stats.errors["poll_crashed"] == len(broken.polls)


async def test_a_cancel_swallowed_inside_a_poll_still_stops_the_bus() -> None:
    device = StandIn("d", 0.01, swallow_cancel=True)
    task = asyncio.create_task(_poller(device).run(_emit))
    await asyncio.sleep(0.05)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=1.0)
    assert task in done and task.cancelled()


class HungEndpoint(ModbusEndpoint):
    """A transaction that never ends (a pymodbus bug, say): pymodbus' own timeout never fires."""

    def __init__(self) -> None:
        super().__init__("127.0.0.1", 1, timeout=0.01)
        self.resets = 0

    async def read_prepared(self, read: PreparedRead) -> list[int] | list[bool]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    def reset(self) -> None:
        self.resets += 1


async def test_a_hung_transaction_ends_the_cycle_as_a_timeout_and_resets_the_connection() -> None:
    profile = ProfileLibrary().get("pressure_transmitter_s16")
    assert isinstance(profile, ModbusProfile)
    endpoint, stats = HungEndpoint(), DeviceStats()
    driver = ModbusDeviceDriver("e1", "tank", profile, endpoint, 1, 1.0, 1, stats, SystemClock())
    assert len(driver.blocks) == 1
    emitted: list[Envelope] = []

    async def emit(envelope: Envelope) -> None:
        emitted.append(envelope)

    t0 = time.monotonic()
    await asyncio.wait_for(driver.poll_once(emit), 5.0)
    assert 0.9 <= time.monotonic() - t0 <= 2.0  # the backstop: (timeout × 2 + 1) per block
    assert endpoint.resets == 1 and stats.errors["timeout"] == 1
    readings = [i for e in emitted for i in e.items if isinstance(i, Reading)]
    assert [(r.point, r.value) for r in readings] == [("online", False)]  # offline after 1, no values
    assert not endpoint.exclusive().locked()  # the bus is free for the next device
