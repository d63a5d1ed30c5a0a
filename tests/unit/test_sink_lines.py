"""The line-protocol contract (gateway/sinks/lines.py): every kind of point, escaping, unicode, NaN."""

from __future__ import annotations

import math

import pytest
from influxdb_client.client.write.point import Point

from gateway.alerts import DeviceInfo, Transition
from gateway.incidents.manager import IncidentChange
from gateway.model import (
    DeviceEvent,
    Incident,
    IncidentState,
    Priority,
    Quality,
    Reading,
    TimelineEntry,
)
from gateway.sinks.lines import LineEncoder, encode_line

TS = 1_790_000_000_123_456_789


@pytest.fixture
def encoder() -> LineEncoder:
    return LineEncoder.of([
        DeviceInfo("sunshine", "gen-1", "generator"),
        DeviceInfo("sunshine", "gate-n", "access_gate"),
        DeviceInfo("sunshine", "cam-1", "plate_barrier"),
        DeviceInfo("阳光花园", "消防主机 1号", "fire_panel"),
    ])  # fmt: skip


def test_reading_value_kinds(encoder: LineEncoder) -> None:
    def line(value: float | int | bool | str, quality: Quality = Quality.GOOD) -> str | None:
        return encoder.reading(Reading(TS, "sunshine", "gen-1", "rpm", value, quality=quality))

    assert line(1500.5) == f"generator,device=gen-1,estate=sunshine,point=rpm,quality=good value=1500.5 {TS}"
    assert line(1500) == f"generator,device=gen-1,estate=sunshine,point=rpm,quality=good value=1500.0 {TS}"
    assert line(True) == f"generator,device=gen-1,estate=sunshine,point=rpm,quality=good value=1.0 {TS}"
    assert line(False, Quality.STALE).endswith(f"quality=stale value=0.0 {TS}")  # type: ignore[union-attr]
    assert line("auto") == f'generator,device=gen-1,estate=sunshine,point=rpm,quality=good text="auto" {TS}'
    assert line(1e20) == f"generator,device=gen-1,estate=sunshine,point=rpm,quality=good value=1e+20 {TS}"


def test_unknown_device_is_written_as_reading(encoder: LineEncoder) -> None:
    line = encoder.reading(Reading(TS, "sunshine", "ghost", "x", 1.0))
    assert line is not None and line.startswith("reading,device=ghost,")


def test_non_finite_values_are_dropped_and_counted(encoder: LineEncoder) -> None:
    assert encoder.reading(Reading(TS, "sunshine", "gen-1", "rpm", math.nan)) is None
    assert encoder.reading(Reading(TS, "sunshine", "gen-1", "rpm", math.inf)) is None
    assert encoder.kpi("sunshine", "day", "equipment_intact_rate", -math.inf, TS) is None
    line = encoder.gateway("gw-1", {"lag_s": math.nan, "queue_depth": 3}, TS)
    assert line == f"gateway,gateway_id=gw-1 queue_depth=3.0 {TS}"
    assert encoder.dropped_nonfinite == 4
    assert encode_line("m", {}, {"a": math.nan, "b": 1}, TS) == (f"m b=1i {TS}", 1)


def test_unicode_labels_and_plates(encoder: LineEncoder) -> None:
    line = encoder.reading(Reading(TS, "阳光花园", "消防主机 1号", "3号楼 2层 烟感", True))
    assert line == (
        "fire_panel,device=消防主机\\ 1号,estate=阳光花园,point=3号楼\\ 2层\\ 烟感,quality=good "
        f"value=1.0 {TS}"
    )
    event = DeviceEvent(TS, "sunshine", "cam-1", "plate_visitor", {"plate": "粤B·12345", "direction": "in"})
    assert encoder.event(event) == (
        "device_event,device=cam-1,direction=in,estate=sunshine,family=plate_barrier,kind=plate_visitor "
        f'count=1i,plate="粤B·12345" {TS}'
    )


@pytest.mark.parametrize(
    "text",
    ["a,b", "a b", "a=b", 'say "hi"', "back\\slash", "trailing\\", "tab\there", "new\nline", "汉字 ,=", ""],
)
def test_escaping_matches_influxdb_client_point(text: str) -> None:
    """Tags, measurement and field keys are escaped exactly as influxdb-client's Point does it."""
    # A field key ending in a backslash: Point writes `key\=`, which parsers read as an escaped "=";
    # ours adds a space, as Point does for tag values. Compared elsewhere.
    key = "f " + text if not text.endswith("\\") else "f"
    fields = {key: 1.5, "s": text.replace("\n", " ")}
    ours, _ = encode_line("m " + text, {"tag,key": text, "estate": "e1"}, fields, TS)
    reference = Point("m " + text).tag("tag,key", text).tag("estate", "e1")
    for key, value in fields.items():
        reference = reference.field(key, value)
    assert ours == reference.time(TS).to_line_protocol()


def test_trailing_backslash_in_a_key_is_kept_apart_from_the_equals_sign() -> None:
    assert encode_line("m", {"t\\": "v\\"}, {"f\\": 1}, 5) == ("m,t\\ =v\\  f\\ =1i 5", 0)


def test_string_field_escaping_and_newlines() -> None:
    line, _ = encode_line("m", {}, {"text": 'a "q" \\ b\nc'}, TS)
    assert line == f'm text="a \\"q\\" \\\\ b\\nc" {TS}'
    assert "\n" not in (line or "")


def test_device_event_tags_and_fields(encoder: LineEncoder) -> None:
    event = DeviceEvent(
        TS, "sunshine", "cam-1", "plate_unknown",
        {"plate": "粤B12345", "direction": "out", "lane": 2, "decision": "hold", "category": "unknown",
         "confidence": 0.93, "detail": "not registered", "record_id": 17, "card": ""},
    )  # fmt: skip
    assert encoder.event(event) == (
        "device_event,category=unknown,decision=hold,device=cam-1,direction=out,estate=sunshine,"
        f'family=plate_barrier,kind=plate_unknown,lane=2 confidence=0.93,count=1i,plate="粤B12345" {TS}'
    )
    card = DeviceEvent(TS, "sunshine", "gate-n", "card_denied", {"card": "0012345678", "reader": 1,
                                                                  "reason": "no_permission"})  # fmt: skip
    assert encoder.event(card) == (
        "device_event,device=gate-n,estate=sunshine,family=access_gate,kind=card_denied,reader=1,"
        f'reason=no_permission card="0012345678",count=1i {TS}'
    )


def _transition(active: bool, value: object, reason: str = "") -> Transition:
    return Transition(
        "sunshine/gen-1/gen_low_fuel", "sunshine", "gen-1", "gen_low_fuel", Priority.HIGH, active,
        1_790_000_000.25, value, "燃油低", "fuel low", reason=reason,  # type: ignore[arg-type]
    )  # fmt: skip


def test_alarm_transitions(encoder: LineEncoder) -> None:
    ts = 1_790_000_000_250_000_000
    assert encoder.transition(_transition(True, 12)) == (
        f"alarm,device=gen-1,estate=sunshine,priority=high,rule=gen_low_fuel,state=active "
        f"active=1i,count=1i,value=12.0 {ts}"
    )
    assert encoder.transition(_transition(False, "ok", "suppressed")) == (
        f"alarm,device=gen-1,estate=sunshine,priority=high,reason=suppressed,rule=gen_low_fuel,state=normal "
        f"active=0i,count=1i {ts}"
    )


def test_incident_lifecycle_points(encoder: LineEncoder) -> None:
    opened = TimelineEntry(1000.0, "opened")
    incident = Incident(
        id=42, estate="sunshine", device="gen-1", rule="gen_low_fuel", alarm_key="k", priority=Priority.HIGH,
        state=IncidentState.OPEN, title="t", opened_at=1000.0, updated_at=1000.0, timeline=[opened],
    )  # fmt: skip
    new = encoder.incident(IncidentChange(incident, new=True, entries=[opened]))
    assert new == ["incident,estate=sunshine,event=opened,priority=high,rule=gen_low_fuel count=1i,id=42i "
                   "1000000000000"]  # fmt: skip
    ack = TimelineEntry(1090.5, "acknowledged", "alice")
    released = TimelineEntry(1090.5, "alarm_returned_to_normal")
    lines = encoder.incident(IncidentChange(incident, entries=[ack, released]))
    assert lines[0] == (
        "incident,estate=sunshine,event=acknowledged,priority=high,rule=gen_low_fuel "
        "count=1i,id=42i,tta_s=90.5 1090500000000"
    )
    assert "event=alarm_returned_to_normal" in lines[1] and "tta_s" not in lines[1]
    resolved = encoder.incident(IncidentChange(incident, entries=[TimelineEntry(1600.0, "resolved", "bob")]))
    assert resolved[0].endswith("count=1i,id=42i,ttr_s=600.0 1600000000000")


def test_kpi_and_snapshots(encoder: LineEncoder) -> None:
    assert encoder.kpi("sunshine", "rolling_24h", "equipment_intact_rate", 0.987, TS) == (
        f"kpi,estate=sunshine,kpi=equipment_intact_rate,period=rolling_24h value=0.987 {TS}"
    )
    assert encoder.incidents_open("sunshine", "critical", 2, TS) == (
        f"incidents_open,estate=sunshine,priority=critical count=2i {TS}"
    )
    health = {"gateway_id": "gw-1", "queue_depth": 4, "lag_s": 0.5, "mqtt_connected": True, "x": None}
    assert encoder.gateway("gw-1", health, TS) == f"gateway,gateway_id=gw-1 lag_s=0.5,queue_depth=4.0 {TS}"
