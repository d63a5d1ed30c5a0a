"""Binding MQTT devices: devices sharing a topic must each match on the same payload paths with their
own values; vars must be used by a command template; MQTT profile commands are known to the check."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import parse_config
from gateway.config.loader import load_config_with_lines
from gateway.runtime.build import bind_devices

HEAD = """\
estates:
  - id: sunshine
    name: {zh: 阳光花园, en: Sunshine Garden}
    devices:
"""


def _cam(device: str, match: str | None) -> str:
    match_text = f", match: {match}" if match is not None else ""
    return (
        f"      - id: {device}\n        family: plate_barrier\n        profile: frigate_lpr\n"
        f"        mqtt: {{topic: frigate/tracked_object_update{match_text}}}\n"
    )


def _issues(text: str, tmp_path: Path) -> list[str]:
    path = tmp_path / "site.yaml"
    path.write_text(text, encoding="utf-8")
    config, lines = load_config_with_lines(path, {})
    _, issues = bind_devices(config, "site.yaml", lines)
    return [str(issue) for issue in issues]


def test_cameras_on_one_topic_with_distinct_matches_bind(tmp_path: Path) -> None:
    text = HEAD + _cam("cam-in", "{camera: gate_in}") + _cam("cam-out", "{camera: gate_out}")
    assert _issues(text, tmp_path) == []


@pytest.mark.parametrize(
    ("second", "expected"),
    [
        (
            None,
            "site.yaml:12 estates[0].devices[1].mqtt: shares topic 'frigate/tracked_object_update' with "
            "sunshine/cam-in: give each a 'match' that tells them apart",
        ),
        (
            "{camera: gate_in}",
            "site.yaml:12 estates[0].devices[1].mqtt.match: same match as sunshine/cam-in on topic "
            "'frigate/tracked_object_update'",
        ),
        (
            "{id: gate_in}",
            "site.yaml:12 estates[0].devices[1].mqtt.match: matches on ['id'], other devices on "
            "'frigate/tracked_object_update' on ['camera']",
        ),
    ],
    ids=["no_match", "same_value", "other_paths"],
)
def test_shared_topic_problems_name_the_device_and_line(
    tmp_path: Path, second: str | None, expected: str
) -> None:
    text = HEAD + _cam("cam-in", "{camera: gate_in}") + _cam("cam-2", second)
    assert _issues(text, tmp_path) == [expected]


def test_match_values_compare_as_text_like_the_payload(tmp_path: Path) -> None:
    text = HEAD + _cam("a", "{camera: 7}") + _cam("b", "{camera: '7'}")
    assert [issue.split(": ", 1)[1] for issue in _issues(text, tmp_path)] == [
        "same match as sunshine/a on topic 'frigate/tracked_object_update'"
    ]


GATE = """\
      - id: gate-n
        family: access_gate
        profile: generic_access_gate
        commands: {commands}
        mqtt: {{topic: "estate/sunshine/access_gate/gate-n/+", vars: {vars}}}
"""


def test_mqtt_profile_commands_are_known_to_the_bind_check(tmp_path: Path) -> None:
    assert _issues(HEAD + GATE.format(commands="{open_door: operator}", vars="{door: 2}"), tmp_path) == []
    [issue] = _issues(HEAD + GATE.format(commands="{close_door: operator}", vars="{}"), tmp_path)
    assert issue == (
        "site.yaml:8 estates[0].devices[0].commands: commands ['close_door'] are not in profile "
        "'generic_access_gate' (it has: open_door)"
    )


def test_a_var_no_template_uses_is_a_typo(tmp_path: Path) -> None:
    [issue] = _issues(HEAD + GATE.format(commands="{open_door: operator}", vars="{dor: 2}"), tmp_path)
    assert issue == (
        "site.yaml:9 estates[0].devices[0].mqtt.vars: vars ['dor'] are not used by the commands of "
        "profile 'generic_access_gate'"
    )


def test_match_and_vars_are_optional() -> None:
    text = HEAD + "      - {id: g, family: access_gate, profile: generic_access_gate, mqtt: {topic: a/+}}\n"
    mqtt = parse_config(text, "site.yaml", {}).estates[0].devices[0].mqtt
    assert mqtt is not None and mqtt.match is None and mqtt.vars == {}
