"""The MQTT decoder's event mechanisms: joined kind paths, wildcard and null kinds, `when`, dedup of
record ids, attribute value maps and scales, ISO timestamps, and its own command topic echoed back."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from drivers.errors import DecodeError
from drivers.mqtt_device import DEDUP_SIZE, MqttJsonDecoder
from drivers.profiles import MqttProfile, ProfileLibrary
from gateway.model import DeviceEvent, Item, Reading

NOW = 1_700_000_000 * 10**9


def _decoder(**channel: Any) -> MqttJsonDecoder:
    channel = {"type": "event", "kind_path": "event", "kinds": {"x": "x"}, **channel}
    profile = MqttProfile.model_validate(
        {
            "name": "t",
            "family": "access_gate",
            "channels": {"event": channel, "heartbeat": {"type": "heartbeat"}},
        }
    )
    return MqttJsonDecoder("e1", "dev", profile)


def _decode(decoder: MqttJsonDecoder, payload: dict[str, Any], channel: str = "event") -> list[Item]:
    return decoder.decode(f"site/dev/{channel}", orjson.dumps(payload), NOW)


def _event(items: list[Item]) -> DeviceEvent:
    [event] = items
    assert isinstance(event, DeviceEvent)
    return event


HIK = {
    "kind_path": ["major", "minor"],
    "kinds": {"5/75": "card_granted", "5/6": "card_denied", "5/25": None, "1/*": "alarm"},
}


def test_a_list_kind_path_joins_the_codes_and_a_single_path_still_works() -> None:
    hik = _decoder(**HIK)
    assert _event(_decode(hik, {"major": 5, "minor": 75})).kind == "card_granted"
    assert _event(_decode(hik, {"major": "5", "minor": "6"})).kind == "card_denied"  # codes as text too
    generic = _decoder(kinds={"door_forced": "door_forced", "42": "door_held"})
    assert _event(_decode(generic, {"event": "door_forced"})).kind == "door_forced"
    assert _event(_decode(generic, {"event": 42})).kind == "door_held"


def test_booleans_join_as_true_and_false() -> None:
    decoder = _decoder(
        kind_path=["reason", "granted"], kinds={"1/true": "card_granted", "1/false": "card_denied"}
    )
    assert _event(_decode(decoder, {"reason": 1, "granted": True})).kind == "card_granted"
    assert _event(_decode(decoder, {"reason": 1, "granted": False})).kind == "card_denied"


def test_a_last_star_matches_any_value_after_the_exact_keys() -> None:
    decoder = _decoder(kind_path=["a", "b"], kinds={"1/2": "exact", "1/*": "any"})
    assert _event(_decode(decoder, {"a": 1, "b": 2})).kind == "exact"
    assert _event(_decode(decoder, {"a": 1, "b": 9})).kind == "any"
    with pytest.raises(DecodeError) as caught:
        _decode(decoder, {"a": 2, "b": 2})
    assert caught.value.reason == "unknown_kind"


def test_a_null_kind_is_consumed_and_counted_as_ignored_not_as_an_error() -> None:
    decoder = _decoder(**HIK)
    assert _decode(decoder, {"major": 5, "minor": 25}) == []
    assert decoder.stats.ignored == 1 and not decoder.stats.errors


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"major": 5}, "missing_field"),
        ({"major": 5, "minor": {"x": 1}}, "bad_type"),
        ({"major": 5, "minor": 7}, "unknown_kind"),
    ],
)
def test_kind_problems_are_decode_errors(payload: dict[str, Any], reason: str) -> None:
    with pytest.raises(DecodeError) as caught:
        _decode(_decoder(**HIK), payload)
    assert caught.value.reason == reason


def test_when_selects_the_channels_messages_and_ignores_the_rest() -> None:
    decoder = _decoder(when={"type": "lpr", "meta.v": 2}, kind_path="type", kinds={"lpr": "plate_read"})
    assert _event(_decode(decoder, {"type": "lpr", "meta": {"v": 2}})).kind == "plate_read"
    assert _decode(decoder, {"type": "face", "meta": {"v": 2}}) == []
    assert _decode(decoder, {"type": "lpr"}) == []  # a missing field does not hold either
    assert decoder.stats.ignored == 2 and not decoder.stats.errors


def test_a_repeated_record_id_is_dropped_within_the_last_1024() -> None:
    decoder = _decoder(dedup_path="rec.id", kinds={"x": "x", "quiet": None})
    assert len(_decode(decoder, {"event": "x", "rec": {"id": 7}})) == 1
    assert _decode(decoder, {"event": "x", "rec": {"id": 7}}) == []
    assert _decode(decoder, {"event": "x", "rec": {"id": "7"}}) == []  # the same id as text
    assert decoder.stats.errors == {"duplicate": 2}
    assert len(_decode(decoder, {"event": "x"})) == 1  # no id: kept (nothing to compare)
    assert len(_decode(decoder, {"event": "x"})) == 1
    for record in range(1000, 1000 + DEDUP_SIZE):  # memory is bounded: 7 is forgotten
        _decode(decoder, {"event": "quiet", "rec": {"id": record}})
    assert len(_decode(decoder, {"event": "x", "rec": {"id": 7}})) == 1
    assert _decode(decoder, {"event": "x", "rec": {"id": 1000 + DEDUP_SIZE - 1}}) == []


def test_an_unknown_kind_is_not_remembered_as_seen() -> None:
    decoder = _decoder(dedup_path="id")
    with pytest.raises(DecodeError):
        _decode(decoder, {"event": "nope", "id": 1})
    with pytest.raises(DecodeError):  # the same again: the same error, not a silent duplicate
        _decode(decoder, {"event": "nope", "id": 1})


def test_attribute_values_map_codes_and_leave_out_the_rest() -> None:
    decoder = _decoder(
        attributes={"direction": "dir", "reason": "code", "card": "card", "score": "score"},
        attribute_values={"direction": {"1": "in", "2": "out"}, "reason": {"6": "no_permission"}},
        attribute_scale={"score": 100},
    )
    event = _event(_decode(decoder, {"event": "x", "dir": 2, "code": 1, "card": "00123", "score": 0.95}))
    assert event.attributes == {"direction": "out", "card": "00123", "score": 95.0}
    event = _event(_decode(decoder, {"event": "x", "dir": "1", "code": 6, "score": None}))
    assert event.attributes == {"direction": "in", "reason": "no_permission"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (1_700_000_000.5, 1_700_000_000_500_000_000),
        ("2024-05-10T10:20:30+08:00", 1_715_307_630 * 10**9),
        ("2024-05-10T02:20:30Z", 1_715_307_630 * 10**9),
    ],
)
def test_device_timestamps_in_epoch_seconds_or_iso_8601_with_an_offset(raw: object, expected: int) -> None:
    assert _event(_decode(_decoder(ts_path="ts"), {"event": "x", "ts": raw})).ts_ns == expected


@pytest.mark.parametrize("raw", ["2024-05-10 10:20:30", "yesterday", True, -5])
def test_a_timestamp_without_a_zone_is_refused(raw: object) -> None:
    with pytest.raises(DecodeError) as caught:
        _decode(_decoder(ts_path="ts"), {"event": "x", "ts": raw})
    assert caught.value.reason == "bad_type"


def test_the_gateways_own_command_echoed_back_is_ignored() -> None:
    profile = ProfileLibrary().get("generic_access_gate")
    assert isinstance(profile, MqttProfile)
    decoder = MqttJsonDecoder("e1", "gate", profile)
    assert decoder.decode("estate/e1/access_gate/gate/command", b'{"command": "open_door"}', NOW) == []
    assert decoder.stats.ignored == 1
    with pytest.raises(DecodeError) as caught:
        decoder.decode("estate/e1/access_gate/gate/nonsense", b"{}", NOW)
    assert caught.value.reason == "unknown_channel"


def test_decode_object_is_decode_without_the_parse() -> None:
    payload = {"major": 5, "minor": 75}
    raw = orjson.dumps(payload)
    one, other = _decoder(**HIK), _decoder(**HIK)
    assert one.decode("a/event", raw, NOW) == other.decode_object("a/event", payload, len(raw), NOW)
    beat = other.decode_object("a/heartbeat", {}, 2, NOW)
    assert isinstance(beat[0], Reading) and beat[0].point == "heartbeat"
    with pytest.raises(DecodeError) as caught:
        _decoder(**HIK).decode_object("a/event", payload, 10**6, NOW)
    assert caught.value.reason == "too_large"
