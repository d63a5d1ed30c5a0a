"""The generator profile against the DSE-like simulator over real Modbus TCP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

import pytest

from drivers.errors import DriverConnectionError, DriverTimeout
from drivers.modbus_device import ModbusDeviceDriver
from drivers.profiles import ModbusProfile, ProfileLibrary
from drivers.sim import DeviceFault, GeneratorModel, ModbusSimServer
from drivers.stats import DeviceStats
from drivers.transports.modbus import ModbusEndpoint
from gateway.model import Envelope, Quality, Reading, SystemClock
from gateway.runtime.broker import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def profile() -> ModbusProfile:
    p = ProfileLibrary().get("dse_gencomm")
    assert isinstance(p, ModbusProfile)
    return p


class Rig:
    def __init__(self, profile: ModbusProfile, units: int = 1) -> None:
        self.port = free_port()
        self.models = {u: GeneratorModel(profile) for u in range(1, units + 1)}
        self.server = ModbusSimServer("127.0.0.1", self.port, dict(self.models))
        self.endpoint = ModbusEndpoint("127.0.0.1", self.port, timeout=0.3)
        self.profile = profile
        self.got: list[Reading] = []

    def driver(self, unit: int = 1, offline_after: int = 2) -> ModbusDeviceDriver:
        return ModbusDeviceDriver(
            "e1",
            f"gen-{unit}",
            self.profile,
            self.endpoint,
            unit,
            0.2,
            offline_after,
            DeviceStats(),
            SystemClock(),
        )

    async def emit(self, envelope: Envelope) -> None:
        self.got.extend(i for i in envelope.items if isinstance(i, Reading))

    def latest(self, point: str) -> Reading:
        return [r for r in self.got if r.point == point][-1]


@pytest.fixture(params=["lean", "execute"])
async def rig(profile: ModbusProfile, request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    """Every test on both request paths: the endpoint's lean exchange and pymodbus' `client.execute`
    (what a pymodbus without the lean path's parts gets), which must behave the same."""
    r = Rig(profile, units=2)
    assert r.endpoint._ctx is not None  # the installed pymodbus takes the lean path
    if request.param == "execute":
        r.endpoint._ctx = None
    await r.server.start()
    yield r
    r.endpoint.close()
    await r.server.stop()


async def test_decoded_values_equal_simulator_ground_truth(rig: Rig) -> None:
    model = rig.models[1]
    model.set_mains(False)
    model.step()
    await asyncio.sleep(2.1)  # crank time: the engine runs
    driver = rig.driver()
    await driver.poll_once(rig.emit)
    truth = model.values()
    for point in rig.profile.points:
        got = rig.latest(point.name)
        assert got.quality is Quality.GOOD
        expected = truth[point.name]
        if isinstance(expected, str):
            assert got.value == expected, point.name
        else:
            assert got.value == pytest.approx(expected, abs=point.scale / 2 + 1e-9), point.name
    assert rig.latest("mains_failed").value is True
    assert rig.latest("engine_state").value == "running"
    assert rig.latest("online").value is True
    assert len(driver.blocks) == 7 and driver.stats.polls == 1


async def test_sentinel_becomes_bad_quality(rig: Rig) -> None:
    rig.models[1].oil_sender_fault = True
    driver = rig.driver()
    await driver.poll_once(rig.emit)
    assert rig.latest("oil_pressure").quality is Quality.BAD
    assert driver.stats.errors["bad_value"] == 1
    assert rig.latest("fuel_level").quality is Quality.GOOD


async def test_exception_replies_are_counted_and_device_stays_online(rig: Rig) -> None:
    driver = rig.driver()
    rig.models[1].fault = DeviceFault(exception=4)
    for _ in range(3):
        await driver.poll_once(rig.emit)
    assert driver.stats.errors["exception_4"] == 3 * len(driver.blocks)
    assert driver.stats.online is True
    rig.models[1].fault = DeviceFault()
    rig.got.clear()
    await driver.poll_once(rig.emit)
    assert rig.latest("fuel_level").value == 80


async def test_silent_unit_goes_offline_and_its_neighbour_is_not_delayed(rig: Rig) -> None:
    dead, alive = rig.driver(1), rig.driver(2)
    await dead.poll_once(rig.emit)
    rig.models[1].fault = DeviceFault(silent=True)
    durations = []
    for _ in range(2):
        await dead.poll_once(rig.emit)
        started = time.monotonic()
        await alive.poll_once(rig.emit)
        durations.append(time.monotonic() - started)
    assert dead.stats.online is False and dead.stats.errors["timeout"] == 2
    assert [r.value for r in rig.got if r.point == "online" and r.device == "gen-1"] == [True, False]
    # The dead unit costs one timeout per cycle, not one per block; the neighbour answers promptly.
    assert max(durations) < 0.3
    assert alive.stats.online is True
    rig.models[1].fault = DeviceFault()
    await asyncio.sleep(0.4)  # a hung request on the shared connection must be cleared by then
    await dead.poll_once(rig.emit)
    assert dead.stats.online is True


async def test_a_silent_peer_is_disconnected_as_pymodbus_does_and_reconnected(rig: Rig) -> None:
    """pymodbus drops a TCP connection on the fifth request in a row without a reply (retries + 3 are
    allowed first); both paths do, and the next request connects again."""
    await rig.endpoint.read("holding", 1024, 1, 1)
    rig.models[1].fault = DeviceFault(silent=True)
    timeouts = 0
    while rig.endpoint._client.connected and timeouts < 10:
        with pytest.raises(DriverTimeout):
            await rig.endpoint.read("holding", 1024, 1, 1)
        timeouts += 1
    assert timeouts == 5
    rig.models[1].fault = DeviceFault()
    await asyncio.sleep(0.4)  # the last unanswered request's late reply is not waited for
    assert len(await rig.endpoint.read("holding", 1024, 1, 1)) == 1
    assert rig.endpoint._client.connected


async def test_refused_connection_goes_offline_and_recovers(profile: ModbusProfile) -> None:
    rig = Rig(profile)
    driver = rig.driver()
    for _ in range(2):
        await driver.poll_once(rig.emit)
    assert driver.stats.online is False and driver.stats.errors["connection"] == 2
    await rig.server.start()
    try:
        deadline = time.monotonic() + 5
        while driver.stats.online is not True and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            await driver.poll_once(rig.emit)
        assert driver.stats.online is True
    finally:
        rig.endpoint.close()
        await rig.server.stop()


async def test_timeouts_are_retried_as_configured(rig: Rig) -> None:
    driver = rig.driver()
    driver.retries = 2
    rig.models[1].fault = DeviceFault(silent=True)
    await driver.poll_once(rig.emit)
    # one block tried three times (1 + 2 retries), then the cycle ends: the device is not answering
    assert driver.stats.errors["timeout_retried"] == 2 and driver.stats.errors["timeout"] == 1


async def test_values_go_stale_not_frozen_when_the_device_goes_offline(rig: Rig) -> None:
    driver = rig.driver()
    await driver.poll_once(rig.emit)
    good_fuel = rig.latest("fuel_level")
    rig.got.clear()
    rig.models[1].fault = DeviceFault(silent=True)
    for _ in range(2):
        await driver.poll_once(rig.emit)
    stale = {r.point: r for r in rig.got if r.quality is Quality.STALE}
    assert stale["fuel_level"].value == good_fuel.value and stale["fuel_level"].ts_ns > good_fuel.ts_ns
    assert "online" not in stale and rig.got[-1].point == "online" and rig.got[-1].value is False
    rig.got.clear()
    await driver.poll_once(rig.emit)  # still offline: said once, not every poll
    assert not [r for r in rig.got if r.quality is Quality.STALE]


Reply = Callable[[int, bytes], bytes | None]  # (connection number from 1, request) → reply, None: close


@contextlib.asynccontextmanager
async def raw_modbus_server(reply: Reply) -> AsyncIterator[tuple[int, list[asyncio.Task[None]]]]:
    """A Modbus TCP server on a real socket that answers FC03 requests as `reply` says, for faults the
    simulator does not make; yields its port and its connections' handlers."""
    handlers: list[asyncio.Task[None]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        number = len(handlers)
        try:
            while request := await reader.read(12):  # MBAP (7) + FC03 request PDU (5)
                if (answer := reply(number, request)) is None:
                    return
                writer.write(answer)
                await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], handlers
    finally:
        server.close()
        await server.wait_closed()
        for handler in handlers:  # 3.11: closing the server leaves its connections' handlers running
            handler.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)


def one_register(tid: int, unit: int) -> bytes:
    """An FC03 reply of one register, 0x1234, with this MBAP transaction id and unit."""
    pdu = bytes([3, 2, 0x12, 0x34])
    return tid.to_bytes(2, "big") + b"\0\0" + (len(pdu) + 1).to_bytes(2, "big") + bytes([unit]) + pdu


@pytest.mark.parametrize("lean", [True, False])
@pytest.mark.parametrize("wrong", ["unit", "transaction"])
async def test_a_reply_for_another_unit_or_transaction_is_not_taken(lean: bool, wrong: str) -> None:
    """A converter that answers with the wrong unit id or transaction id: the read fails as a timeout,
    its registers are never taken for the asked unit's."""

    def misaddressed(_connection: int, request: bytes) -> bytes:
        tid, unit = int.from_bytes(request[0:2], "big"), request[6]
        return one_register(tid + 1, unit) if wrong == "transaction" else one_register(tid, unit + 1)

    async with raw_modbus_server(misaddressed) as (port, _handlers):
        endpoint = ModbusEndpoint("127.0.0.1", port, timeout=0.3)
        if not lean:
            endpoint._ctx = None
        try:
            with pytest.raises(DriverTimeout):
                await endpoint.read("holding", 0, 1, 5)
        finally:
            endpoint.close()


async def test_a_connection_closed_while_a_request_waits_fails_it_at_once_and_the_next_reconnects() -> None:
    """A converter that reboots mid-request (the first connection is closed after the request is read):
    the lean exchange reports a lost connection at once, not a timeout after `timeout` seconds, and the
    next read connects again and gets its reply."""

    def first_dropped(connection: int, request: bytes) -> bytes | None:
        return None if connection == 1 else one_register(int.from_bytes(request[0:2], "big"), request[6])

    async with raw_modbus_server(first_dropped) as (port, connections):
        endpoint = ModbusEndpoint("127.0.0.1", port, timeout=2.0)
        try:
            started = time.monotonic()
            with pytest.raises(DriverConnectionError, match="connection lost while waiting for a reply"):
                await endpoint.read("holding", 0, 1, 5)
            assert time.monotonic() - started < 1.0, "failed at once, not after the 2 s reply timeout"
            assert await endpoint.read("holding", 0, 1, 5) == [0x1234]
            assert len(connections) == 2
        finally:
            endpoint.close()
