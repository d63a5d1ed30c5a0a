"""Vehicle registry decisions, the plate classifier and the HTTP-push decoders (shipped profiles)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest

from drivers.anpr.classifier import PlateClassifier
from drivers.anpr.push import PushDecoder
from drivers.anpr.registry import Category, Vehicle, VehicleRegistry, normalize_plate
from drivers.errors import DecodeError
from drivers.profiles import HttpPushProfile, ProfileError, ProfileLibrary, load_profile_file
from drivers.sim.anpr_camera import PushCameraSimulator
from gateway.config import parse_config
from gateway.model import DeviceEvent, Source
from gateway.runtime.anpr import build_registry

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
HOUR = 3600.0


def registry(unknown_entry: str = "hold") -> VehicleRegistry:
    return VehicleRegistry(
        [
            Vehicle("粤B12345", Category.RESIDENT, "3-1502 张先生"),
            Vehicle("粤A88888", Category.VISITOR, "访客 5-201", T0 - HOUR, T0 + HOUR),
            Vehicle("粤B66666", Category.BLACKLISTED, "欠费拖车"),
            Vehicle("粤B99999", Category.RESIDENT, "3-101"),
            Vehicle("粤B99999", Category.BLACKLISTED, "被盗车辆"),
        ],
        unknown_entry=unknown_entry,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("raw", "plate"),
    [
        ("粤b·12345", "粤B12345"),
        ("粤Ｂ１２３４５", "粤B12345"),
        (" 粤B 12345 ", "粤B12345"),
        ("_无_", ""),
        ("无牌", ""),
    ],
)
def test_plates_have_one_spelling(raw: str, plate: str) -> None:
    assert normalize_plate(raw) == plate


def test_decisions_follow_the_estate_rules() -> None:
    reg = registry()
    resident = reg.decide("粤b·12345", "out", T0)
    assert (resident.category, resident.open, resident.kind) == (Category.RESIDENT, True, "plate_resident")
    assert "3-1502" in resident.detail
    visitor = reg.decide("粤A88888", "in", T0)
    assert (visitor.category, visitor.open) == (Category.VISITOR, True)
    expired = reg.decide("粤A88888", "out", T0 + 2 * HOUR)
    assert (expired.category, expired.open) == (Category.UNKNOWN, False)
    assert "not valid now" in expired.detail and "may not leave" in expired.detail
    early = reg.decide("粤A88888", "in", T0 - 2 * HOUR)
    assert early.category is Category.UNKNOWN
    banned = reg.decide("粤B66666", "in", T0)
    assert (banned.category, banned.open, banned.kind) == (Category.BLACKLISTED, False, "plate_blacklisted")
    # the blacklist wins over a resident entry (a stolen car keeps its resident's plate)
    assert reg.decide("粤B99999", "in", T0).category is Category.BLACKLISTED
    unknown_in = reg.decide("沪C00001", "in", T0)
    assert (unknown_in.category, unknown_in.open) == (Category.UNKNOWN, False)
    assert "guard" in unknown_in.detail
    unknown_out = reg.decide("沪C00001", "out", T0)
    assert unknown_out.open is False and "may not leave" in unknown_out.detail
    assert reg.decide("", "in", T0).detail.startswith("no plate read")


def test_unknown_entry_policy_open_still_holds_exits() -> None:
    reg = registry("open")
    assert reg.decide("沪C00001", "in", T0).open is True
    assert reg.decide("沪C00001", "out", T0).open is False


def test_camera_lists_count_only_for_plates_the_registry_does_not_know() -> None:
    reg = registry()
    assert reg.decide("沪C00001", "in", T0, camera_list="block").category is Category.BLACKLISTED
    assert reg.decide("沪C00001", "in", T0, camera_list="allow").category is Category.RESIDENT
    assert reg.decide("粤B12345", "in", T0, camera_list="block").category is Category.RESIDENT


def test_registry_edits_and_pruning() -> None:
    reg = registry()
    reg.add(Vehicle("粤C11111", Category.VISITOR, "快递", T0, T0 + 60))
    assert reg.decide("粤C11111", "in", T0 + 30).open
    assert reg.prune(T0 + 61) == 1
    assert reg.decide("粤C11111", "in", T0 + 30).category is Category.UNKNOWN
    assert reg.remove("粤b12345", Category.RESIDENT) == 1
    assert reg.decide("粤B12345", "in", T0).category is Category.UNKNOWN
    with pytest.raises(ValueError, match="not a plate"):
        reg.add(Vehicle("无牌", Category.RESIDENT))


def test_classifier_prefers_the_lane_direction_and_keeps_attributes() -> None:
    attributes = {"plate": "沪C00001", "direction": "forward", "confidence": 91}
    event = DeviceEvent(int(T0 * 1e9), "sunshine", "cam-1", "plate_read", attributes, Source.MQTT)
    verdict = PlateClassifier(registry()).classify(event)
    assert verdict.event.kind == "plate_unknown"
    assert verdict.event.attributes["direction"] == "in"
    assert verdict.event.attributes["confidence"] == 91
    assert verdict.event.attributes["decision"] == "hold"
    exit_lane = PlateClassifier(registry(), lane_direction="out").classify(event)
    assert exit_lane.event.attributes["direction"] == "out"  # the default rule plate_unknown_exit matches


def test_config_registry_uses_the_estate_timezone() -> None:
    config = parse_config(
        """
estates:
  - id: sunshine
    name: {zh: 阳光花园, en: Sunshine Garden}
    vehicles:
      residents: [{plate: 粤B12345, label: 3-1502}]
      visitors:
        - {plate: 粤A88888, label: 访客, valid_from: 2026-11-23T09:00:00, valid_until: 2026-11-23T11:00:00}
      blacklist: [{plate: 粤B66666, label: 欠费}]
""",
        "site.yaml",
        {},
    )
    reg = build_registry(config.estates[0])
    assert reg.decide("粤A88888", "in", T0).open  # 10:00 Shanghai is inside 09:00-11:00 local
    assert not reg.decide("粤A88888", "in", T0 + 1.5 * HOUR).open


def test_visitor_pass_needs_an_end() -> None:
    with pytest.raises(Exception, match="needs valid_until"):
        parse_config(
            """
estates:
  - id: sunshine
    name: {zh: 阳光花园, en: Sunshine Garden}
    vehicles: {visitors: [{plate: 粤A88888}]}
""",
            "site.yaml",
            {},
        )


# -- HTTP push decoders against the simulator's documents ------------------------------------------
def decoder(name: str) -> PushDecoder:
    profile = ProfileLibrary().get(name)
    assert isinstance(profile, HttpPushProfile)
    return PushDecoder("sunshine", "cam-1", profile, "Asia/Shanghai")


def test_alphadigi_document_decodes_to_ground_truth() -> None:
    camera = PushCameraSimulator("http://x", "/p", "token", "alphadigi", serial="SN-1")
    doc = camera.payload("粤Z9065澳", at=T0, color="green", confidence=93, record=21085, offline=True)
    read = decoder("alphadigi_http").decode(orjson.dumps(doc), 0)
    assert read.event.kind == "plate_read" and read.event.source is Source.HTTP
    assert read.event.ts_ns == int(T0) * 10**9
    attrs = read.event.attributes
    assert (attrs["plate"], attrs["color"], attrs["confidence"]) == ("粤Z9065澳", "green", 93)
    assert attrs["offline_resend"] is True and read.offline
    assert read.record == "SN-1/21085"


def test_dahua_document_decodes_local_time_direction_and_block_list() -> None:
    camera = PushCameraSimulator("http://x", "/p", "token", "dahua")
    doc = camera.payload("粤B12345", at=T0 + 0.345, color="yellow", direction="out", block_listed=True)
    read = decoder("dahua_itc_http").decode(orjson.dumps(doc), 0)
    attrs = read.event.attributes
    assert read.event.ts_ns == pytest.approx(int((T0 + 0.345) * 1e9), abs=1e6)
    assert (attrs["direction"], attrs["camera_list"], attrs["color"]) == ("out", "block", "yellow")
    assert read.record == "粤B12345/2026-11-23 10:00:00.345"
    assert not read.offline


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "bad_json"),
        (b"[1, 2]", "not_object"),
        (b'{"AlarmInfoPlate": {"serialno": "x"}}', "missing_field"),
        (b'{"AlarmInfoPlate": {"serialno": "x", "result": {"PlateResult": {"license": 7}}}}', "bad_type"),
        (b"x" * (5 * 1024 * 1024), "too_large"),
    ],
)
def test_bad_push_documents_name_their_problem(body: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        decoder("alphadigi_http").decode(body, 0)
    assert info.value.reason == reason


def test_push_profile_errors_are_precise(tmp_path: Path) -> None:
    path = tmp_path / "cam.yaml"
    path.write_text(
        "protocol: http_push\nfamily: plate_barrier\nplate: a.b\nreply_open: {}\nreply_hold: {}\n"
        "values: {colour: {'1': blue}}\n",
        encoding="utf-8",
    )
    with pytest.raises(ProfileError, match="values given for \\['colour'\\]"):
        load_profile_file(path)
    path.write_text("protocol: http_push\nfamily: generator\nplate: a\nreply_open: {}\nreply_hold: {}\n")
    with pytest.raises(ProfileError, match="for plate_barrier cameras"):
        load_profile_file(path)
    path.write_text(
        "protocol: http_push\nfamily: plate_barrier\nplate: a\nreply_open: {}\nreply_hold: {}\nplat: x\n"
    )
    with pytest.raises(ProfileError, match=r"cam.yaml:6 plat: unknown key"):
        load_profile_file(path)
