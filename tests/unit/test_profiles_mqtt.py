"""MQTT profiles: the shipped vendor profiles speak the canonical vocabulary the rules know, and a
malformed MQTT profile is refused with the file, the line and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.profiles import EventChannel, MqttProfile, ProfileError, ProfileLibrary, load_profile_file
from drivers.profiles.mqtt_command import render, template_fields
from gateway.alerts.rules import load_default_rules

VENDOR_ACCESS = ("uhppoted_mqtt", "hikvision_access_mqtt")


def _mqtt(name: str) -> MqttProfile:
    profile = ProfileLibrary().get(name)
    assert isinstance(profile, MqttProfile)
    return profile


def _kinds(profile: MqttProfile) -> set[str]:
    return {
        kind
        for channel in profile.channels.values()
        if isinstance(channel, EventChannel)
        for kind in channel.kinds.values()
        if kind is not None
    }


CANONICAL = _kinds(_mqtt("generic_access_gate"))


@pytest.mark.parametrize("name", VENDOR_ACCESS)
def test_vendor_access_profiles_emit_only_canonical_kinds_that_rules_know(name: str) -> None:
    kinds = _kinds(_mqtt(name))
    assert kinds <= CANONICAL
    ruled = {k for rule in load_default_rules() if rule.family and rule.family.value == "access_gate"
             for k in rule.events or ()}  # fmt: skip
    # exit_button is how people leave: no rule on purpose (see defaults.yaml)
    assert kinds - ruled <= {"exit_button"}


def test_every_access_code_of_devices_md_is_mapped() -> None:
    hik = _mqtt("hikvision_access_mqtt").channels["event"]
    assert isinstance(hik, EventChannel)
    devices_md = {
        (5, 0x01): "card_granted", (5, 0x4B): "card_granted", (5, 0x26): "card_granted",
        (5, 0x06): "card_denied", (5, 0x08): "card_denied", (5, 0x09): "card_denied",
        (5, 0x4C): "card_denied", (5, 0x1B): "door_forced", (5, 0x1C): "door_held",
        (5, 0x85): "tailgating", (5, 0x87): "door_forced", (1, 0x404): "tamper", (1, 0x406): "tamper",
        (1, 0x40A): "duress", (1, 0x418): "fire_button", (1, 0x41C): "panic",
    }  # fmt: skip
    assert {code: hik.kinds[f"{code[0]}/{code[1]}"] for code in devices_md} == devices_md
    assert {"card_granted", "card_denied", "door_forced", "door_held", "tailgating", "tamper", "duress",
            "exit_button", "fire_button", "panic"} == _kinds(_mqtt("hikvision_access_mqtt"))  # fmt: skip


def test_frigate_emits_the_plate_read_contract() -> None:
    channel = _mqtt("frigate_lpr").channels["tracked_object_update"]
    assert isinstance(channel, EventChannel)
    assert _kinds(_mqtt("frigate_lpr")) == {"plate_read"}  # classified by the vehicle registry, not here
    assert {"plate", "confidence", "camera"} <= set(channel.attributes)
    assert channel.when == {"type": "lpr"} and channel.ts_path == "timestamp"


def test_generic_gate_opens_its_door_by_template() -> None:
    command = _mqtt("generic_access_gate").commands["open_door"]
    assert template_fields(command.payload) == {"door", "request_id"}
    values = {"base": "estate/e/access_gate/g", "device": "g", "request_id": "r1", "door": 2}
    assert render(command.topic, values) == "estate/e/access_gate/g/command"
    assert render(command.payload, values) == {"command": "open_door", "door": 2, "request_id": "r1"}
    assert command.confirm is not None and command.confirm.point == "door_open"


HEAD = "protocol: mqtt\nfamily: access_gate\nchannels:\n  event:\n    type: event\n"
STATE = "  state:\n    type: state\n    points: {door_open: {path: door_open, type: bool}}\n"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "    kind_path: 5\n    kinds: {a: b}\n",
            ":6 channels.event.kind_path: give a dotted path, or a list",
        ),
        ("    kind_path: {a: b}\n    kinds: {a: b}\n", ":6 channels.event.kind_path: give a dotted path"),
        ("    kind_path: e\n    kinds: {a: b}\n    colour: red\n", ":8 channels.event.colour: unknown key"),
        (
            "    kind_path: [a, b]\n    kinds:\n      '5/1': x\n      '5': y\n",
            ":9 channels.event.kinds.5: has 1 parts; kind_path has 2",
        ),
        ("    kind_path: [a, b]\n    kinds: {'*/1': x}\n", ":7 channels.event.kinds.*/1: only the last part"),
        (
            "    kind_path: e\n    kinds: {a: b}\n    attribute_values: {dir: {'1': in}}\n",
            ":8 channels.event.attribute_values.dir: 'dir' is not one of this channel's attributes",
        ),
        (
            "    kind_path: e\n    kinds: {a: b}\n" + STATE + "commands:\n  open_door:\n"
            "    topic: '{base}/command'\n    payload: {door: '{door}'}\n",
            ":14 commands.open_door.payload: template fields ['door'] have no value",
        ),
        (
            "    kind_path: e\n    kinds: {a: b}\n" + STATE + "commands:\n  open_door:\n"
            "    topic: '{base}/command'\n    confirm: {point: door_closed, values: [true]}\n",
            ":14 commands.open_door.confirm.point: no state point named 'door_closed'",
        ),
        (
            "    kind_path: e\n    kinds: {a: b}\ncommands:\n  open_door: {topic: 'a/+/command'}\n",
            ":9 commands.open_door: topic 'a/+/command': a command is published to one topic",
        ),
    ],
    ids=[
        "kind_path_int",
        "kind_path_map",
        "unknown_key",
        "kind_parts",
        "star_first",
        "attribute_values",
        "template_field",
        "confirm_point",
        "command_filter",
    ],
)
def test_malformed_mqtt_profile_names_file_line_and_key(tmp_path: Path, body: str, expected: str) -> None:
    path = tmp_path / "site_gate.yaml"
    path.write_text(HEAD + body, encoding="utf-8")
    with pytest.raises(ProfileError) as caught:
        load_profile_file(path)
    assert str(caught.value).startswith(str(path))
    assert expected in str(caught.value), str(caught.value)
