"""MqttCommander without a broker: the message it would send, refusals, and "failed" while the ingress
is not connected (a real MqttIngress that was never started)."""

from __future__ import annotations

import orjson

from drivers.mqtt_commands import MqttCommander, topic_base
from drivers.mqtt_device import MqttJsonDecoder
from drivers.profiles import MqttProfile, ProfileLibrary
from drivers.stats import DeviceStats
from drivers.transports.mqtt import BrokerSettings, MqttIngress, Route
from drivers.watch import PointWatch
from gateway.model import Reading, SystemClock

TOPIC = "estate/sunshine/access_gate/gate-n/+"


def _gate() -> MqttProfile:
    profile = ProfileLibrary().get("generic_access_gate")
    assert isinstance(profile, MqttProfile)
    return profile


def _commander(variables: dict[str, str | int | bool] | None = None) -> MqttCommander:
    profile = _gate()
    route = Route(TOPIC, MqttJsonDecoder("sunshine", "gate-n", profile), DeviceStats(), watch=PointWatch())
    ingress = MqttIngress(BrokerSettings("127.0.0.1", 1, "never-connects"), [route], SystemClock())
    assert route.watch is not None
    return MqttCommander("gate-n", profile, ingress, route.watch, TOPIC, variables)


def test_topic_base_drops_trailing_wildcards_only() -> None:
    assert topic_base(TOPIC) == "estate/sunshine/access_gate/gate-n"
    assert topic_base("uhppoted/gateway/events/#") == "uhppoted/gateway/events"
    assert topic_base("frigate/tracked_object_update") == "frigate/tracked_object_update"


def test_the_message_fills_the_template_and_site_vars_win() -> None:
    commander = _commander({"door": 2})
    assert commander.commands == ["open_door"]
    topic, payload = commander.message(_gate().commands["open_door"], "req-1")
    assert topic == "estate/sunshine/access_gate/gate-n/command"
    assert orjson.loads(payload) == {"command": "open_door", "door": 2, "request_id": "req-1"}
    _, default = _commander().message(_gate().commands["open_door"], "req-2")
    assert orjson.loads(default)["door"] == 1


async def test_a_command_not_in_the_profile_is_refused() -> None:
    result = await _commander().execute("close_door")
    assert result.outcome == "refused" and "not a command of profile generic_access_gate" in result.detail


async def test_a_command_while_disconnected_fails_without_waiting() -> None:
    result = await _commander().execute("open_door")
    assert result.outcome == "failed"
    assert "not connected to the broker" in result.detail


async def test_the_watch_hands_only_later_values_of_the_point_to_a_waiter() -> None:
    watch = PointWatch()
    watch.update([Reading(0, "e", "d", "door_open", True)])
    with watch.next_values("door_open") as values:
        assert values.empty()  # the latest value is not a reply
        watch.update([Reading(1, "e", "d", "tamper", True), Reading(1, "e", "d", "door_open", False)])
        assert values.get_nowait() is False and values.empty()
    watch.update([Reading(2, "e", "d", "door_open", True)])  # nobody waits: only the latest is kept
    assert watch.latest == {"door_open": True, "tamper": True}
