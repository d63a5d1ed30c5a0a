"""Property tests: hostile payloads into every decoder (MQTT profiles, ANPR push, Modbus registers).

The contract, for any input: a decoder returns canonical items for its own device (finite numbers,
a quality, plain-scalar attributes) or raises DecodeError with one of its documented reasons; never
another exception, never a NaN or an infinity in a good reading. Bounded and derandomized: the same
examples on every run, the whole module in a few seconds.
"""

from __future__ import annotations

import copy
import json
import math
import random
import re
from pathlib import Path
from typing import Any, cast

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bench.fuzz_corpus import MQTT_PROFILES, junk, mutate, seeds
from drivers.anpr.classifier import PlateClassifier
from drivers.anpr.mqtt import PlateDecoder
from drivers.anpr.push import PushDecoder
from drivers.anpr.receiver import PushCamera, PushReceiver
from drivers.anpr.registry import Category, Vehicle, VehicleRegistry
from drivers.derived import derive
from drivers.errors import DecodeError
from drivers.modbus_device import ModbusDeviceDriver
from drivers.mqtt_device import MqttJsonDecoder
from drivers.poll_plan import PollPlan
from drivers.profiles import HttpPushProfile, ModbusProfile, MqttProfile, ProfileLibrary
from drivers.profiles.schema import ModbusPoint
from drivers.registers import Decoded, decode_point, decode_points, point_decoder
from drivers.sim.anpr_camera import PushCameraSimulator
from drivers.stats import DeviceStats
from drivers.transports.modbus import ModbusEndpoint
from gateway.model import DeviceEvent, Envelope, Family, Item, Quality, Reading, SystemClock

BOUNDED = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
NOW_NS = 1_732_400_000 * 10**9
MQTT_REASONS = {"too_large", "bad_json", "not_object", "unknown_channel", "missing_field", "unknown_kind",
                "bad_type"}  # fmt: skip
PUSH_REASONS = {"too_large", "bad_json", "not_object", "missing_field", "bad_type"}
PROFILE_DIR = Path(__file__).parents[2] / "drivers" / "profiles"
LIBRARY = ProfileLibrary()

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.sampled_from(
        [
            "x" * 5000,
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:59:59-14:00",
            "1",
            "5/75",
            "0001-01-01 00:00:00",
            "9999-12-31 23:59:59",
            "2026-02-30 10:00:00",
            "-0.0",
        ]
    )
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, value in children:
        out.extend(_paths(value, (*prefix, key)))
    return out


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        doc = doc[part]
    return doc


@st.composite
def mutated_docs(draw: st.DrawFn, documents: list[dict[str, Any]]) -> Any:
    """A real document with up to four changes: a value replaced by any JSON, a key dropped or added,
    a nest ~1000 levels deep, or the whole document replaced."""
    doc: Any = copy.deepcopy(draw(st.sampled_from(documents)))
    for _ in range(draw(st.integers(0, 4))):
        paths = _paths(doc)
        op = draw(st.sampled_from(["set", "set", "delete", "add", "deep", "wrap"]))
        if op in ("set", "delete", "deep") and paths:
            path = draw(st.sampled_from(paths))
            parent = _parent(doc, path)
            if op == "delete":
                del parent[path[-1]]
            elif op == "deep":  # spliced in as text by _encode: json.dumps itself refuses such depth
                parent[path[-1]] = f"@@DEEP{draw(st.sampled_from([2, 900, 1000, 1020, 1100]))}@@"
            else:
                parent[path[-1]] = draw(json_values)
        elif op == "add" and isinstance(doc, dict):
            doc[draw(st.text(max_size=8))] = draw(json_values)
        elif op == "wrap":
            doc = draw(st.sampled_from([[doc], draw(json_values)]))
    return doc


def _encode(doc: Any) -> bytes:
    text = json.dumps(doc, ensure_ascii=False, allow_nan=True)
    text = re.sub(r'"@@DEEP(\d+)@@"', lambda m: "[" * int(m.group(1)) + "]" * int(m.group(1)), text)
    return text.encode("utf-8", "surrogatepass")


def _check_items(items: list[Item], estate: str, device: str) -> None:
    for item in items:
        assert (item.estate, item.device) == (estate, device)
        assert isinstance(item.ts_ns, int) and 0 < item.ts_ns < 10**20
        if isinstance(item, Reading):
            assert isinstance(item.quality, Quality)
            assert isinstance(item.value, bool | int | float | str)
            if isinstance(item.value, float):
                assert math.isfinite(item.value) or item.quality is not Quality.GOOD
        else:
            assert isinstance(item, DeviceEvent) and item.kind
            for key, value in item.attributes.items():
                assert isinstance(key, str)
                assert value is None or isinstance(value, bool | int | float | str), (key, value)
                assert not isinstance(value, float) or math.isfinite(value), (key, value)
            orjson.dumps(item.attributes)  # the store writes them as JSON


def _registry() -> VehicleRegistry:
    return VehicleRegistry([Vehicle("粤B12345", Category.RESIDENT, "3-1502"), Vehicle("京A00001",
                            Category.BLACKLISTED, "stolen")])  # fmt: skip


def _mqtt_decoder(name: str) -> MqttJsonDecoder:
    profile = LIBRARY.get(name)
    assert isinstance(profile, MqttProfile)
    if profile.family is Family.PLATE_BARRIER:
        opened: list[object] = []
        return PlateDecoder("e1", "dev", profile, MqttJsonDecoder("e1", "dev", profile).stats,
                            PlateClassifier(_registry()), opened.append)  # fmt: skip
    return MqttJsonDecoder("e1", "dev", profile)


def _decode_mqtt(decoder: MqttJsonDecoder, channel: str, payload: bytes) -> None:
    try:
        items = decoder.decode(f"site/dev/{channel}", payload, NOW_NS)
    except DecodeError as exc:
        assert exc.reason in MQTT_REASONS, exc
        return
    _check_items(items, "e1", "dev")


def test_every_mqtt_seed_decodes_to_items() -> None:
    """The corpus is real: each profile's seeds decode (the properties below mutate from here)."""
    for name in MQTT_PROFILES:
        decoder = _mqtt_decoder(name)
        for seed in seeds(name):
            items = decoder.decode(f"site/dev/{seed.channel}", orjson.dumps(seed.payload), NOW_NS)
            assert items, (name, seed)
            _check_items(items, "e1", "dev")


@pytest.mark.parametrize("name", MQTT_PROFILES)
@BOUNDED
@given(data=st.data())
def test_mqtt_decoder_takes_mutated_documents(name: str, data: st.DataObject) -> None:
    documents = [s.payload for s in seeds(name)]
    channels = sorted({s.channel for s in seeds(name)} | {"state", "command", "x"})
    doc = data.draw(mutated_docs(documents))
    channel = data.draw(st.sampled_from(channels))
    decoder = _mqtt_decoder(name)
    _decode_mqtt(decoder, channel, _encode(doc))
    # the shared-topic path: the ingress parsed it already
    if isinstance(doc, dict):
        try:
            items = decoder.decode_object(f"site/dev/{channel}", doc, 100, NOW_NS)
        except DecodeError as exc:
            assert exc.reason in MQTT_REASONS, exc
        else:
            _check_items(items, "e1", "dev")


@pytest.mark.parametrize("name", MQTT_PROFILES)
@BOUNDED
@given(payload=st.binary(max_size=300) | st.builds(junk, st.randoms(use_true_random=False)),
       seed=st.integers(0, 2**32))  # fmt: skip
def test_mqtt_decoder_takes_any_bytes(name: str, payload: bytes, seed: int) -> None:
    decoder = _mqtt_decoder(name)
    for s in seeds(name):
        _decode_mqtt(decoder, s.channel, payload)
    rng = random.Random(seed)
    s = rng.choice(seeds(name))
    _decode_mqtt(decoder, s.channel, mutate(rng, s.payload))


def test_mqtt_decoder_refuses_a_thousand_levels_and_huge_payloads() -> None:
    for name in MQTT_PROFILES:
        decoder = _mqtt_decoder(name)
        channel = seeds(name)[0].channel
        for payload in (b"[" * 1000 + b"]" * 1000, b'{"a":' * 1000 + b"1" + b"}" * 1000,
                        b'{"x":"' + b"y" * 5_000_000 + b'"}'):  # fmt: skip
            _decode_mqtt(decoder, channel, payload)


# -- ANPR HTTP push ----------------------------------------------------------------------------------
PUSH_PROFILES = ("alphadigi_http", "dahua_itc_http")


def _push_documents(style: str) -> list[dict[str, Any]]:
    camera = PushCameraSimulator("http://x", "/p", "t", style)  # type: ignore[arg-type]
    return [
        camera.payload("粤B12345", at=1_732_400_000.5, record=7, direction="in"),
        camera.payload("京A00001", at=1_732_400_100.0, color="yellow", offline=True, block_listed=True),
    ]


def _push_decoder(name: str) -> PushDecoder:
    profile = LIBRARY.get(name)
    assert isinstance(profile, HttpPushProfile)
    return PushDecoder("e1", "cam", profile, "Asia/Shanghai")


@pytest.mark.parametrize(("name", "style"), [("alphadigi_http", "alphadigi"), ("dahua_itc_http", "dahua")])
@BOUNDED
@given(data=st.data())
def test_push_decoder_takes_mutated_documents(name: str, style: str, data: st.DataObject) -> None:
    decoder = _push_decoder(name)
    doc = data.draw(mutated_docs(_push_documents(style)))
    for body in (_encode(doc), data.draw(st.binary(max_size=200))):
        try:
            read = decoder.decode(body, NOW_NS)
        except DecodeError as exc:
            assert exc.reason in PUSH_REASONS, exc
            continue
        assert read.event.kind == "plate_read" and isinstance(read.record, str)
        assert isinstance(read.event.attributes["plate"], str)
        _check_items([read.event], "e1", "cam")
        verdict = PlateClassifier(_registry()).classify(read.event)
        _check_items([verdict.event], "e1", "cam")


# -- Modbus registers ----------------------------------------------------------------------------------
def _modbus_profiles() -> list[str]:
    names = []
    for path in sorted(PROFILE_DIR.glob("*.yaml")):
        if isinstance(LIBRARY.get(path.stem), ModbusProfile):
            names.append(path.stem)
    return names


FAULT_WORDS = [0x0000, 0x0001, 0x7FFF, 0x8000, 0x8001, 0xFFFE, 0xFFFF, 0x7FC0, 0x7F80, 0xFF80]
words_st = st.sampled_from(FAULT_WORDS) | st.integers(0, 0xFFFF)


@pytest.mark.parametrize("name", _modbus_profiles())
@BOUNDED
@given(data=st.data())
def test_modbus_registers_decode_to_finite_or_bad(name: str, data: st.DataObject) -> None:
    """Random register words (sensor-fault codes among them) through the driver's own decode path:
    every value is a finite number, a flag or a label with quality good, or quality bad; a declared
    sentinel is never a good value; and every value is the reference `decode_points`' (with the
    derived points of `derive` over those)."""
    profile = LIBRARY.get(name)
    assert isinstance(profile, ModbusProfile)
    plan = PollPlan.of(profile)
    blocks, chunks = [], []
    for block, slots in zip(plan.blocks, plan.slots, strict=True):
        if not slots:
            continue  # the DSE alarm-nibble block: decoded by decode_nibbles
        if block.table in ("coil", "discrete"):
            words = [int(data.draw(st.booleans())) for _ in range(block.count)]
        else:
            words = [data.draw(words_st) for _ in range(block.count)]
        blocks.append((slots, words))
        chunks += [(p, words[p.address - block.address :][: p.words]) for p in block.points]
    # The poll's own decode step (decode, derive, quality), without a socket: none is opened before a poll.
    endpoint = cast(ModbusEndpoint, object())  # never used: this test polls nothing
    driver = ModbusDeviceDriver("e1", "dev", profile, endpoint, 1, 1.0, 2, DeviceStats(), SystemClock())
    items = driver._point_readings(blocks, NOW_NS)
    _check_items(items, "e1", "dev")
    by_name = {item.point: item for item in items if isinstance(item, Reading)}
    reference = decode_points(chunks, profile)
    assert set(by_name) == set(reference) | set(profile.derived)
    for point, words in chunks:
        reading, expected = by_name[point.name], reference[point.name].value
        assert reading.quality is (Quality.BAD if expected is None else Quality.GOOD), (point.name, words)
        if expected is not None:
            assert repr(reading.value) == repr(expected), (point.name, words)
        if reading.quality is Quality.GOOD and isinstance(reading.value, float):
            assert math.isfinite(reading.value)
        plain = len(words) == 1 and point.bit is None and point.bits is None
        if plain and (words[0] & 0xFFFF) in point.sentinels:
            assert reading.quality is Quality.BAD, (point.name, words)
    for derived in derive(profile, {name: d.value for name, d in reference.items()}):
        reading = by_name[derived.name]
        assert reading.value == (0 if derived.value is None else derived.value), derived


# -- the failing examples the properties found (kept as plain regressions) ---------------------------
@pytest.mark.parametrize(
    ("name", "style", "path", "value"),
    [
        ("alphadigi_http", "alphadigi", ("AlarmInfoPlate", "serialno"), "@@DEEP1000@@"),  # RecursionError
        ("alphadigi_http", "alphadigi", ("AlarmInfoPlate", "serialno"), "s" * 100_000),  # unbounded id
        ("dahua_itc_http", "dahua", ("Picture", "SnapInfo", "AccurateTime"), "@@DEEP1000@@"),
        ("dahua_itc_http", "dahua", ("Picture", "SnapInfo", "AccurateTime"), "0001-01-01 00:00:00"),
        ("dahua_itc_http", "dahua", ("Picture", "SnapInfo", "AccurateTime"), "9999-12-31 23:59:59"),
    ],
)
def test_push_decoder_refuses_what_once_crashed_or_passed(
    name: str, style: str, path: tuple[str, ...], value: str
) -> None:
    doc = _push_documents(style)[0]
    _parent(doc, path)[path[-1]] = value
    with pytest.raises(DecodeError) as caught:
        _push_decoder(name).decode(_encode(doc), NOW_NS)
    assert caught.value.reason == "bad_type"


def test_push_local_time_with_an_offset_keeps_it() -> None:
    doc = _push_documents("dahua")[0]
    doc["Picture"]["SnapInfo"]["AccurateTime"] = "2024-01-01T00:00:00+05:00"
    read = _push_decoder("dahua_itc_http").decode(_encode(doc), NOW_NS)
    assert read.event.ts_ns == 1_704_049_200 * 10**9  # not 00:00 in the estate's zone (+08:00)


def test_hikvision_time_before_1970_is_refused() -> None:
    decoder = _mqtt_decoder("hikvision_access_mqtt")
    doc = seeds("hikvision_access_mqtt")[0].payload | {"dateTime": "0001-01-01T00:00:00+14:00"}
    with pytest.raises(DecodeError) as caught:
        decoder.decode("site/dev/event", orjson.dumps(doc), NOW_NS)
    assert caught.value.reason == "bad_type"


async def test_push_receiver_answers_hostile_bodies_without_a_server_error() -> None:
    """The camera port over ASGI: 300 seeded hostile bodies per camera get 200 or 400, never a 500."""
    cameras = [
        PushCamera("e1", name, "t" * 20, _push_decoder(name), PlateClassifier(_registry()), DeviceStats())
        for name in PUSH_PROFILES
    ]

    async def emit(envelope: Envelope) -> None:
        if envelope.ack:
            envelope.ack()

    receiver = PushReceiver(cameras, emit, SystemClock(), commit_wait=1.0)
    rng = random.Random(8)
    transport = httpx.ASGITransport(app=receiver.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://cam") as client:
        for name, style in (("alphadigi_http", "alphadigi"), ("dahua_itc_http", "dahua")):
            documents = _push_documents(style)
            for i in range(300):
                body = mutate(rng, rng.choice(documents)) if i % 4 else junk(rng)
                reply = await client.post(
                    f"/anpr/e1/{name}", content=body, headers={"Authorization": "Bearer " + "t" * 20}
                )
                assert reply.status_code in (200, 400), (reply.status_code, body[:200])
            stats = next(c.stats for c in cameras if c.device == name)
            assert stats.events > 0 and stats.errors.total() > 0


# -- the compiled decoders (drivers/registers.point_decoder) against the reference decode_point -------
def _compiled(point: ModbusPoint, profile: ModbusProfile, words: list[int], pad: int, decimals: Any) -> Any:
    """The compiled decoder's value for `words`, found `pad` words into a block (as a driver calls it)."""
    block = [0x5A5A] * pad + words + [0xA5A5] * pad
    return point_decoder(point, profile)(block, pad, decimals)


def _same(compiled: Any, reference: Decoded) -> bool:
    return repr(compiled) == repr(reference.value)  # -0.0 is not 0.0, 1 is not 1.0 or True


decimals_st = st.none() | st.integers(-2, 9) | st.sampled_from([1.0, 2.5, math.nan, True, "x"])


@pytest.mark.parametrize("name", _modbus_profiles())
@BOUNDED
@given(data=st.data())
def test_compiled_decoders_agree_with_decode_point_on_library_points(name: str, data: st.DataObject) -> None:
    profile = LIBRARY.get(name)
    assert isinstance(profile, ModbusProfile)
    for point in profile.points:
        words = [data.draw(words_st) for _ in range(point.words)]
        decimals = data.draw(decimals_st)
        compiled = _compiled(point, profile, words, data.draw(st.integers(0, 3)), decimals)
        assert _same(compiled, decode_point(words, point, profile, decimals)), (point.name, words, decimals)


@st.composite
def _points(draw: st.DrawFn) -> tuple[ModbusPoint, ModbusProfile]:
    kind = draw(st.sampled_from(["bool", "int16", "uint16", "int32", "uint32", "float32"]))
    shape = draw(st.sampled_from(["plain", "bit", "bits", "enum", "decimals"]))
    fields: dict[str, Any] = {
        "name": "p",
        "address": 10,
        "type": kind,
        "word_order": draw(st.none() | st.sampled_from(["ABCD", "CDAB", "BADC", "DCBA"])),
        "scale": draw(st.sampled_from([1.0, 0.1, 0.01, 10.0, -1.0])),
        "offset": draw(st.sampled_from([0.0, -40.0, 2.5])),
        "sentinels": draw(st.lists(st.sampled_from(FAULT_WORDS), max_size=3)),
        "sentinel_top": draw(st.none() | st.integers(0, 16)),
    }
    if shape == "bit":
        fields["bit"] = draw(st.integers(0, 15))
    elif shape == "bits":
        start = draw(st.integers(0, 15))
        fields["bits"] = {"start": start, "width": draw(st.integers(1, 16 - start))}
    elif shape == "enum":
        fields["enum"] = {code: f"s{code}" for code in draw(st.sets(st.integers(0, 5), min_size=1))}
    elif shape == "decimals":
        fields["decimals_from"] = "d"
    decimals_point = [{"name": "d", "address": 1}] if shape == "decimals" else []
    try:
        point = ModbusPoint.model_validate(fields)
        profile = ModbusProfile.model_validate(
            {
                "name": "synthetic",
                "family": "septic_pressure",
                "word_order": draw(st.sampled_from(["ABCD", "CDAB", "BADC", "DCBA"])),
                "sentinel_top": draw(st.integers(0, 16)),
                "points": [point.model_dump(exclude_defaults=True), *decimals_point],
            }
        )
    except ValidationError:
        assume(False)
    return profile.points[0], profile


@BOUNDED
@given(case=_points(), data=st.data())
def test_compiled_decoders_agree_with_decode_point_on_any_point(
    case: tuple[ModbusPoint, ModbusProfile], data: st.DataObject
) -> None:
    point, profile = case
    words = [data.draw(words_st) for _ in range(point.words)]
    decimals = data.draw(decimals_st)
    compiled = _compiled(point, profile, words, data.draw(st.integers(0, 3)), decimals)
    assert _same(compiled, decode_point(words, point, profile, decimals)), (point, words, decimals)
