"""Turn Modbus register words into values: types, word/byte orders, scale, enums, bits and bit
fields, sentinels, decimal places read from another register.

pymodbus swaps words only; BADC and DCBA need each register's bytes swapped first, so we do the whole
conversion here from raw 16-bit words with struct.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Iterable
from typing import NamedTuple

from drivers.profiles.schema import ModbusPoint, ModbusProfile
from gateway.model import Value

_MAX = {"int16": 0x7FFF, "uint16": 0xFFFF, "int32": 0x7FFFFFFF, "uint32": 0xFFFFFFFF}
_ONE_WORD = frozenset({"int16", "uint16", "bool"})
_MASK = {"int16": 0xFFFF, "uint16": 0xFFFF, "int32": 0xFFFFFFFF, "uint32": 0xFFFFFFFF, "bool": 0xFFFF}
# A decimals register beyond this is garbage: an int32 carries at most 10 digits, and no transmitter
# reports micro-units of its range (the RS-485 pressure transmitters use 0..3).
MAX_DECIMALS = 6
_POWERS_OF_TEN: tuple[int, ...] = tuple(10**places for places in range(MAX_DECIMALS + 1))


class Decoded(NamedTuple):
    """A decoded point: value, or None with a reason when the raw value is a sentinel.

    A NamedTuple, not a frozen dataclass: one is made per point per poll, and a frozen dataclass's
    __init__ (object.__setattr__ per field) cost 3× as much (bench/modbus_poll.py)."""

    value: Value | None
    raw: int | float | bool
    bad_reason: str | None = None


def _swap_bytes(word: int) -> int:
    return ((word & 0xFF) << 8) | (word >> 8)


def words_to_bytes(words: list[int], word_order: str) -> bytes:
    """Big-endian bytes of one value, in ABCD order, whatever order the device sent."""
    if word_order in ("BADC", "DCBA"):
        words = [_swap_bytes(w) for w in words]
    if word_order in ("CDAB", "DCBA"):
        words = list(reversed(words))
    return b"".join(w.to_bytes(2, "big") for w in words)


def decode_raw(words: list[int], point: ModbusPoint, word_order: str) -> int | float:
    kind = point.type
    if kind in _ONE_WORD and len(words) == 1:  # most points: integer arithmetic, no bytes round trip
        word = words[0]
        if (point.word_order or word_order) in ("BADC", "DCBA"):
            word = _swap_bytes(word)
        return word - 0x10000 if kind == "int16" and word & 0x8000 else word
    data = words_to_bytes(words, point.word_order or word_order)
    if kind in ("uint16", "bool"):
        return struct.unpack(">H", data)[0]  # type: ignore[no-any-return]
    if kind == "int16":
        return struct.unpack(">h", data)[0]  # type: ignore[no-any-return]
    if kind == "uint32":
        return struct.unpack(">I", data)[0]  # type: ignore[no-any-return]
    if kind == "int32":
        return struct.unpack(">i", data)[0]  # type: ignore[no-any-return]
    return struct.unpack(">f", data)[0]  # type: ignore[no-any-return]


def _is_sentinel(raw: int | float, point: ModbusPoint, profile: ModbusProfile) -> bool:
    if isinstance(raw, float):
        return not math.isfinite(raw)  # NaN / Inf from a float32
    # The schema stores sentinels as unsigned bit patterns: compare the register's pattern, so an
    # int16 sentinel written 0x8000 (32768) matches the decoded -32768.
    if (raw & _MASK[point.type]) in point.sentinels:
        return True
    top = profile.sentinel_top if point.sentinel_top is None else point.sentinel_top
    if top and point.type in _MAX and point.bit is None and point.enum is None:
        return raw > _MAX[point.type] - top
    return False


def _decimal_places(decimals: Value | None) -> int | None:
    if isinstance(decimals, bool) or not isinstance(decimals, int | float) or not math.isfinite(decimals):
        return None
    if decimals != int(decimals) or not 0 <= decimals <= MAX_DECIMALS:
        return None
    return int(decimals)


def decode_point(
    words: list[int], point: ModbusPoint, profile: ModbusProfile, decimals: Value | None = None
) -> Decoded:
    """Decode one point from its register words (1 or 2).

    `decimals` is this poll's value of the point named by `decimals_from` (None when it was not read
    or is bad): without a usable count of decimal places the value is unknown, so it is bad.
    """
    raw = decode_raw(words, point, profile.word_order)
    if point.bit is not None:
        return Decoded(bool((int(raw) >> point.bit) & 1), raw)
    if point.type == "bool":
        return Decoded(bool(raw), raw)
    if point.bits is not None:  # the field, unsigned, whatever the register's type
        raw = ((int(raw) & 0xFFFF) >> point.bits.start) & ((1 << point.bits.width) - 1)
    elif _is_sentinel(raw, point, profile):
        reason = f"sentinel 0x{raw & _MASK[point.type]:X}" if isinstance(raw, int) else "nan"
        return Decoded(None, raw, reason)
    if point.enum is not None:
        label = point.enum.get(int(raw))
        if label is None:
            return Decoded(None, raw, f"unknown code {raw}")
        return Decoded(label, raw)
    if point.decimals_from is not None:
        places = _decimal_places(decimals)
        if places is None:
            return Decoded(None, raw, f"no usable decimals from {point.decimals_from!r}: {decimals!r}")
        # Divide by the power of ten (not multiply by 0.001): -1234 / 1000 is exactly -1.234.
        return Decoded(round(raw * point.scale / 10**places + point.offset, 6), raw)
    if isinstance(raw, float):  # float32 carries ~7 significant digits: do not show 19.200001
        raw = float(f"{raw:.7g}")
    value = raw * point.scale + point.offset
    if point.scale == 1.0 and point.offset == 0.0 and isinstance(raw, int):
        return Decoded(raw, raw)
    return Decoded(round(value, 6), raw)


ValueDecoder = Callable[[list[int], int, "Value | None"], "Value | None"]
_STRUCT = {"uint16": ">H", "bool": ">H", "int16": ">h", "uint32": ">I", "int32": ">i", "float32": ">f"}


def point_decoder(point: ModbusPoint, profile: ModbusProfile) -> ValueDecoder:
    """`decode_point(...).value` for one point, with all that does not depend on the words worked out
    once. Called as `decode(words, first, decimals)`: `words` is the whole block's, the point's start at
    `first` (no slice per point); None means bad.

    A driver decodes every point of every poll (3,880 per round of bench/modbus_poll.py's 500 devices);
    the generic function spent most of its time re-reading the point's settings and the profile's, and
    making a `Decoded` the driver only takes the value of. Same values for any words:
    tests/unit/test_property_decoders.py holds every library point and generated ones to `decode_point`,
    which stays the reference (and the one that says why a value is bad)."""
    kind, bit, bits, enum = point.type, point.bit, point.bits, point.enum
    order = point.word_order or profile.word_order
    swap, reverse = order in ("BADC", "DCBA"), order in ("CDAB", "DCBA")
    one_word, signed16 = point.words == 1, kind == "int16"
    unpack = struct.Struct(_STRUCT[kind]).unpack
    mask = _MASK.get(kind, 0)
    sentinels = frozenset(point.sentinels)
    top = profile.sentinel_top if point.sentinel_top is None else point.sentinel_top
    above = _MAX[kind] - top if top and kind in _MAX and bit is None and enum is None else None
    start, width = (bits.start, (1 << bits.width) - 1) if bits is not None else (0, 0)
    decimals_from, scale, offset = point.decimals_from, point.scale, point.offset
    plain = scale == 1.0 and offset == 0.0

    def raw_at(words: list[int], first: int) -> int | float:
        if one_word:
            word = words[first]
            if swap:
                word = ((word & 0xFF) << 8) | (word >> 8)
            return word - 0x10000 if signed16 and word & 0x8000 else word
        pair = words[first : first + 2]
        if swap:
            pair = [((w & 0xFF) << 8) | (w >> 8) for w in pair]
        if reverse:
            pair.reverse()
        return unpack(b"".join(w.to_bytes(2, "big") for w in pair))[0]  # type: ignore[no-any-return]

    if one_word and not swap and bit is None and bits is None and enum is None and decimals_from is None:
        if kind == "bool":

            def flag(words: list[int], first: int, decimals: Value | None = None) -> Value | None:
                return bool(words[first])

            return flag

        def number(words: list[int], first: int, decimals: Value | None = None) -> Value | None:
            """The common point, a plain 16-bit number: inlined, no branch it does not need."""
            raw = words[first]
            if signed16 and raw & 0x8000:
                raw -= 0x10000
            if (raw & mask) in sentinels or (above is not None and raw > above):
                return None
            return raw if plain else round(raw * scale + offset, 6)

        return number

    def decode(words: list[int], first: int, decimals: Value | None = None) -> Value | None:
        raw = raw_at(words, first)
        if bit is not None:
            return bool((int(raw) >> bit) & 1)
        if kind == "bool":
            return bool(raw)
        if bits is not None:
            raw = ((int(raw) & 0xFFFF) >> start) & width
        elif isinstance(raw, float):
            if not math.isfinite(raw):
                return None
        elif (raw & mask) in sentinels or (above is not None and raw > above):
            return None
        if enum is not None:
            return enum.get(int(raw))
        if decimals_from is not None:
            places = _decimal_places(decimals)
            if places is None:
                return None
            return round(raw * scale / _POWERS_OF_TEN[places] + offset, 6)
        if isinstance(raw, float):
            raw = float(f"{raw:.7g}")
        elif plain:
            return raw
        return round(raw * scale + offset, 6)

    return decode


def decode_points(
    chunks: Iterable[tuple[ModbusPoint, list[int]]], profile: ModbusProfile
) -> dict[str, Decoded]:
    """Decode one poll's points (point, its words) with `decode_point`. A point with `decimals_from` is
    decoded after the point it names, with that point's value from the same poll; the result keeps the
    input order."""
    chunks = list(chunks)
    out: dict[str, Decoded] = {}
    for point, words in chunks:
        if point.decimals_from is None:
            out[point.name] = decode_point(words, point, profile)
    for point, words in chunks:
        if point.decimals_from is not None:
            source = out.get(point.decimals_from)
            out[point.name] = decode_point(words, point, profile, source.value if source else None)
    return {point.name: out[point.name] for point, _ in chunks}


def decode_nibbles(words: list[int], count: int) -> list[int]:
    """DSE alarm codes: four 4-bit codes per register, first alarm in the top nibble."""
    codes: list[int] = []
    for word in words:
        for shift in (12, 8, 4, 0):
            codes.append((word >> shift) & 0xF)
    return codes[:count]


def encode_value(value: float, point: ModbusPoint, word_order: str, decimals: int = 0) -> list[int]:
    """The inverse of decode_point for numbers (used by simulators and tests): engineering value →
    register words; `decimals` is the decimal places a `decimals_from` point is encoded with."""
    raw_f = (value - point.offset) / point.scale * 10**decimals
    if point.type == "float32":
        data = struct.pack(">f", raw_f)
    else:
        raw = round(raw_f)
        fmt = {"uint16": ">H", "bool": ">H", "int16": ">h", "uint32": ">I", "int32": ">i"}[point.type]
        data = struct.pack(fmt, raw)
    words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    order = point.word_order or word_order
    if order in ("CDAB", "DCBA"):
        words = list(reversed(words))
    if order in ("BADC", "DCBA"):
        words = [_swap_bytes(w) for w in words]
    return words
