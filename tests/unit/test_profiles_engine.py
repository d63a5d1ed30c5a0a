"""The profile engine's mechanisms: decimals read from another point, bit fields, int16 sentinels,
derived `scale` and `below` points."""

from __future__ import annotations

import gc
from typing import cast

import pytest
from pydantic import ValidationError

from drivers.derived import DerivedValue, derive
from drivers.modbus_device import ModbusDeviceDriver
from drivers.poll_plan import _SHARED, PollPlan
from drivers.profiles import BitField, DerivedBelow, DerivedScale, ModbusPoint, ModbusProfile
from drivers.registers import decode_point, decode_points, encode_value
from drivers.stats import DeviceStats
from drivers.transports.modbus import ModbusEndpoint
from gateway.model import Quality, Reading, SystemClock

GST = {0: "normal", 1: "fire", 2: "fault", 3: "disabled"}


def _profile(*points: ModbusPoint, **kwargs: object) -> ModbusProfile:
    return ModbusProfile(name="t", family="septic_pressure", points=list(points), **kwargs)  # type: ignore[arg-type]


DECIMALS = ModbusPoint(name="decimals", address=3)
PRESSURE = ModbusPoint(name="pressure", address=4, type="int16", decimals_from="decimals", unit="kPa")


@pytest.mark.parametrize(
    ("decimals", "raw", "expected"),
    [(0, 1234, 1234.0), (1, 1234, 123.4), (2, -1234, -12.34), (3, -1234, -1.234), (3, 32767, 32.767)],
)
def test_decimals_from_divides_by_a_power_of_ten(decimals: int, raw: int, expected: float) -> None:
    profile = _profile(DECIMALS, PRESSURE)
    decoded = decode_points([(DECIMALS, [decimals]), (PRESSURE, [raw & 0xFFFF])], profile)
    assert decoded["pressure"].value == expected  # exact: divided, not multiplied by 0.001
    assert decoded["decimals"].value == decimals
    assert list(decoded) == ["decimals", "pressure"]  # the input order is kept


def test_decimals_are_looked_up_whatever_the_order_of_the_points() -> None:
    profile = _profile(PRESSURE, DECIMALS)
    decoded = decode_points([(PRESSURE, [250]), (DECIMALS, [1])], profile)
    assert decoded["pressure"].value == 25.0


@pytest.mark.parametrize("pressure_first", [False, True])
def test_a_poll_decodes_decimals_from_a_point_before_or_after(pressure_first: bool) -> None:
    """The driver's plan: a source read earlier is used in place; a later one (pressure at 3, its
    decimals at 4) defers the point to the end of the poll's readings."""
    pressure = PRESSURE.model_copy(update={"address": 3 if pressure_first else 4})
    decimals = DECIMALS.model_copy(update={"address": 4 if pressure_first else 3})
    profile = _profile(pressure, decimals)
    plan = PollPlan.of(profile)
    assert [block.count for block in plan.blocks] == [2]
    words = [(-1234) & 0xFFFF, 2] if pressure_first else [2, (-1234) & 0xFFFF]
    endpoint = cast(ModbusEndpoint, object())  # never used: no poll, the decode step alone
    driver = ModbusDeviceDriver("e1", "tank", profile, endpoint, 1, 1.0, 2, DeviceStats(), SystemClock())
    readings = driver._point_readings([(plan.slots[0], words)], 0)
    assert [(r.point, r.value, r.quality) for r in readings if isinstance(r, Reading)] == [
        ("decimals", 2, Quality.GOOD),
        ("pressure", -12.34, Quality.GOOD),
    ]


@pytest.mark.parametrize(
    ("decimals_words", "why"),
    [
        ([7], "out of range"),
        ([0xFFFF], "sentinel on the decimals point"),
        (None, "decimals point not read this poll"),
    ],
)
def test_value_is_bad_without_usable_decimals(decimals_words: list[int] | None, why: str) -> None:
    decimals = ModbusPoint(name="decimals", address=3, sentinels=[0xFFFF])
    profile = _profile(decimals, PRESSURE)
    chunks = [(PRESSURE, [1234])]
    if decimals_words is not None:
        chunks.insert(0, (decimals, decimals_words))
    result = decode_points(chunks, profile)["pressure"]
    assert result.value is None, why
    assert result.bad_reason is not None and "decimals" in result.bad_reason


def test_encode_with_decimals_is_the_inverse() -> None:
    assert encode_value(-12.34, PRESSURE, "ABCD", decimals=2) == [(-1234) & 0xFFFF]
    profile = _profile(DECIMALS, PRESSURE)
    assert decode_point([(-1234) & 0xFFFF], PRESSURE, profile, decimals=2).value == -12.34


def test_two_bit_fields_with_enum_gst_style() -> None:
    points = [
        ModbusPoint(name=f"d{slot}", address=0, bits=BitField(start=2 * slot, width=2), enum=GST)
        for slot in range(8)
    ]
    profile = _profile(*points)
    states = ["normal", "fire", "fault", "disabled", "disabled", "fault", "fire", "normal"]
    code = {label: c for c, label in GST.items()}
    word = sum(code[s] << (2 * slot) for slot, s in enumerate(states))
    assert [decode_point([word], p, profile).value for p in points] == states


def test_bit_field_without_enum_is_a_number_even_in_an_int16() -> None:
    field = ModbusPoint(name="f", address=0, type="int16", bits=BitField(start=12, width=4))
    low = ModbusPoint(name="low", address=0, type="int16", bits=BitField(start=0, width=3))
    profile = _profile(field, low)
    assert decode_point([0xB005], field, profile).value == 0xB  # top nibble of a negative int16
    assert decode_point([0xB005], low, profile).value == 5


def test_bit_field_must_fit_and_not_mix_with_bit() -> None:
    with pytest.raises(ValidationError, match=r"bits 15\.\.16 do not fit"):
        BitField(start=15, width=2)
    with pytest.raises(ValidationError, match="not both"):
        ModbusPoint(name="x", address=0, bit=1, bits=BitField(start=0, width=2))
    with pytest.raises(ValidationError, match="16-bit register type"):
        ModbusPoint(name="x", address=0, type="uint32", bits=BitField(start=0, width=2))


@pytest.mark.parametrize("written", [32768, -32768])
def test_int16_sentinel_0x8000_matches_whichever_way_it_is_written(written: int) -> None:
    point = ModbusPoint(name="coolant", address=0, type="int16", scale=0.1, sentinels=[written])
    profile = _profile(point)
    assert point.sentinels == [0x8000]
    bad = decode_point([0x8000], point, profile)
    assert bad.value is None and bad.bad_reason == "sentinel 0x8000"
    assert decode_point([0x8001], point, profile).value == pytest.approx(-3276.7)


def test_sentinel_that_cannot_be_in_the_register_is_refused() -> None:
    with pytest.raises(ValidationError, match="70000 does not fit a 16-bit register"):
        ModbusPoint(name="x", address=0, sentinels=[70000])
    with pytest.raises(ValidationError, match="float32 points take no sentinels"):
        ModbusPoint(name="x", address=0, type="float32", sentinels=[0])


def test_derived_scale_and_below() -> None:
    profile = _profile(
        ModbusPoint(name="pressure", address=0, type="float32", unit="kPa"),
        derived={
            "level_m": DerivedScale(source="pressure", multiply=0.101968, divide_by=1.02, unit="m"),
            "pressure_pa": DerivedScale(source="pressure", multiply=1000),
            "offset": DerivedScale(source="pressure", add=-1.5),
            "low": DerivedBelow(source="pressure", below=2.0),
        },
    )
    out = {d.name: d for d in derive(profile, {"pressure": 15.0})}
    assert out["level_m"].value == pytest.approx(15.0 / (9.807 * 1.02), rel=1e-5)
    assert out["level_m"].unit == "m"
    assert out["pressure_pa"].value == 15000.0
    assert out["offset"].value == 13.5
    assert out["low"] == DerivedValue("low", False)


def test_derived_follows_the_source_quality() -> None:
    profile = _profile(
        ModbusPoint(name="pressure", address=0, type="float32"),
        derived={"level_m": DerivedScale(source="pressure", multiply=0.1, unit="m")},
    )
    assert derive(profile, {"pressure": None}) == [DerivedValue("level_m", None, "m")]
    assert derive(profile, {}) == []  # not read this poll: nothing, like the point itself


@pytest.mark.parametrize(
    ("derived", "message"),
    [
        ({"level": {"source": "p"}}, "either 'below'"),
        ({"level": {"source": "p", "below": 1, "multiply": 2}}, "not both"),
        ({"level": {"source": "p", "divide_by": 0}}, "greater than 0"),
        ({"level": {"source": "nope", "multiply": 2}}, "no point named 'nope'"),
        ({"level": {"source": "mode", "multiply": 2}}, "'mode' is not a number"),
        ({"p": {"source": "p", "multiply": 2}}, "already a point"),
    ],
)
def test_derived_forms_are_validated(derived: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ModbusProfile.model_validate(
            {
                "name": "t",
                "family": "septic_pressure",
                "points": [
                    {"name": "p", "address": 0, "type": "float32"},
                    {"name": "mode", "address": 9, "enum": {0: "off"}},
                ],
                "derived": derived,
            }
        )


@pytest.mark.parametrize(
    ("decimals_point", "message"),
    [
        ({"name": "decimals", "address": 3, "enum": {0: "x"}}, "plain integer register"),
        ({"name": "decimals", "address": 3, "type": "float32"}, "plain integer register"),
        ({"name": "decimals", "address": 3, "scale": 0.1}, "unscaled"),
        ({"name": "other", "address": 3}, "no point named 'decimals'"),
    ],
)
def test_decimals_source_must_be_a_plain_count(decimals_point: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ModbusProfile.model_validate(
            {
                "name": "t",
                "family": "septic_pressure",
                "points": [
                    decimals_point,
                    {"name": "p", "address": 4, "type": "int16", "decimals_from": "decimals"},
                ],
            }
        )


def test_decimals_from_needs_an_integer_register() -> None:
    with pytest.raises(ValidationError, match="needs an integer register type"):
        ModbusPoint(name="p", address=0, type="float32", decimals_from="d")
    with pytest.raises(ValidationError, match="its own decimals"):
        ModbusPoint(name="p", address=0, decimals_from="p")


def test_devices_of_one_profile_share_its_poll_plan_and_it_goes_with_the_profile() -> None:
    profile = _profile(DECIMALS, PRESSURE)
    plan = PollPlan.of(profile)
    assert PollPlan.of(profile) is plan and id(profile) in _SHARED
    key = id(profile)
    del profile, plan
    gc.collect()
    assert key not in _SHARED  # a profile replaced at a config reload does not stay alive through it
