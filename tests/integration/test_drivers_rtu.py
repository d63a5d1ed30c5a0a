"""Modbus RTU: RTU framing over TCP (an RS-485-to-TCP converter) from the site file to decoded
readings, and RTU on a real serial line (a socat pty pair)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusSerialClient

from drivers.blocks import plan_blocks
from drivers.errors import DriverTimeout
from drivers.modbus_device import ModbusDeviceDriver
from drivers.profiles import ModbusPoint, ModbusProfile, ProfileLibrary
from drivers.registers import decode_points
from drivers.sim import DeviceFault, ModbusSimServer, PointsModel, SerialSimServer
from drivers.sim.host import SimulationHost
from drivers.sim.points import SimValue
from drivers.stats import DeviceStats
from drivers.transports.modbus import EndpointPool, ModbusEndpoint
from gateway.config import parse_config
from gateway.model import Envelope, Reading, SystemClock
from gateway.runtime.app import App
from gateway.runtime.broker import free_port

pytestmark = pytest.mark.integration
UNIT = 3
SEPTIC: dict[str, SimValue] = {"unit": "kPa", "pressure": 17.25, "temperature": 21.5}


def _profile(name: str) -> ModbusProfile:
    profile = ProfileLibrary().get(name)
    assert isinstance(profile, ModbusProfile)
    return profile


@asynccontextmanager
async def rtu_server(model: PointsModel) -> AsyncIterator[int]:
    port = free_port()
    server = ModbusSimServer("127.0.0.1", port, {UNIT: model}, framer="rtu")
    await server.start()
    try:
        yield port
    finally:
        await server.stop()


async def _poll(driver: ModbusDeviceDriver) -> dict[str, Reading]:
    got: dict[str, Reading] = {}

    async def emit(envelope: Envelope) -> None:
        got.update({i.point: i for i in envelope.items if isinstance(i, Reading)})

    await driver.poll_once(emit)
    return got


def _driver(profile: ModbusProfile, endpoint: ModbusEndpoint) -> ModbusDeviceDriver:
    return ModbusDeviceDriver("e1", "septic-1", profile, endpoint, UNIT, 1.0, 1, DeviceStats(), SystemClock())


async def test_septic_float_profile_over_rtu_framing_on_tcp() -> None:
    profile = _profile("pressure_transmitter_float")
    async with rtu_server(PointsModel(profile, SEPTIC)) as port:
        endpoint = ModbusEndpoint("127.0.0.1", port, timeout=0.5, framer="rtu")
        try:
            got = await _poll(_driver(profile, endpoint))
        finally:
            endpoint.close()
    assert {name: got[name].value for name in SEPTIC} == SEPTIC
    assert got["level_m"].value == pytest.approx(17.25 / (9.807 * 1.02), rel=1e-5)
    assert got["online"].value is True


async def test_rtu_server_really_speaks_rtu() -> None:
    """A Modbus TCP (MBAP) client gets no answer from it: the framing on the wire is RTU."""
    profile = _profile("pressure_transmitter_float")
    async with rtu_server(PointsModel(profile, SEPTIC)) as port:
        endpoint = ModbusEndpoint("127.0.0.1", port, timeout=0.3, framer="socket")
        driver = _driver(profile, endpoint)
        try:
            got = await _poll(driver)
        finally:
            endpoint.close()
    assert "pressure" not in got and got["online"].value is False
    assert driver.stats.errors["timeout"] == 1


async def test_a_late_rtu_reply_is_not_taken_for_the_next_block() -> None:
    """RTU frames have no transaction id. A unit that answers after our timeout must not have that
    answer read as the reply to the next request (another block of the same length)."""
    profile = ModbusProfile(
        name="two_blocks",
        family="septic_pressure",
        points=[ModbusPoint(name="a", address=0), ModbusPoint(name="b", address=100)],
    )
    model = PointsModel(profile, {"a": 111, "b": 222})
    async with rtu_server(model) as port:
        endpoint = ModbusEndpoint("127.0.0.1", port, timeout=0.3, framer="rtu")
        try:
            model.fault = DeviceFault(delay=0.5)  # answers "a" at 0.5 s, after our 0.3 s timeout
            with pytest.raises(DriverTimeout):
                await endpoint.read("holding", 0, 1, UNIT)
            model.fault = DeviceFault(delay=0.25)  # "b" is being waited for when "a" arrives
            assert await endpoint.read("holding", 100, 1, UNIT) == [222]
        finally:
            endpoint.close()


async def test_endpoint_pool_keeps_framings_apart() -> None:
    pool = EndpointPool()
    rtu = pool.get("10.0.0.5", 4001, 1.0, "rtu")
    assert pool.get("10.0.0.5", 4001, 1.0, "rtu") is rtu
    tcp = pool.get("10.0.0.5", 4001, 1.0)
    assert tcp is not rtu
    assert (rtu.framer, tcp.framer) == ("rtu", "socket")
    assert rtu.label == "10.0.0.5:4001 (rtu)"
    pool.close()


SITE = """\
gateway_id: rtu-test
store: {{path: "{db}"}}
api: {{enabled: false}}
estates:
  - id: sunshine
    name: {{zh: 阳光花园, en: Sunshine Garden}}
    devices:
      - id: septic-2
        family: septic_pressure
        profile: pressure_transmitter_s16
        poll_interval: 0.2
        modbus: {{host: 127.0.0.1, port: {port}, unit_id: 4, timeout: 0.5, framer: {framer}}}
"""


async def test_site_file_framer_reaches_the_wire(tmp_path: Path) -> None:
    """`framer: rtu` in the site file: the simulator serves RTU over TCP and the gateway reads it."""
    config = parse_config(SITE.format(db=tmp_path / "gw.db", port=free_port(), framer="rtu"), "site.yaml", {})
    async with SimulationHost(config) as host:
        model = host.models["septic-2"]
        assert isinstance(model, PointsModel)
        model.values.update(unit="kPa", decimals=2, pressure=-3.21)
        app = App(config, base_dir=tmp_path)
        stop = asyncio.Event()
        task = asyncio.create_task(app.run(stop))
        try:
            stats = app.stats.for_device("sunshine", "septic-2")
            for _ in range(200):  # up to 10 s
                if stats.polls >= 3 or task.done():
                    break
                await asyncio.sleep(0.05)
            assert stats.online is True and stats.readings >= 3 * 4
            assert stats.errors == {}  # no timeouts, no bad values: the framing matched end to end
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)


@pytest.fixture
def serial_pair(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two connected pseudo-terminals from socat: the device's end and the gateway's end."""
    socat = shutil.which("socat")
    if socat is None:
        pytest.fail("socat is needed for the serial test: apt-get install socat (scripts/setup.sh)")
    device, gateway = str(tmp_path / "ttyDEVICE"), str(tmp_path / "ttyGATEWAY")
    process = subprocess.Popen(
        [socat, f"pty,raw,echo=0,link={device}", f"pty,raw,echo=0,link={gateway}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 5
        while not (Path(device).exists() and Path(gateway).exists()):
            assert time.monotonic() < deadline, "socat did not create the pty pair"
            time.sleep(0.02)
        yield device, gateway
    finally:
        process.terminate()
        process.wait(5)


async def test_s16_transmitter_on_a_real_serial_line(serial_pair: tuple[str, str]) -> None:
    device, gateway = serial_pair
    profile = _profile("pressure_transmitter_s16")
    model = PointsModel(profile, {"unit": "kPa", "decimals": 3, "pressure": -1.234})
    server = SerialSimServer(device, {UNIT: model}, baudrate=9600)
    await server.start()
    # Needs pyserial (pymodbus[serial]): without it this raises, on purpose, rather than skipping.
    client = AsyncModbusSerialClient(gateway, baudrate=9600, timeout=1, retries=0)
    try:
        assert await client.connect()
        chunks: list[tuple[ModbusPoint, list[int]]] = []
        for block in plan_blocks(profile):
            reply = await client.read_holding_registers(block.address, count=block.count, device_id=UNIT)
            assert not reply.isError()
            chunks += [(p, reply.registers[p.address - block.address :][: p.words]) for p in block.points]
        decoded = decode_points(chunks, profile)
        assert {name: d.value for name, d in decoded.items()} == {
            "unit": "kPa",
            "decimals": 3,
            "pressure": -1.234,
        }
        model.values["decimals"] = 0
        model.values["pressure"] = -1234
        reply = await client.read_holding_registers(2, count=3, device_id=UNIT)
        assert reply.registers == [1, 0, (-1234) & 0xFFFF]
    finally:
        client.close()
        await server.stop()
