"""The console's pure parts: the 六有 checklist, the recent-readings rings, the overview's headline."""

from __future__ import annotations

from gateway.alerts import DeviceInfo
from gateway.console.facilities import FACILITIES, check_facilities
from gateway.console.recent import RecentReadings, Sample
from gateway.console.views import headline
from gateway.model import Quality, Reading, Source
from tests.unit.test_roster import local, roster

DEVICES = [
    DeviceInfo("sunshine", "gate-n", "access_gate"),
    DeviceInfo("sunshine", "barrier-e", "plate_barrier"),
    DeviceInfo("sunshine", "fire-1", "fire_panel"),
    DeviceInfo("sunshine", "septic-1", "septic_pressure"),
    DeviceInfo("sunshine", "gen-1", "generator"),
]
HEALTHY: dict[str, dict[str, object]] = {
    "fire-1": {"L1-D001.fire": False, "L1-D001.fault": False, "L1-D001.disabled": False},
    "gen-1": {"control_mode": "auto", "engine_state": "stopped"},
}
NIGHT = local("2026-11-02T03:00")  # zhang is on the night shift of the roster


def check(
    online: dict[str, bool | None] | None = None,
    values: dict[str, dict[str, object]] | None = None,
    alarmed: frozenset[str] = frozenset(),
    on_roster: bool = True,
    devices: list[DeviceInfo] = DEVICES,
) -> dict[str, tuple[bool, str, list[tuple[str, str]]]]:
    states = online or {}
    found = check_facilities(
        devices,
        lambda e, d: states.get(d, True),
        lambda e, d: (values or HEALTHY).get(d, {}),
        lambda e, d: d in alarmed,
        roster() if on_roster else None,
        NIGHT,
    )
    return {f.key: (f.ok, f.reason, [(d.device, d.reason) for d in f.devices if not d.ok]) for f in found}


def test_six_items_all_green_when_everything_is_healthy() -> None:
    assert [f.key for f in FACILITIES] == ["access", "anpr", "fire", "septic", "generator", "duty"]
    assert all(ok for ok, _, _ in check().values())


def test_each_item_turns_red_for_its_own_reason() -> None:
    assert check(online={"gate-n": False})["access"] == (False, "", [("gate-n", "offline")])
    assert check(online={"barrier-e": None})["anpr"] == (False, "", [("barrier-e", "unknown")])
    fault = {**HEALTHY, "fire-1": {"L1-D001.fire": False, "L1-D001.fault": True}}
    assert check(values=fault)["fire"] == (False, "", [("fire-1", "fault")])
    disabled = {**HEALTHY, "fire-1": {"L2-007.state": "disabled"}}  # GST-style point states
    assert check(values=disabled)["fire"] == (False, "", [("fire-1", "disabled")])
    assert check(alarmed=frozenset({"septic-1"}))["septic"] == (False, "", [("septic-1", "alarm")])
    manual = {**HEALTHY, "gen-1": {"control_mode": "manual"}}
    assert check(values=manual)["generator"] == (False, "", [("gen-1", "not_auto")])
    assert check(alarmed=frozenset({"gen-1"}))["generator"][2] == [("gen-1", "alarm")]
    assert check(on_roster=False)["duty"] == (False, "nobody_on_duty", [])
    # An alarm on a gate does not make 有门禁 red: the item asks only that gates are online.
    assert check(alarmed=frozenset({"gate-n"}))["access"][0]


def test_an_estate_without_the_family_does_not_have_it() -> None:
    found = check(devices=[DeviceInfo("maple", "gate-b", "access_gate")])
    assert found["access"][0]
    assert found["anpr"] == (False, "no_devices", [])
    assert found["generator"] == (False, "no_devices", [])


def reading(point: str, value: float | bool | str, ts: float, quality: Quality = Quality.GOOD) -> Reading:
    return Reading(int(ts * 1e9), "sunshine", "septic-1", point, value, "kPa", quality, Source.MODBUS)


def test_rings_keep_changes_and_a_sample_every_interval_within_bounds() -> None:
    recent = RecentReadings(per_point=3, min_interval=5.0, max_series=2)
    for k in range(20):  # a steady value polled every second: one sample per 5 s
        recent.add(reading("pressure", 3.0, 1000.0 + k))
    unit, samples = recent.series("sunshine", "septic-1", "pressure", 0)
    assert unit == "kPa"
    # 1000, 1005, 1010, 1015 sampled, the ring of 3 keeps the last three; the latest value (1019, not
    # sampled) ends the series so a chart reaches "now".
    assert [s.ts for s in samples] == [1005.0, 1010.0, 1015.0, 1019.0]
    recent.add(reading("pressure", 3.5, 1020.0))  # a change is always kept
    assert recent.series("sunshine", "septic-1", "pressure", 1016)[1] == [Sample(1020.0, 3.5, "good")]
    assert recent.latest("sunshine", "septic-1")["pressure"].value == 3.5
    recent.add(reading("temperature", 20.0, 1020.0))
    recent.add(reading("level", 1.0, 1020.0))  # a third series: over max_series, counted, not kept
    assert recent.dropped_series == 1
    assert recent.points("sunshine", "septic-1") == ["pressure", "temperature"]


def test_overview_headline_per_family() -> None:
    values = {"control_mode": "auto", "engine_state": "running", "fuel_level": 80.25, "model": 7320}
    latest = {p: Sample(1.0, v, "good") for p, v in values.items()}
    assert headline("generator", latest) == [
        ("control_mode", "auto"), ("engine_state", "running"), ("fuel_level", "80.25")
    ]  # fmt: skip
    fire = {"L1-D001.fire": Sample(1, True, "good"), "L1-D002.fire": Sample(1, False, "good"),
            "L1-D002.fault": Sample(1, 1, "good"), "L3-9.state": Sample(1, "disabled", "good")}  # fmt: skip
    assert headline("fire_panel", fire) == [("fire.fire", "1"), ("fire.fault", "1"), ("fire.disabled", "1")]
    odd = {"a": Sample(1, 1, "good"), "b": Sample(2, 2, "good")}  # a vendor profile naming points otherwise
    assert headline("access_gate", odd) == [("b", "2")]
