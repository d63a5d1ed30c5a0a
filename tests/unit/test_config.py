"""Config validation: every error names file, line and key; secrets from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, parse_config
from gateway.runtime.cli import main

GOOD = """\
gateway_id: gw-test
estates:
  - id: sunshine
    name: {zh: 阳光花园, en: Sunshine Garden}
    devices:
      - id: gen-1
        family: generator
        profile: dse_gencomm
        modbus: {host: 127.0.0.1, port: 5020}
"""


def test_good_config_parses() -> None:
    config = parse_config(GOOD, "site.yaml", {})
    assert config.estates[0].devices[0].modbus is not None
    assert config.estates[0].timezone == "Asia/Shanghai"
    assert config.estates[0].gate_hours == "06:00-23:00"


def test_errors_name_file_line_and_key() -> None:
    text = GOOD.replace("port: 5020", "port: 70000") + "      - id: g\n        family: gatez\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "site.yaml", {})
    lines = [str(issue) for issue in caught.value.issues]
    assert "site.yaml:9 estates[0].devices[0].modbus.port: must be 1..65535" in lines
    assert any(line.startswith("site.yaml:11 estates[0].devices[1].family:") for line in lines)


def test_unknown_key_is_an_error() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(GOOD + "    colour: blue\n", "site.yaml", {})
    assert str(caught.value.issues[0]) == (
        "site.yaml:10 estates[0].colour: unknown key (check spelling; see the schema's field list)"
    )


def test_secret_comes_from_environment() -> None:
    text = GOOD + "mqtt:\n  password: ${MQTT_PASSWORD}\n"
    config = parse_config(text, "site.yaml", {"MQTT_PASSWORD": "s3cret"})
    assert config.mqtt.password == "s3cret"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "site.yaml", {})
    assert (
        str(caught.value.issues[0])
        == "site.yaml:11 mqtt.password: environment variable MQTT_PASSWORD is not set"
    )


def test_rule_needs_fields_of_its_kind() -> None:
    text = GOOD + "rules:\n  - {id: r, kind: threshold, family: generator, point: x, priority: high,\n"
    text += "     message: {zh: a, en: b}}\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "site.yaml", {})
    assert str(caught.value.issues[0]) == "site.yaml:11 rules[0]: a threshold rule needs 'op' and 'limit'"


def test_check_config_cli_exits_2_with_line_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "site.yaml"
    broken.write_text(GOOD.replace("port: 5020", "port: 0"))
    assert main(["check-config", str(broken)]) == 2
    assert "site.yaml:9 estates[0].devices[0].modbus.port: must be 1..65535" in capsys.readouterr().err


def test_check_config_catches_profile_mismatch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wrong = tmp_path / "site.yaml"
    wrong.write_text(GOOD.replace("profile: dse_gencomm", "profile: generic_access_gate"))
    assert main(["check-config", str(wrong)]) == 2
    err = capsys.readouterr().err
    assert (
        "site.yaml:8 estates[0].devices[0].profile: profile 'generic_access_gate' is for access_gate" in err
    )


def test_check_config_accepts_the_demo_estate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_API_TOKEN", "a-long-enough-demo-token")
    monkeypatch.setenv("DEMO_CAMERA_TOKEN", "a-long-enough-camera-token")
    monkeypatch.setenv("DEMO_LINK_SECRET", "a-long-enough-link-secret")
    demo = Path(__file__).parents[2] / "deploy" / "examples" / "demo-estate.yaml"
    assert main(["check-config", str(demo)]) == 0


def test_check_config_catches_a_command_the_profile_lacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(
        GOOD.replace("profile: dse_gencomm", "profile: dse_gencomm\n        commands: {launch: operator}")
    )
    assert main(["check-config", str(site)]) == 2
    err = capsys.readouterr().err
    assert (
        "site.yaml:9 estates[0].devices[0].commands: commands ['launch'] are not in profile 'dse_gencomm'"
        in err
    )


def test_check_config_warns_about_escalation_gaps_without_failing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(
        """
escalation:
  channels: [{type: console, name: console}]
estates:
  - id: sunshine
    name: {zh: 阳光花园, en: Sunshine Garden}
    duty:
      people: [{id: li, name: 李明}]
      shifts: {24h: "08:00-08:00+1"}
      roles: {control_room: {24h: [li]}}
  - id: maple
    name: {zh: 枫林苑, en: Maple Court}
""",
        encoding="utf-8",
    )
    assert main(["check-config", str(site)]) == 0
    err = capsys.readouterr().err
    assert "channels not configured here" in err and "dingtalk" in err and "sms" in err
    assert "estates sunshine: roles used by escalation policies but not in its duty roster" in err
    assert "duty_manager" in err and "fire_liaison" in err
    assert "estates maple: no duty roster" in err
