"""Shipped profiles load and keep their promises; a malformed profile is refused with a message that
names the file, the line and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.blocks import plan_blocks
from drivers.profiles import ModbusProfile, ProfileError, ProfileLibrary, load_profile_file
from drivers.profiles.loader import SHIPPED

SHIPPED_FILES = sorted(SHIPPED.glob("*.yaml"))


def test_profiles_are_shipped() -> None:
    names = {path.stem for path in SHIPPED_FILES}
    assert {
        "pressure_transmitter_s16",
        "pressure_transmitter_float",
        "gst_modbus_site_example",
        "comap_intelilite4",
    } <= names


@pytest.mark.parametrize("path", SHIPPED_FILES, ids=lambda p: p.stem)
def test_every_shipped_profile_loads(path: Path) -> None:
    profile = load_profile_file(path)
    assert profile.name == path.stem
    if isinstance(profile, ModbusProfile):
        blocks = plan_blocks(profile)
        assert {p.name for b in blocks for p in b.points} == {p.name for p in profile.points}


@pytest.mark.parametrize("path", SHIPPED_FILES, ids=lambda p: p.stem)
def test_every_register_map_cites_devices_md(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    if "protocol: modbus" in text:
        assert "DEVICES.md" in text.split("\nprotocol:")[0], "the header comment cites its source"


def _modbus(name: str) -> ModbusProfile:
    profile = ProfileLibrary().get(name)
    assert isinstance(profile, ModbusProfile)
    return profile


def test_septic_profiles_keep_the_point_names_rules_use_and_add_level() -> None:
    for name in ("pressure_transmitter_float", "pressure_transmitter_s16"):
        profile = _modbus(name)
        assert {"pressure", "unit"} <= {p.name for p in profile.points}
        level = profile.derived["level_m"]
        assert level.source == "pressure"
    assert "temperature" in {p.name for p in _modbus("pressure_transmitter_float").points}
    pressure = next(p for p in _modbus("pressure_transmitter_s16").points if p.name == "pressure")
    assert (pressure.type, pressure.address, pressure.decimals_from) == ("int16", 4, "decimals")


def test_gst_example_is_two_registers_of_eight_two_bit_devices() -> None:
    profile = _modbus("gst_modbus_site_example")
    assert len(profile.points) == 16
    assert all(p.name.endswith(".state") and p.bits and p.bits.width == 2 for p in profile.points)
    assert {p.address for p in profile.points} == {0, 1}
    assert {frozenset(p.enum.values()) for p in profile.points if p.enum} == {
        frozenset({"normal", "fire", "fault", "disabled"})
    }
    assert len(plan_blocks(profile)) == 1


def test_comap_speaks_the_dse_vocabulary_where_the_meaning_is_the_same() -> None:
    comap, dse = _modbus("comap_intelilite4"), _modbus("dse_gencomm")
    dse_names = {p.name for p in dse.points}
    assert {p.name for p in comap.points} <= dse_names
    labels = {p.name: set((p.enum or {}).values()) for p in comap.points}
    assert {"stopped", "pre_start", "warming", "running", "cooling"} <= labels["engine_state"]
    assert {"off", "manual", "auto"} <= labels["control_mode"]
    by_name = {p.name: p for p in comap.points}
    assert by_name["engine_state"].enum and by_name["engine_state"].enum[8] == "running"  # loaded
    assert all(p.sentinels == [0x8000] for p in comap.points)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site_profile.yaml"
    path.write_text(text, encoding="utf-8")
    return path


HEAD = "protocol: modbus\nfamily: septic_pressure\npoints:\n"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "  - {name: decimals, address: 3}\n"
            "  - {name: pressure, address: 4, type: int16, decimals_from: decimal}\n",
            ":5 points[1] (pressure).decimals_from: no point named 'decimal'",
        ),
        (
            "  - name: state\n    address: 0\n    bits: {start: 15, width: 2}\n",
            ":6 points[0] (state).bits: bits 15..16 do not fit in a 16-bit register",
        ),
        (
            "  - {name: p, address: 0, type: float32}\n  - {name: p, address: 2}\n",
            ":5 points[1] (p).name: point name 'p' appears twice",
        ),
        (
            "  - {name: p, address: 0, type: float32}\nderived:\n  level_m: {source: p, divide_by: 0}\n",
            ":6 derived.level_m.divide_by: Input should be greater than 0",
        ),
        (
            "  - {name: p, address: 0, type: float32}\nderived:\n  level_m: {source: q, multiply: 2}\n",
            ":6 derived.level_m.source: no point named 'q'",
        ),
        (
            "  - {name: p, address: 0, type: float32}\n  - {name: q, address: 9, tpye: uint16}\n",
            ":5 points[1] (q).tpye: unknown key",
        ),
        (
            "  - {name: p, address: 0, type: int16, sentinels: [70000]}\n",
            ":4 points[0] (p).sentinels: 70000 does not fit a 16-bit register",
        ),
    ],
    ids=["decimals_from", "bits", "duplicate", "divide_by", "derived_source", "typo", "sentinel"],
)
def test_malformed_profile_names_file_line_and_key(tmp_path: Path, body: str, expected: str) -> None:
    path = _write(tmp_path, HEAD + body)
    with pytest.raises(ProfileError) as caught:
        load_profile_file(path)
    assert str(caught.value).startswith(str(path))
    assert expected in str(caught.value)


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, HEAD + "  - {name: p, address: 0\n")
    with pytest.raises(ProfileError, match=r"site_profile\.yaml:\d+: YAML"):
        load_profile_file(path)


def test_site_profile_overrides_a_shipped_one(tmp_path: Path) -> None:
    text = (SHIPPED / "pressure_transmitter_s16.yaml").read_text(encoding="utf-8")
    site = text.replace("divide_by: 1.02", "divide_by: 1.05")
    (tmp_path / "pressure_transmitter_s16.yaml").write_text(site, encoding="utf-8")
    profile = ProfileLibrary([tmp_path]).get("pressure_transmitter_s16")
    assert isinstance(profile, ModbusProfile)
    assert profile.derived["level_m"].divide_by == 1.05  # type: ignore[union-attr]
