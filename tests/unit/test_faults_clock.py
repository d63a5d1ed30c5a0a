"""NTP steps: the wall clock jumps ±1 h while monotonic time runs on (ManualClock.step_wall).

Intended behaviour, asserted here:
- on-delays, off-delays and heartbeat absence run on monotonic time: a step neither fires nor delays them;
- escalation steps are due in wall time: a backwards step delays a step by at most the step, and never
  sticks it; a forward step fires what became due at once, and each step once;
- a shelf expires in wall time: a backwards step lengthens it by at most the step;
- no negative durations: incident tta/ttr (sink lines, KPI), KPI time weighting, sink lag.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

import pytest

from gateway.alerts import AlertEngine, DeviceInfo, Transition
from gateway.alerts.rules import load_default_rules, merge_rules
from gateway.config.kpi import KpiConfig
from gateway.config.schema import InfluxConfig
from gateway.escalation.delivery import AttemptRecord
from gateway.escalation.engine import Escalator, EstateInfo
from gateway.escalation.policy import PolicyBook, load_default_policies, merge_policies
from gateway.escalation.types import Notification, Person
from gateway.incidents import Grouping, IncidentChange, IncidentService
from gateway.kpi import KpiEngine, KpiEstate
from gateway.model import ManualClock, Priority, Reading
from gateway.sinks.influx import InfluxSink
from gateway.sinks.lines import LineEncoder
from gateway.store import SqliteStore
from tests.unit.test_engine import Timeline, reading, rule
from tests.unit.test_kpi_engine import ESTATE, GATE, Day, acked, incident, local, opened, resolved

HOUR = 3600.0
T0 = 1_800_000_000.0
PEOPLE = {
    "control_room": [Person("li", "李值班")],
    "duty_manager": [Person("wang", "王经理")],
    "estate_manager": [Person("zhao", "赵项目经理")],
    "fire_liaison": [Person("sun", "孙消防联络")],
}


class Rig:
    """The incident service and the escalation engine on SQLite, with a recording channel."""

    def __init__(self, tmp_path: Path, clock: ManualClock) -> None:
        self.path, self.clock = tmp_path / "esc.db", clock
        self.sent: list[tuple[float, str, int]] = []  # (wall time, person, step)

    async def start(self) -> tuple[IncidentService, Escalator]:
        store = SqliteStore(self.path)
        await store.open()
        service = IncidentService(
            store, self.clock, grouping=Grouping(correlation_window=0, flood_count=1000)
        )
        await service.start()

        async def send(
            notification: Notification, person: Person, channels: Sequence[str]
        ) -> list[AttemptRecord]:
            self.sent.append((self.clock.now(), person.id, notification.step))
            return [AttemptRecord(channels[0], "sent", "", self.clock.now())]

        escalator = Escalator(
            service, PolicyBook(merge_policies(load_default_policies(), [])),
            lambda estate, target, at: list(PEOPLE.get(target, [])), send, self.clock,
            {"sunshine": EstateInfo("阳光花园", "Sunshine Garden")}, {}, ack_url=lambda i, p: None,
        )  # fmt: skip
        return service, escalator


def fire(ts: float) -> Transition:
    key = "sunshine/fire-1/fire_point_fire/L1-D002.fire"
    return Transition(
        key, "sunshine", "fire-1", "fire_point_fire", Priority.CRITICAL, True, ts, 1, "火警", "FIRE"
    )


@pytest.mark.parametrize("step", [-HOUR, HOUR])
def test_on_and_off_delays_ignore_wall_steps(step: float) -> None:
    t = Timeline(
        [
            rule(
                id="hi",
                kind="threshold",
                family="generator",
                point="p",
                op=">",
                limit=5,
                on_delay=5,
                off_delay=3,
            )
        ]
    )
    t.at(0, reading("p", 9))
    t.clock.step_wall(step)
    assert t.at(4.9) == []
    [raised] = t.at(5.0)
    assert raised.active
    t.at(6, reading("p", 1))
    t.clock.step_wall(-step)  # and back again (NTP corrects a wrong step)
    assert t.at(8.9) == []
    [cleared] = t.at(9.0)
    assert not cleared.active


@pytest.mark.parametrize("step", [-HOUR, HOUR])
def test_heartbeat_absence_ignores_wall_steps(step: float) -> None:
    devices = [DeviceInfo("e1", "g1", "access_gate", heartbeat_timeout=10)]
    t = Timeline(merge_rules(load_default_rules(), []), devices)
    t.at(0, reading("heartbeat", True, "g1"))
    t.clock.step_wall(step)
    assert t.at(5, reading("heartbeat", True, "g1")) == []  # a forward step is not an hour of silence
    assert t.at(15) == []
    [offline] = t.at(15.1)  # a backward step does not hide a real absence either
    assert offline.rule == "offline_access_gate" and offline.active


async def test_escalation_backwards_step_delays_by_at_most_the_step(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    rig = Rig(tmp_path, clock)
    service, esc = await rig.start()
    await service.apply([fire(T0)])
    await esc.run_once()
    assert [s[2] for s in rig.sent] == [0]
    clock.advance(30)
    clock.step_wall(-HOUR)  # the next step (due at T0 + 60 s wall) is now an hour and 30 s away
    fired_at: float | None = None
    elapsed = 0.0
    for _ in range(400):  # bounded: 400 × 10 s of monotonic time
        clock.advance(10)
        elapsed += 10
        await esc.run_once()
        if len(rig.sent) > 1:
            fired_at = elapsed
            break
    assert fired_at is not None, "a backwards step must not stick the ladder"
    assert fired_at <= 30 + HOUR + 10  # due 30 s after the step, delayed by at most the step (1 h)
    assert [s[2] for s in rig.sent] == [0, 1]
    print(f"\nclock: escalation step 1 after a -1 h step fired {fired_at:.0f} s later (30 s + step)")


async def test_escalation_forward_step_fires_what_became_due_once(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    rig = Rig(tmp_path, clock)
    service, esc = await rig.start()
    [opened_] = await service.apply([fire(T0)])
    await esc.run_once()
    clock.advance(5)
    clock.step_wall(HOUR)  # every step of the ladder is due now, the repeating last one included
    for _ in range(3):
        await esc.run_once()
    steps = [s[2] for s in rig.sent]
    assert steps.count(0) == 1 and steps.count(1) == 1  # each once, not once per missed interval
    assert steps.count(2) <= 2  # the last step and, at most, one repeat planned from the new "now"
    before = len(rig.sent)
    clock.advance(10)
    await esc.run_once()
    assert len(rig.sent) == before  # no storm afterwards
    incident_ = await service.get(opened_.incident.id)
    assert incident_ is not None and incident_.escalation_level == 3


async def test_shelf_expiry_after_wall_steps(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    rig = Rig(tmp_path, clock)
    service, _ = await rig.start()
    [opened_] = await service.apply([fire(T0)])
    iid = opened_.incident.id
    await service.shelve(iid, "li", 10, "maintenance")
    clock.step_wall(-HOUR)
    clock.advance(601)
    await service.expire_shelves()
    shelved = await service.get(iid)
    assert shelved is not None and shelved.shelved_until is not None  # lengthened by the step...
    clock.advance(HOUR)
    await service.expire_shelves()
    unshelved = await service.get(iid)
    assert unshelved is not None and unshelved.shelved_until is None  # ...and by no more
    await service.shelve(iid, "li", 10, "again")
    clock.step_wall(HOUR)  # forward: the shelf runs out at once (the safe side: alarms come back)
    await service.expire_shelves()
    again = await service.get(iid)
    assert again is not None and again.shelved_until is None


async def test_tta_and_ttr_never_negative_after_a_backwards_step(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    rig = Rig(tmp_path, clock)
    service, _ = await rig.start()
    [opened_] = await service.apply([fire(T0)])
    iid = opened_.incident.id
    clock.advance(20)
    clock.step_wall(-HOUR)
    encoder, lines = LineEncoder(), []
    acked_ = await service.acknowledge(iid, "li")
    ack_entry = [e for e in acked_.timeline if e.action == "acknowledged"]
    lines += encoder.incident(IncidentChange(acked_, entries=ack_entry))
    done = await service.resolve(iid, "li", "real")
    lines += encoder.incident(
        IncidentChange(done, entries=[e for e in done.timeline if e.action == "resolved"])
    )
    fields = " ".join(lines)
    assert "tta_s=0" in fields and "ttr_s=0" in fields, lines  # clamped, not -3580


def test_kpi_durations_and_time_weighting_after_steps() -> None:
    day = Day(GATE)
    day.read("gate-1", "online", True)
    day.at("2026-11-23T10:00")
    day.read("gate-1", "online", False)
    day.clock.step_wall(-HOUR)  # 09:00 again on the wall; the engine must not un-spend the hour
    day.clock.advance(HOUR)
    day.read("gate-1", "online", True)  # back online at wall 10:00 (one real hour offline)
    inc = incident(1, Priority.HIGH, local("2026-11-23T10:00"))
    opened(day.engine, inc)
    day.clock.step_wall(-HOUR)
    acked(day.engine, inc, day.clock.now())  # acknowledged "before" it opened, by the wall
    resolved(day.engine, inc, day.clock.now())
    day.clock.step_wall(HOUR)
    day.at("2026-11-24T00:00")
    values = day.engine.day(ESTATE, date(2026, 11, 23)).values
    assert 0.0 <= values["equipment_intact_rate"] <= 100.0
    for name, value in values.items():
        if name.startswith(("mtta", "mttr")):
            assert value >= 0.0, (name, value)
    spec = KpiEstate(ESTATE, "阳光花园", "Sunshine Garden", devices=(GATE,))
    engine = KpiEngine([spec], KpiConfig(), day.clock)
    before = engine._now()
    day.clock.step_wall(-HOUR)
    assert engine._now() == before  # the KPI engine's guard: time never runs backwards for it


async def test_sink_lag_never_negative(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    config = InfluxConfig.model_validate({"url": "http://127.0.0.1:9", "spool_dir": str(tmp_path / "spool")})
    sink = InfluxSink(config, LineEncoder(), clock=clock.now)
    sink.observe([Reading(int(T0 * 1e9), "e1", "d1", "p", 1.0)], [])
    clock.advance(5)
    assert sink.lag_s() == pytest.approx(5.0)
    clock.step_wall(-HOUR)
    assert sink.lag_s() == 0.0  # not -3595
    health = sink.stats()
    assert health["lag_s"] >= 0.0
    sink.spool.close()


def test_alert_transition_stamps_follow_the_wall_but_engine_time_does_not() -> None:
    clock = ManualClock(T0)
    engine = AlertEngine(
        [rule(id="hi", kind="threshold", family="generator", point="p", op=">", limit=5, on_delay=2)],
        [DeviceInfo("e1", "d1", "generator")],
        clock,
    )
    engine.process(Reading(0, "e1", "d1", "p", 9))
    clock.advance(1)
    clock.step_wall(-HOUR)
    clock.advance(1)
    out: list[Transition] = engine.tick()
    assert [t.active for t in out] == [True]
    assert out[0].ts == pytest.approx(T0 + 2 - HOUR)  # stamped with the (stepped) wall time, as observed
