"""Each new profile against a simulated device over real Modbus TCP on 127.0.0.1: what the driver
decodes equals what the simulator was told the device measures."""

from __future__ import annotations

import random
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from drivers.modbus_device import ModbusDeviceDriver
from drivers.profiles import ModbusPoint, ModbusProfile, ProfileLibrary
from drivers.sim import ModbusSimServer, PointsModel
from drivers.sim.points import SimValue
from drivers.stats import DeviceStats
from drivers.transports.modbus import ModbusEndpoint
from gateway.model import Envelope, Quality, Reading, Source, SystemClock
from gateway.runtime.broker import free_port

pytestmark = pytest.mark.integration
UNIT = 7
SG_LEVEL = 9.807 * 1.02  # kPa per metre of sewage at the shipped specific gravity


def _profile(name: str) -> ModbusProfile:
    profile = ProfileLibrary().get(name)
    assert isinstance(profile, ModbusProfile)
    return profile


class Rig:
    """One simulated unit behind a real pymodbus server, and the gateway's driver polling it."""

    def __init__(self, profile: ModbusProfile, values: dict[str, SimValue]) -> None:
        port = free_port()
        self.model = PointsModel(profile, values)
        self.server = ModbusSimServer("127.0.0.1", port, {UNIT: self.model})
        self.endpoint = ModbusEndpoint("127.0.0.1", port, timeout=0.5)
        self.driver = ModbusDeviceDriver(
            "e1", "dev", profile, self.endpoint, UNIT, 1.0, 2, DeviceStats(), SystemClock()
        )
        self.got: dict[str, Reading] = {}

    async def _emit(self, envelope: Envelope) -> None:
        self.got.update({i.point: i for i in envelope.items if isinstance(i, Reading)})

    async def poll(self) -> dict[str, Reading]:
        self.got = {}
        await self.driver.poll_once(self._emit)
        return self.got


@asynccontextmanager
async def rig_for(profile: ModbusProfile, values: dict[str, SimValue] | None = None) -> AsyncIterator[Rig]:
    rig = Rig(profile, values or {})
    await rig.server.start()
    try:
        yield rig
    finally:
        rig.endpoint.close()
        await rig.server.stop()


async def test_s16_transmitter_every_decimals_setting_and_sign() -> None:
    async with rig_for(_profile("pressure_transmitter_s16"), {"unit": "kPa"}) as rig:
        for decimals in range(4):
            for raw in (0, 1, -1, 1234, -1234, 32767, -32768):
                truth = raw / 10**decimals
                rig.model.values.update(decimals=decimals, pressure=truth)
                got = await rig.poll()
                assert got["pressure"].quality is Quality.GOOD
                assert got["pressure"].value == truth, (decimals, raw)
                assert got["pressure"].unit == "kPa"
                assert got["decimals"].value == decimals
                assert got["unit"].value == "kPa"
                level = got["level_m"]
                assert level.source is Source.DERIVED and level.unit == "m"
                assert level.value == pytest.approx(truth / SG_LEVEL, rel=1e-5, abs=1e-6)
        assert rig.driver.stats.errors == {}


async def test_s16_transmitter_with_garbage_decimals_is_bad_not_a_number() -> None:
    values: dict[str, SimValue] = {"unit": "bar", "decimals": 2, "pressure": 1.5}
    async with rig_for(_profile("pressure_transmitter_s16"), values) as rig:
        rig.model.raw[3] = 9  # decimals register outside 0..6: a corrupted or misread map
        got = await rig.poll()
        assert got["pressure"].quality is Quality.BAD
        assert got["level_m"].quality is Quality.BAD  # no stale level for the rules to act on
        assert got["unit"].value == "bar"
        assert rig.driver.stats.errors["bad_value"] == 1
        del rig.model.raw[3]
        got = await rig.poll()
        assert got["pressure"].value == 1.5 and got["level_m"].quality is Quality.GOOD


async def test_gst_site_table_decodes_every_device_state() -> None:
    profile = _profile("gst_modbus_site_example")
    names = [p.name for p in profile.points]
    labels = ["normal", "fire", "fault", "disabled"]
    rng = random.Random(20240611)
    async with rig_for(profile) as rig:
        scenes = [dict.fromkeys(names, label) for label in labels]
        scenes += [{name: rng.choice(labels) for name in names} for _ in range(6)]
        for scene in scenes:
            rig.model.values = dict(scene)
            got = await rig.poll()
            assert {name: got[name].value for name in names} == scene
        assert rig.driver.stats.errors == {}
        assert len(rig.driver.blocks) == 1


COMAP_TRUTH: dict[str, SimValue] = {
    "engine_speed": 1500,
    "coolant_temperature": -12.5,  # a cold start in the north: the int16 sign must survive
    "oil_pressure": 420,
    "battery_voltage": 27.4,
    "fuel_level": 63,
    "engine_state": "running",
    "control_mode": "auto",
}


async def test_comap_values_equal_the_simulator() -> None:
    profile = _profile("comap_intelilite4")
    async with rig_for(profile, COMAP_TRUTH) as rig:
        got = await rig.poll()
        for point in profile.points:
            truth = COMAP_TRUTH[point.name]
            assert got[point.name].quality is Quality.GOOD, point.name
            if isinstance(truth, str):
                assert got[point.name].value == truth
            else:
                assert got[point.name].value == pytest.approx(truth, abs=point.scale / 2), point.name
        rig.model.values.update(coolant_temperature=85.3, engine_state="stopped", control_mode="manual")
        got = await rig.poll()
        assert got["coolant_temperature"].value == pytest.approx(85.3)
        assert (got["engine_state"].value, got["control_mode"].value) == ("stopped", "manual")
        assert len(rig.driver.blocks) == 4


async def test_comap_invalid_0x8000_is_quality_bad_for_int16_and_uint16() -> None:
    async with rig_for(_profile("comap_intelilite4"), COMAP_TRUTH) as rig:
        rig.model.raw.update({1006: 0x8000, 1004: 0x8000, 1298: 0x8000})  # coolant s16, rpm u16, state
        got = await rig.poll()
        for name in ("coolant_temperature", "engine_speed", "engine_state"):
            assert got[name].quality is Quality.BAD, name
        assert got["oil_pressure"].value == 420 and got["oil_pressure"].quality is Quality.GOOD
        assert rig.driver.stats.errors["bad_value"] == 3
        rig.model.raw.clear()
        got = await rig.poll()
        assert got["coolant_temperature"].value == pytest.approx(-12.5)


def _wire_words(abcd: bytes, order: str) -> list[int]:
    """The registers a device sends for big-endian bytes `abcd`, spelled out from the order's name
    (independent of drivers.registers, which is what is under test)."""
    data = bytes(abcd["ABCD".index(letter)] for letter in order)
    return [int.from_bytes(data[i : i + 2], "big") for i in (0, 2)]


@pytest.mark.parametrize("order", ["ABCD", "CDAB", "BADC", "DCBA"])
async def test_every_word_order_over_the_wire(order: str) -> None:
    profile = ModbusProfile(
        name=f"order_{order}",
        family="septic_pressure",
        word_order=order,  # type: ignore[arg-type]
        points=[
            ModbusPoint(name="level", address=10, type="float32", unit="kPa"),
            ModbusPoint(name="count", address=20, type="int32"),
            ModbusPoint(name="total", address=30, type="uint32"),
        ],
    )
    truth = {"level": -1234.5, "count": -19088744, "total": 0x89ABCDEF}  # four distinct bytes each
    async with rig_for(profile) as rig:
        for address, fmt, name in ((10, ">f", "level"), (20, ">i", "count"), (30, ">I", "total")):
            for i, word in enumerate(_wire_words(struct.pack(fmt, truth[name]), order)):
                rig.model.raw[address + i] = word
        got = await rig.poll()
    assert {name: got[name].value for name in truth} == truth
