"""Local outputs in the site file: a modbus_relay channel must name a local_output device of its estate,
a fallback only relays of its own estate; the shipped relay board profile has the three pulses."""

from __future__ import annotations

import pytest

from drivers.profiles import ModbusProfile, ProfileLibrary
from gateway.config import ConfigError, parse_config

SITE = """\
escalation:
  channels:
    - {{type: modbus_relay, name: siren, estate: {relay_estate}, device: {device}, command: siren}}
estates:
  - id: sunshine
    name: {{zh: 阳光花园, en: Sunshine Garden}}
    local_fallback: {{after: 60, outputs: [{output}]}}
    devices:
      - {{id: relay-1, family: local_output, profile: relay_board_8ch,
          modbus: {{host: 127.0.0.1, unit_id: 6}}}}
      - {{id: fire-1, family: fire_panel, profile: notifier_demo_loop1,
          modbus: {{host: 127.0.0.1, unit_id: 2}}}}
  - id: moon
    name: {{zh: 月亮湾, en: Moon Bay}}
"""


def load(relay_estate: str = "sunshine", device: str = "relay-1", output: str = "siren") -> object:
    text = SITE.format(relay_estate=relay_estate, device=device, output=output)
    return parse_config(text, "site.yaml", {})


def test_a_relay_channel_and_its_fallback_load() -> None:
    config = load()
    estate = config.estates[0]  # type: ignore[attr-defined]
    assert estate.local_fallback.after == 60 and [p.value for p in estate.local_fallback.priorities] == [
        "critical"
    ]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"device": "fire-1"}, "not a local_output device"),
        ({"device": "nowhere"}, "not a local_output device"),
        ({"relay_estate": "moon"}, "not a local_output device"),
        ({"output": "strobe"}, "local_fallback output 'strobe' is not a modbus_relay channel"),
    ],
)
def test_wrong_local_outputs_are_config_errors(kw: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(**kw)


def test_the_shipped_relay_board_profile() -> None:
    profile = ProfileLibrary().get("relay_board_8ch")
    assert isinstance(profile, ModbusProfile) and profile.family.value == "local_output"
    assert {name: (p.coil, p.seconds) for name, p in profile.pulses.items()} == {
        "siren": (0, 10.0), "strobe": (1, 10.0), "pa": (2, 3.0)
    }  # fmt: skip
