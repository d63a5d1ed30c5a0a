"""The live feed's hand-built messages say exactly what the API's pydantic models say.

`gateway.api.feed.message` builds an incident message by hand (issue 9: the pydantic route cost 25 µs an
incident); `validated_message` is the same item through `IncidentOut`/`TimelineOut`. Every field, value and
type must agree, and a field added to `IncidentOut` must be added to the hand-built message too.
"""

from __future__ import annotations

import json
import math
from enum import Enum

import pytest

from gateway.api.feed import message, validated_message, wire
from gateway.api.schemas import IncidentOut
from gateway.incidents import DeviceState, IncidentUpdate, LiveItem
from gateway.model import Incident, IncidentState, Priority, TimelineEntry

T0 = 1_795_500_000.125


def _incident(**changes: object) -> Incident:
    incident = Incident(
        id=41,
        estate="e1",
        device="lvl-001",
        rule="septic_level_high",
        alarm_key="e1/lvl-001/septic_level_high",
        priority=Priority.HIGH,
        state=IncidentState.OPEN,
        title="化粪池液位高 152.5 kPa",
        opened_at=T0,
        updated_at=T0 + 0.5,
        title_en="septic level high 152.5 kPa",
    )
    for name, value in changes.items():
        setattr(incident, name, value)
    return incident


class Mode(Enum):
    AUTO = "auto"


CASES = {
    "new and open": (_incident(), True, (TimelineEntry(T0, "opened", "system", {"value": 152.5}),)),
    "acknowledged, shelved, assigned": (
        _incident(
            state=IncidentState.ACKNOWLEDGED,
            acknowledged_at=T0 + 3,
            acknowledged_by="王伟",
            shelved_until=T0 + 600,
            assignee="li.na",
            escalation_level=2,
            chattering=True,
        ),
        False,
        (
            TimelineEntry(T0 + 3, "acknowledged", "王伟", {"source": "console", "note": "已到现场"}),
            TimelineEntry(T0 + 4, "shelved", "王伟", {"until": T0 + 600, "nested": {"a": [1, 2.5, None]}}),
        ),
    ),
    "latched, condition gone": (_incident(active=False, latched=True, first_out=True), False, ()),
    "resolved as a false alarm": (
        _incident(state=IncidentState.RESOLVED, active=False, resolved_at=T0 + 90, cause="false_alarm"),
        False,
        (TimelineEntry(T0 + 90, "resolved", "li.na", {"cause": "false_alarm", "mode": Mode.AUTO}),),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_an_incident_message_is_what_the_pydantic_models_make_of_it(case: str) -> None:
    incident, new, entries = CASES[case]
    item = LiveItem(7, incident.estate, IncidentUpdate(incident, new, entries))
    expected = json.loads(json.dumps(validated_message(item), ensure_ascii=False))
    sent = json.loads(wire(item))
    assert sent == expected
    for key in ("opened_at", "updated_at"):  # floats stay floats, to the last digit
        assert repr(sent["incident"][key]) == repr(expected["incident"][key])
    assert "化粪池" in wire(item)  # UTF-8, not \\u escapes


def test_every_field_of_IncidentOut_is_in_the_hand_built_message() -> None:
    incident, new, entries = CASES["new and open"]
    built = message(LiveItem(1, "e1", IncidentUpdate(incident, new, entries)))
    assert list(built["incident"]) == [name for name in IncidentOut.model_fields if name != "timeline"]


def test_a_detail_orjson_cannot_encode_goes_the_pydantic_way() -> None:
    entries = (TimelineEntry(T0, "note", "ops", {"tags": {"pump"}}),)  # a set: orjson refuses it
    item = LiveItem(3, "e1", IncidentUpdate(_incident(), False, entries))
    assert json.loads(wire(item))["entries"][0]["detail"] == {"tags": ["pump"]}


def test_a_device_message_keeps_its_non_finite_values_out_of_the_json() -> None:
    values = {"rpm": 1500, "temp": math.nan, "mode": "auto"}
    state = DeviceState("e1", "gen-1", True, 1, Priority.CRITICAL, values, T0)
    sent = json.loads(wire(LiveItem(9, "e1", state)))
    assert sent == {
        "type": "device",
        "seq": 9,
        "estate": "e1",
        "device": "gen-1",
        "online": True,
        "alarms": 1,
        "priority": "critical",
        "values": {"rpm": 1500, "temp": None, "mode": "auto"},
        "ts": T0,
    }
