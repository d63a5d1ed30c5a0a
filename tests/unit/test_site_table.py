"""Site tables: a CSV of a fire site's points plus a template in the profile become ordinary points with
labels and zones; a wrong row is refused with the CSV's file and line, a wrong template with the
profile's."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from drivers.blocks import plan_blocks
from drivers.profiles import ModbusPoint, ModbusProfile, ProfileError, ProfileLibrary, load_profile_file
from drivers.profiles.formula import FormulaError, evaluate, formula_names
from drivers.profiles.loader import SHIPPED

GST_STATES = {0: "normal", 1: "fire", 2: "fault", 3: "disabled"}
NOTIFIER_BITS = {"fire": 11, "pre_alarm": 14, "fault": 13, "disabled": 9}  # shared/DEVICES.md


def _modbus(name: str) -> ModbusProfile:
    profile = ProfileLibrary().get(name)
    assert isinstance(profile, ModbusProfile)
    return profile


def _rows(csv: str) -> list[list[str]]:
    lines = (SHIPPED / csv).read_text(encoding="utf-8").splitlines()
    return [line.split(",") for line in lines if line and not line.startswith("#")][1:]


def test_notifier_rows_become_four_points_each_at_the_vendor_address() -> None:
    profile = _modbus("notifier_site_example")
    by_name = {p.name: p for p in profile.points}
    rows = _rows("notifier_site_example.csv")
    assert len(profile.points) == 4 * len(rows) + 1  # + panel.silenced from the YAML
    for loop, device, kind, label, zone in rows:
        block, prefix = (200, "M") if kind == "module" else (0, "D")
        name = f"L{loop}-{prefix}{int(device):03}"
        address = (int(loop) - 1) * 400 + block + int(device) - 1  # DEVICES.md, spelled out again here
        for suffix, bit in NOTIFIER_BITS.items():
            point = by_name.pop(f"{name}.{suffix}")
            assert (point.address, point.bit, point.type, point.table) == (address, bit, "uint16", "holding")
            assert (point.label, point.zone) == (label, zone)
    assert list(by_name) == ["panel.silenced"]
    assert by_name["panel.silenced"].label == ""


def test_notifier_example_spans_two_buildings_on_one_panel() -> None:
    profile = _modbus("notifier_site_example")
    by_name = {p.name: p for p in profile.points}
    assert by_name["L1-D003.fire"].address == 2 and by_name["L1-D003.fire"].label == "3号楼 2层 烟感 走廊东"
    assert by_name["L1-M001.fire"].address == 200
    assert by_name["L2-D001.fire"].address == 400 and by_name["L2-D001.fire"].zone == "5号楼"
    assert by_name["L2-M001.disabled"].address == 600
    assert {p.zone for p in profile.points} == {"", "3号楼", "5号楼"}


def test_gst_rows_become_one_two_bit_state_per_device() -> None:
    profile = _modbus("gst_site_table_example")
    rows = _rows("gst_site_table_example.csv")
    assert len(profile.points) == len(rows)
    for point, (loop, device, register, slot, label, zone) in zip(profile.points, rows, strict=True):
        assert point.name == f"L{loop}-D{int(device):03}.state"
        assert point.address == int(register)
        assert point.bits is not None and (point.bits.start, point.bits.width) == (2 * int(slot), 2)
        assert point.enum == GST_STATES
        assert (point.label, point.zone) == (label, zone)
    floors = {p.label.split()[1] for p in profile.points if p.zone == "3号楼"}
    assert {"1层", "2层", "3层"} <= floors
    assert {p.zone for p in profile.points} == {"3号楼", "5号楼"}
    assert len(plan_blocks(profile)) == 1  # registers 0, 1 and 4: one read


def test_the_hand_written_demo_profile_carries_labels_too() -> None:
    profile = _modbus("notifier_demo_loop1")
    fire = next(p for p in profile.points if p.name == "L1-D002.fire")
    assert fire.label == "3号楼 1层 烟感 电梯厅" and fire.zone == ""


# -- errors -----------------------------------------------------------------------------------------
Edit = tuple[str, str] | None
NOTIFIER, GST = "notifier_site_example", "gst_site_table_example"


def _site(tmp_path: Path, stem: str, csv_edit: Edit = None, yaml_edit: Edit = None) -> Path:
    """A copy of a shipped site-table profile and its CSV, with one edit to either."""
    for ext, edit in (("csv", csv_edit), ("yaml", yaml_edit)):
        text = (SHIPPED / f"{stem}.{ext}").read_text(encoding="utf-8")
        if edit is not None:
            assert edit[0] in text, edit
            text = text.replace(edit[0], edit[1], 1)
        (tmp_path / f"{stem}.{ext}").write_text(text, encoding="utf-8")
    return tmp_path / f"{stem}.yaml"


def _error(path: Path) -> str:
    with pytest.raises(ProfileError) as caught:
        load_profile_file(path)
    return str(caught.value)


def _line_of(path: Path, text: str) -> int:
    """The last line holding `text` (an edited row may repeat the start of an earlier one)."""
    return max(n for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if text in line)


@pytest.mark.parametrize(
    ("stem", "old", "new", "expected"),
    [
        (NOTIFIER, "1,4,detector", "1,160,detector", "device: must be 1..159 (got 160)"),
        (NOTIFIER, "1,4,detector", "11,4,detector", "loop: must be 1..10 (got 11)"),
        (NOTIFIER, "1,4,detector", "1,4,sensor", "kind: 'sensor' is not one of detector, module"),
        (NOTIFIER, "1,4,detector", "1,四,detector", "device: '四' is not a whole number"),
        (NOTIFIER, "1,4,detector", "1,,detector", "device: is empty"),
        (NOTIFIER, "1,4,detector,3号楼 2层", "1,3,detector,3号楼 2层", "name: L1-D003 is already on line 6"),
        (NOTIFIER, "走廊西,3号楼", "走廊西,3号楼,,x", ": 7 cells, the header has 5 (a stray comma?)"),
        (GST, "1,5,0,4,", "1,5,0,3,", "address: holding 0 bits 6..7 are already read by L1-D004.state"),
        (GST, "1,5,0,4,", "1,5,0,8,", "slot: must be 0..7 (got 8)"),
        (GST, "1,5,0,4,", "1,5,70000,4,", "register: must be 0..9999 (got 70000)"),
    ],
    ids=["range", "loop", "word", "number", "empty", "duplicate", "cells", "same_bits", "slot", "register"],
)  # fmt: skip
def test_a_wrong_row_names_the_csv_file_and_line(
    tmp_path: Path, stem: str, old: str, new: str, expected: str
) -> None:
    path = _site(tmp_path, stem, csv_edit=(old, new))
    csv = path.with_suffix(".csv")
    message = _error(path)
    assert message.startswith(f"{csv}:{_line_of(csv, new)}")
    assert expected in message


def test_every_wrong_row_is_reported_at_once(tmp_path: Path) -> None:
    path = _site(tmp_path, NOTIFIER, csv_edit=("1,4,detector", "1,160,detector"))
    csv = path.with_suffix(".csv")
    csv.write_text(csv.read_text(encoding="utf-8").replace("2,2,detector", "2,0,detector"), encoding="utf-8")
    lines = _error(path).splitlines()
    assert [line.split(" ")[0] for line in lines] == [
        f"{csv}:{_line_of(csv, '1,160,detector')}",
        f"{csv}:{_line_of(csv, '2,0,detector')}",
    ]


def test_the_brief_example_line_14(tmp_path: Path) -> None:
    """`site.csv:14 device: must be 1..159`: the line counts the header and comment lines too."""
    rows = [f"1,{d},detector,3号楼 {d}层 烟感,3号楼" for d in range(1, 12)]
    rows[10] = "1,200,detector,3号楼 11层 烟感,3号楼"
    text = "# exported 2024-06-11\n# 3号楼\nloop,device,kind,label,zone\n" + "\n".join(rows) + "\n"
    yaml = (SHIPPED / "notifier_site_example.yaml").read_text(encoding="utf-8")
    (tmp_path / "site.csv").write_text(text, encoding="utf-8")
    (tmp_path / "site.yaml").write_text(
        yaml.replace("notifier_site_example.csv", "site.csv"), encoding="utf-8"
    )
    assert _error(tmp_path / "site.yaml") == f"{tmp_path / 'site.csv'}:14 device: must be 1..159 (got 200)"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("header", "loop,device,kind,label", "column 'zone' is missing in the header"),
        ("encoding", None, "not utf-8 text"),
        ("empty", "loop,device,kind,label,zone", "the table has a header but no rows"),
    ],
)
def test_a_table_that_cannot_be_read_says_why(
    tmp_path: Path, old: str, new: str | None, expected: str
) -> None:
    path = _site(tmp_path, NOTIFIER)
    csv = path.with_suffix(".csv")
    if old == "encoding":
        csv.write_bytes(csv.read_text(encoding="utf-8").encode("gb18030"))
    elif old == "header":
        csv.write_text(csv.read_text(encoding="utf-8").replace("loop,device,kind,label,zone", str(new)))
    else:
        csv.write_text(f"{new}\n", encoding="utf-8")
    assert expected in _error(path)


def test_an_old_gb18030_export_loads_when_the_template_says_so(tmp_path: Path) -> None:
    path = _site(tmp_path, NOTIFIER, yaml_edit=("  name: ", "  encoding: gb18030\n  name: "))
    csv = path.with_suffix(".csv")
    csv.write_bytes(csv.read_text(encoding="utf-8").encode("gb18030"))
    profile = load_profile_file(path)
    assert isinstance(profile, ModbusProfile)
    assert profile.points[1].label == "3号楼 1层 烟感 大堂"


def test_extra_spreadsheet_columns_are_ignored_and_excel_bom_is_fine(tmp_path: Path) -> None:
    path = _site(tmp_path, GST)
    csv = path.with_suffix(".csv")
    rows = csv.read_text(encoding="utf-8").splitlines()
    rows = [
        row + (",备注" if i == 1 else ",") if not row.startswith("#") else row for i, row in enumerate(rows)
    ]
    csv.write_bytes(b"\xef\xbb\xbf" + "\n".join(rows).encode("utf-8"))
    profile = load_profile_file(path)
    assert isinstance(profile, ModbusProfile) and len(profile.points) == 14


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('"(loop - 1) * 400', '"(lop - 1) * 400', "site_template.address: 'lop' is not a number column"),
        ('"(loop - 1) * 400', '"__import__(1) + (loop - 1) * 400', "Call is not allowed"),
        ('"(loop - 1) * 400', '"(loop ** 2) * 400', "only + - * // % are allowed"),
        ('"(loop - 1) * 400', '"(label - 1) * 400', "'label' is not a number column"),
        ('"L{loop}-{prefix}', '"L{lop}-{prefix}', "site_template.name: {lop} is not a column"),
        ("fault: {bit: 13}", "fault: {bitt: 13}", "site_template.points.fault.bitt: unknown key"),
        ("fault: {bit: 13}", "fault: {bit: 16}", "site_template.points.fault.bit: Input should be less than"),
        ("fault: {bit: 13}", "fault: {bit: 13, address: 5}", "points.fault.address: is set by the row"),
        ("{prefix: M, block: 200}", "{prefix: M}", "words.module: every word must carry ['block', 'prefix']"),
        ("loop: {type: int,", "loop: {type: integer,", "site_template.columns.loop: give type: int"),
        ("site_table: notifier_site_example.csv", "site_table: nope.csv", "site_table: no file"),
        ("site_table: notifier_site_example.csv\n", "", "site_table: give site_table (the CSV) and"),
    ],
    ids=["name", "call", "power", "text", "format", "typo", "bit", "by_row", "words", "type", "file", "one"],
)  # fmt: skip
def test_a_wrong_template_names_the_profile_line_and_key(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    path = _site(tmp_path, NOTIFIER, yaml_edit=(old, new))
    message = _error(path)
    assert message.startswith(f"{path}:"), message
    assert expected in message


def test_a_site_table_point_may_not_reuse_a_yaml_point_name(tmp_path: Path) -> None:
    edit = ("panel.silenced, address: 9499", "L1-D001.fire, address: 9499")
    message = _error(_site(tmp_path, NOTIFIER, yaml_edit=edit))
    assert "name: L1-D001.fire is already a point of the profile" in message


def test_a_site_copies_profile_and_table_and_overrides_the_shipped_one(tmp_path: Path) -> None:
    for ext in ("yaml", "csv"):
        shutil.copy(SHIPPED / f"gst_site_table_example.{ext}", tmp_path)
    csv = tmp_path / "gst_site_table_example.csv"
    csv.write_text(csv.read_text(encoding="utf-8") + "2,5,4,4,5号楼 4层 烟感 走廊,5号楼\n", encoding="utf-8")
    profile = ProfileLibrary([tmp_path]).get("gst_site_table_example")
    assert isinstance(profile, ModbusProfile)
    assert profile.points[-1] == ModbusPoint.model_validate(
        {"name": "L2-D005.state", "address": 4, "bits": {"start": 8, "width": 2}, "enum": GST_STATES,
         "label": "5号楼 4层 烟感 走廊", "zone": "5号楼"}
    )  # fmt: skip


# -- formulas --------------------------------------------------------------------------------------
def test_formulas_are_integer_arithmetic_over_names() -> None:
    assert evaluate("(loop - 1) * 400 + block + (device - 1)", {"loop": 3, "block": 200, "device": 7}) == 1006
    assert evaluate("14 - 2 * slot", {"slot": 7}) == 0
    assert evaluate("-a // 2 + a % 3", {"a": 7}) == -4 + 1
    assert formula_names("register") == {"register"}


@pytest.mark.parametrize(
    "text",
    ["open('x')", "a.b", "a if b else c", "a ** 2", "1.5 * a", "a / 2", "[a]", "not a", "True + a", "a +"],
)
def test_anything_but_integer_arithmetic_is_refused(text: str) -> None:
    with pytest.raises(FormulaError):
        formula_names(text)


def test_a_missing_name_or_division_by_zero_is_a_formula_error() -> None:
    with pytest.raises(FormulaError, match="no number named 'b'"):
        evaluate("a + b", {"a": 1})
    with pytest.raises(FormulaError, match="divides by zero"):
        evaluate("a // b", {"a": 1, "b": 0})
