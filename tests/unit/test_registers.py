"""Register decoding: every type and word order, sentinels, enums, bits, nibbles, block planning."""

from __future__ import annotations

import pytest

from drivers.blocks import plan_blocks
from drivers.profiles import ModbusPoint, ModbusProfile, ProfileLibrary
from drivers.registers import decode_nibbles, decode_point, encode_value

ORDERS = ["ABCD", "CDAB", "BADC", "DCBA"]


def _profile(*points: ModbusPoint, **kwargs: object) -> ModbusProfile:
    return ModbusProfile(name="t", family="generator", points=list(points), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(
    ("kind", "value"),
    [("int16", -1234), ("uint16", 65000), ("int32", -123456789), ("uint32", 4000000000), ("float32", 12.5)],
)
def test_round_trip_every_type_and_order(kind: str, value: float, order: str) -> None:
    point = ModbusPoint(name="p", address=0, type=kind)  # type: ignore[arg-type]
    profile = _profile(point, word_order=order)
    words = encode_value(value, point, order)
    assert decode_point(words, point, profile).value == value


def test_word_orders_are_what_the_device_sends() -> None:
    point = ModbusPoint(name="p", address=0, type="uint32")
    raw = 0x11223344
    expected = {
        "ABCD": [0x1122, 0x3344],
        "CDAB": [0x3344, 0x1122],
        "BADC": [0x2211, 0x4433],
        "DCBA": [0x4433, 0x2211],
    }
    for order, words in expected.items():
        assert decode_point(words, point, _profile(point, word_order=order)).value == raw


def test_scale_offset_and_unit() -> None:
    point = ModbusPoint(name="v", address=0, type="uint16", scale=0.1, offset=-40)
    assert decode_point([652], point, _profile(point)).value == pytest.approx(25.2)


@pytest.mark.parametrize(
    ("kind", "words"),
    [("uint16", [0xFFFC]), ("int16", [0x7FFF]), ("uint32", [0xFFFF, 0xFFFB]), ("int32", [0x7FFF, 0xFFFF])],
)
def test_dse_sentinels_are_bad_not_numbers(kind: str, words: list[int]) -> None:
    point = ModbusPoint(name="p", address=0, type=kind)  # type: ignore[arg-type]
    decoded = decode_point(words, point, _profile(point, sentinel_top=7))
    assert decoded.value is None
    assert decoded.bad_reason is not None and decoded.bad_reason.startswith("sentinel")


def test_value_just_below_sentinels_is_good() -> None:
    point = ModbusPoint(name="p", address=0, type="uint16")
    assert decode_point([0xFFF8], point, _profile(point, sentinel_top=7)).value == 0xFFF8


def test_float_nan_is_bad() -> None:
    point = ModbusPoint(name="p", address=0, type="float32")
    assert decode_point([0x7FC0, 0x0000], point, _profile(point)).value is None


def test_enum_and_unknown_code() -> None:
    point = ModbusPoint(name="mode", address=0, type="uint16", enum={0: "stop", 1: "auto"})
    profile = _profile(point)
    assert decode_point([1], point, profile).value == "auto"
    unknown = decode_point([9], point, profile)
    assert unknown.value is None and unknown.bad_reason == "unknown code 9"


def test_bits_of_a_status_word() -> None:
    fire = ModbusPoint(name="fire", address=0, type="uint16", bit=11)
    fault = ModbusPoint(name="fault", address=0, type="uint16", bit=13)
    profile = _profile(fire, fault)
    word = (1 << 11) | 0x10  # active, event type 0x10 (fire)
    assert decode_point([word], fire, profile).value is True
    assert decode_point([word], fault, profile).value is False


def test_dse_alarm_nibbles_top_nibble_first() -> None:
    assert decode_nibbles([0x1321, 0x4F00], 6) == [1, 3, 2, 1, 4, 15]


def test_dse_profile_reads_in_few_blocks() -> None:
    profile = ProfileLibrary().get("dse_gencomm")
    assert isinstance(profile, ModbusProfile)
    blocks = plan_blocks(profile)
    covered = {p.name for b in blocks for p in b.points}
    assert covered == {p.name for p in profile.points}
    assert len(blocks) == 7
    assert all(b.count <= 125 for b in blocks)


def test_blocks_join_across_small_gaps_only() -> None:
    a, b, c = (ModbusPoint(name=n, address=x, type="uint16") for n, x in (("a", 0), ("b", 5), ("c", 40)))
    blocks = plan_blocks(_profile(a, b, c, max_gap=8))
    assert [(blk.address, blk.count) for blk in blocks] == [(0, 6), (40, 1)]
