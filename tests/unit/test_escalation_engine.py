"""The escalation engine on a real store (SQLite and PostgreSQL) with an injected clock: ladder timing, ack
stops it, restart resumes it exactly once, repeats, empty rosters, floods grouped per person and step.

Channels are a recording seam here (the channel tests use real local receivers)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

import pytest

from gateway.alerts import Transition
from gateway.config.escalation import EscalationPolicyConfig
from gateway.escalation.delivery import AttemptRecord
from gateway.escalation.engine import Escalator, EstateInfo
from gateway.escalation.policy import PolicyBook, load_default_policies, merge_policies
from gateway.escalation.quiet import quiet_until
from gateway.escalation.roster import Roster, people_finder
from gateway.escalation.types import Notification, Person
from gateway.incidents import Grouping, IncidentService
from gateway.model import EscalationStep, ManualClock, Priority, SystemClock
from tests.integration.postgres import StoreFactory
from tests.unit.test_roster import duty_config, local

T0 = 1_800_000_000.0
PEOPLE = {
    "control_room": [Person("li", "李值班", phone="+8613800000001")],
    "duty_manager": [Person("wang", "王经理", phone="+8613800000002")],
    "estate_manager": [Person("zhao", "赵项目经理")],
    "fire_liaison": [Person("sun", "孙消防联络")],
    "engineer_on_call": [],
}


class Rig:
    def __init__(
        self,
        make_store: StoreFactory,
        clock: ManualClock,
        policies: list[EscalationPolicyConfig] | None = None,
    ):
        self.make_store, self.clock = make_store, clock
        self.policies = policies or merge_policies(load_default_policies(), [])
        self.sent: list[tuple[float, str, tuple[int, ...], int, tuple[str, ...]]] = []
        self.fail_channels: set[str] = set()
        self.group_interval = 0.0
        self.people_for: Callable[[str, str, float], list[Person]] | None = None

    async def start(self) -> tuple[IncidentService, Escalator]:
        store = self.make_store("esc")
        await store.open()
        service = IncidentService(
            store, self.clock, grouping=Grouping(correlation_window=0, flood_count=1000)
        )
        await service.start()

        async def send(
            notification: Notification, person: Person, channels: Sequence[str]
        ) -> list[AttemptRecord]:
            attempts = []
            for channel in channels:
                ok = channel not in self.fail_channels
                attempts.append(AttemptRecord(channel, "sent" if ok else "failed", "", self.clock.now()))
                if ok:
                    self.sent.append(
                        (
                            self.clock.now(),
                            person.id,
                            notification.incident_ids,
                            notification.step,
                            tuple(channels),
                        )
                    )
                    break
            return attempts

        def people_for(estate: str, target: str, at: float) -> list[Person]:
            return list(PEOPLE.get(target, []))

        escalator = Escalator(
            service, PolicyBook(self.policies), people_for, send, self.clock,
            {"sunshine": EstateInfo("阳光花园", "Sunshine Garden")}, {}, ack_url=lambda i, p: f"http://x/ack/{i}/{p}",
            group_interval=self.group_interval,
        )  # fmt: skip
        if self.people_for is not None:
            escalator.people_for = self.people_for
        return service, escalator


def fire(ts: float, device: str = "fire-1", point: str = "L1-D002.fire") -> Transition:
    key = f"sunshine/{device}/fire_point_fire/{point}"
    return Transition(
        key, "sunshine", device, "fire_point_fire", Priority.CRITICAL, True, ts, 1, "火警", "FIRE"
    )


async def test_fire_ladder_with_ack_between_steps(make_store: StoreFactory) -> None:
    clock = ManualClock(T0)
    rig = Rig(make_store, clock)
    service, esc = await rig.start()
    [opened] = await service.apply([fire(T0)])
    await esc.run_once()
    assert [(s[1], s[3]) for s in rig.sent] == [("li", 0)]  # control room at once
    clock.advance(59)
    await esc.run_once()
    assert len(rig.sent) == 1
    clock.advance(1.5)
    await esc.run_once()
    assert [(s[1], s[3]) for s in rig.sent] == [("li", 0), ("wang", 1)]  # duty manager after 60 s
    await service.acknowledge(opened.incident.id, "li")
    clock.advance(200)
    await esc.run_once()
    assert len(rig.sent) == 2  # ack stopped the ladder
    incident = await service.get(opened.incident.id)
    assert incident is not None and incident.escalation_level == 2
    notified = [e for e in incident.timeline if e.action == "notified"]
    assert [e.detail["person"] for e in notified] == ["li", "wang"]
    assert notified[0].detail["attempts"][0]["channel"] == "console"


async def test_restart_between_steps_fires_the_next_step_once(make_store: StoreFactory) -> None:
    clock = ManualClock(T0)
    rig = Rig(make_store, clock)
    service, esc = await rig.start()
    await service.apply([fire(T0)])
    await esc.run_once()
    await service.store.close()  # the process dies: nothing in memory survives
    clock.advance(400)  # down past steps 1 (60 s) and 2 (180 s)
    service, esc = await rig.start()
    await esc.run_once()
    await esc.run_once()
    steps = [(s[1], s[3]) for s in rig.sent]
    assert steps == [("li", 0), ("wang", 1), ("zhao", 2), ("sun", 2)]
    clock.advance(1)
    await esc.run_once()
    assert len(rig.sent) == 4  # nothing twice


async def test_last_step_repeats_until_acknowledged(make_store: StoreFactory) -> None:
    clock = ManualClock(T0)
    rig = Rig(make_store, clock)
    service, esc = await rig.start()
    [opened] = await service.apply([fire(T0)])
    for _ in range(5):
        await esc.run_once()
        clock.advance(181)
    repeats = [s for s in rig.sent if s[1] == "zhao"]
    assert len(repeats) == 2  # at 180 s, then the first re-notification (every 300 s)
    await service.acknowledge(opened.incident.id, "zhao")
    clock.advance(1000)
    await esc.run_once()
    assert len([s for s in rig.sent if s[1] == "zhao"]) == 2


async def test_nobody_on_duty_falls_back_to_the_control_room_and_says_so(make_store: StoreFactory) -> None:
    clock = ManualClock(T0)
    engineer_only = EscalationPolicyConfig.model_validate(
        {
            "id": "gen",
            "rules": ["gen_*"],
            "steps": [{"after": 0, "notify": ["engineer_on_call"], "channels": ["sms"]}],
        }
    )
    rig = Rig(make_store, clock, [engineer_only])
    service, esc = await rig.start()
    t = Transition("sunshine/gen-1/gen_fail_to_start", "sunshine", "gen-1", "gen_fail_to_start",
                   Priority.CRITICAL, True, T0, 1, "发电机未启动", "Generator failed to start")  # fmt: skip
    [opened] = await service.apply([t])
    await esc.run_once()
    assert [s[1] for s in rig.sent] == ["li"]  # engineer_on_call is empty; the control room is told
    incident = await service.get(opened.incident.id)
    assert incident is not None
    [note] = [e for e in incident.timeline if e.action == "escalation_nobody_on_duty"]
    assert note.detail == {"roles": ["engineer_on_call"], "fallback": "control_room", "found": ["li"]}
    assert esc.stats.nobody_on_duty == 1


async def test_a_flood_is_one_message_per_person_per_step(make_store: StoreFactory) -> None:
    clock = ManualClock(T0)
    rig = Rig(make_store, clock)
    service, esc = await rig.start()
    await service.apply([fire(T0 + i * 0.01, point=f"L1-D{i:03}.fire") for i in range(200)])
    clock.advance(2)  # 200 fire points within 2 s; the engine looks once
    await esc.run_once()
    assert len(rig.sent) == 1
    _, person, incidents, step, _ = rig.sent[0]
    assert person == "li" and step == 0 and len(incidents) == 200


async def test_failed_channels_fall_over_and_are_recorded(make_store: StoreFactory) -> None:
    clock = ManualClock(T0)
    rig = Rig(make_store, clock)
    rig.fail_channels = {"console"}
    service, esc = await rig.start()
    [opened] = await service.apply([fire(T0)])
    await esc.run_once()
    assert rig.sent[0][4] == ("console", "dingtalk", "sms")
    incident = await service.get(opened.incident.id)
    assert incident is not None
    [entry] = [e for e in incident.timeline if e.action == "notified"]
    assert [a["outcome"] for a in entry.detail["attempts"]] == ["failed", "sent"]
    rig.fail_channels = {"console", "dingtalk", "sms", "email"}
    clock.advance(61)
    await esc.run_once()
    incident = await service.get(opened.incident.id)
    assert incident is not None
    assert [e.action for e in incident.timeline][-1] == "notification_failed"
    assert esc.stats.failed_notifications == 1


def test_site_policies_replace_defaults_by_id_and_go_first() -> None:
    site = [
        EscalationPolicyConfig.model_validate(
            {
                "id": "fire",
                "priorities": ["critical"],
                "steps": [{"after": 0, "notify": ["control_room"], "channels": ["sms"]}],
            }
        ),
        EscalationPolicyConfig.model_validate(
            {
                "id": "vip",
                "rules": ["gate_*"],
                "steps": [{"after": 0, "notify": ["person:wang"], "channels": ["sms"]}],
            }
        ),
        EscalationPolicyConfig.model_validate(
            {"id": "routine", "enabled": False, "steps": [{"after": 0, "notify": ["x"], "channels": ["y"]}]}
        ),
    ]
    merged = merge_policies(load_default_policies(), site)
    ids = [p.id for p in merged]
    assert ids[0] == "vip" and "routine" not in ids and ids.count("fire") == 1
    assert len(next(p for p in merged if p.id == "fire").steps) == 1
    with pytest.raises(ValueError, match="in order of 'after'"):
        EscalationPolicyConfig.model_validate(
            {
                "id": "x",
                "steps": [
                    {"after": 60, "notify": ["a"], "channels": ["b"]},
                    {"after": 0, "notify": ["a"], "channels": ["b"]},
                ],
            }
        )


async def test_a_flood_spread_over_ten_seconds_is_grouped_per_interval(make_store: StoreFactory) -> None:
    clock = ManualClock(T0)
    rig = Rig(make_store, clock)
    rig.group_interval = 10.0
    service, esc = await rig.start()
    for i in range(200):  # one new fire point every 50 ms for 10 s, the engine looking every 100 ms
        await service.apply([fire(T0 + i * 0.05, point=f"L1-D{i:03}.fire")])
        if i % 2:
            clock.advance(0.1)
            await esc.run_once()
    for _ in range(120):
        clock.advance(0.1)
        await esc.run_once()
    to_li = [s for s in rig.sent if s[1] == "li" and s[3] == 0]
    assert len(to_li) <= 3  # the first at once, then one grouped message per 10 s
    told = [i for s in to_li for i in s[2]]
    assert sorted(told) == list(range(1, 201))  # every incident exactly once
    assert to_li[0][0] == T0 + 0.1 and len(to_li[0][2]) == 2  # the first tick's fires were not held back
    assert esc.stats.held >= 198


async def test_a_failing_channel_raises_a_health_alarm_and_clears_it(make_store: StoreFactory) -> None:
    clock = ManualClock(T0)
    rig = Rig(make_store, clock)
    rig.fail_channels = {"console"}
    service, esc = await rig.start()
    esc.channel_alarm_after = 2
    for i in range(2):
        await service.apply([fire(clock.now(), point=f"L1-D{i:03}.fire")])
        clock.advance(0.5)
        await esc.run_once()
    keys = set(service.manager.by_key)
    assert "sunshine/gateway/notify_channel_failing/console" in keys
    [alarm] = [i for i in service.manager.by_id.values() if i.rule == "notify_channel_failing"]
    assert alarm.priority is Priority.HIGH and "console" in alarm.title
    rig.fail_channels = set()
    await service.apply([fire(clock.now(), point="L1-D009.fire")])
    clock.advance(0.5)
    await esc.run_once()
    incident = await service.get(alarm.id)
    assert incident is not None and not incident.active  # delivered again: the alarm returned to normal


async def test_a_shift_change_during_escalation_reaches_the_new_shift(make_store: StoreFactory) -> None:
    roster = Roster(duty_config())
    start = local("2026-11-02T19:59:30")  # the day shift's last half minute
    clock = ManualClock(start)
    rig = Rig(make_store, clock)
    rig.people_for = people_finder({"sunshine": roster})
    service, esc = await rig.start()
    day, night = roster.on_duty("control_room", start), roster.on_duty("control_room", start + 60)
    assert day and night and day != night
    await service.apply([fire(start)])
    await esc.run_once()
    clock.advance(61)  # step 1 comes due after 20:00
    await esc.run_once()
    assert rig.sent[0][1] == day[0].id
    assert rig.sent[1][1] == roster.on_duty("duty_manager", clock.now())[0].id


def test_quiet_hours_windows() -> None:
    night = local("2026-11-02T23:30")
    assert quiet_until("23:00-07:00", "Asia/Shanghai", night) == local("2026-11-03T07:00")
    assert quiet_until("23:00-07:00", "Asia/Shanghai", local("2026-11-03T06:59")) == local("2026-11-03T07:00")
    assert quiet_until("23:00-07:00", "Asia/Shanghai", local("2026-11-03T07:00")) is None
    assert quiet_until("12:00-14:00", "Asia/Shanghai", local("2026-11-03T13:00")) == local("2026-11-03T14:00")
    with pytest.raises(ValueError, match="never apply to critical"):
        EscalationPolicyConfig.model_validate(
            {
                "id": "q",
                "quiet_hours": "23:00-07:00",
                "steps": [{"after": 0, "notify": ["a"], "channels": ["b"]}],
            }
        )


async def test_quiet_hours_hold_routine_incidents_but_never_critical(make_store: StoreFactory) -> None:
    start = local("2026-11-02T23:30")
    clock = ManualClock(start)
    routine = EscalationPolicyConfig.model_validate(
        {"id": "routine", "priorities": ["medium"], "quiet_hours": "23:00-07:00",
         "steps": [{"after": 0, "notify": ["control_room"], "channels": ["sms"]}]}
    )  # fmt: skip
    fire_policy = next(p for p in load_default_policies() if p.id == "fire")
    rig = Rig(make_store, clock, [fire_policy, routine])
    service, esc = await rig.start()
    septic = Transition("sunshine/septic-1/septic_high", "sunshine", "septic-1", "septic_high",
                        Priority.MEDIUM, True, start, 19.2, "化粪池液位高", "Septic level high")  # fmt: skip
    await service.apply([septic, fire(start)])
    await esc.run_once()
    assert [s[2] for s in rig.sent] == [(2,)]  # the fire at once; the septic alarm waits
    clock.advance(local("2026-11-03T07:00:01") - clock.now())
    await esc.run_once()
    assert [s[2] for s in rig.sent if s[4] == ("sms",)] == [(1,)]  # at the end of the quiet hours
    assert esc.stats.quiet == 1
    assert 1.0 in esc.stats.engine_delays  # the engine's lateness: from the end of the hold (07:00)


async def test_a_slow_channel_does_not_delay_the_next_due_step(make_store: StoreFactory) -> None:
    clock = SystemClock()
    rig = Rig(make_store, clock)  # type: ignore[arg-type]
    service, esc = await rig.start()
    esc.tick = 0.05
    sent: list[tuple[float, tuple[int, ...]]] = []

    async def slow_first(
        notification: Notification, person: Person, channels: Sequence[str]
    ) -> list[AttemptRecord]:
        if notification.incident_ids == (1,):
            await asyncio.sleep(3)  # a gateway retrying with backoff
        sent.append((time.monotonic(), notification.incident_ids))
        return [AttemptRecord(channels[0], "sent", "", clock.now())]

    esc.send = slow_first
    runner = asyncio.create_task(esc.run())
    try:
        await service.apply([fire(clock.now())])
        await asyncio.sleep(0.3)
        opened = time.monotonic()
        await service.apply([fire(clock.now(), point="L1-D077.fire")])
        for _ in range(40):
            if sent:
                break
            await asyncio.sleep(0.05)
        assert sent and sent[0][1] == (2,) and sent[0][0] - opened < 0.5  # not behind the slow one
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    assert await service.store.release_firing() == 1  # the cut pass's step goes again at the next start


async def _one_claimed_step(
    make_store: StoreFactory,
) -> tuple[ManualClock, Rig, IncidentService, Escalator, list[EscalationStep]]:
    """One incident, its first step planned and claimed (due at once)."""
    clock = ManualClock(T0)
    rig = Rig(make_store, clock)
    service, esc = await rig.start()
    await service.apply([fire(T0)])
    await esc.plan()
    claimed = await service.store.claim_due_steps(clock.now())
    assert len(claimed) == 1
    return clock, rig, service, esc, claimed


async def test_a_pass_that_fails_gives_its_steps_back_instead_of_dropping_them(
    make_store: StoreFactory,
) -> None:
    clock, rig, service, esc, claimed = await _one_claimed_step(make_store)
    get_incident = service.store.get_incident

    async def broken(incident_id: int) -> None:
        raise RuntimeError("store went away")

    service.store.get_incident = broken  # type: ignore[method-assign,assignment]  # before any message
    await esc._fire_logged(claimed)
    service.store.get_incident = get_incident  # type: ignore[method-assign]
    assert rig.sent == []
    assert await service.store.claim_due_steps(clock.now()) == []  # held for the retry delay ...
    clock.advance(31)
    [again] = await service.store.claim_due_steps(clock.now())  # ... then tried again
    assert again.id == claimed[0].id


async def test_a_pass_whose_record_fails_is_recorded_later_and_never_sent_twice(
    make_store: StoreFactory,
) -> None:
    clock, rig, service, esc, claimed = await _one_claimed_step(make_store)
    record = service.record_escalation

    async def broken(updates: object) -> None:
        raise RuntimeError("store went away")

    service.record_escalation = broken  # type: ignore[method-assign]  # after the messages went out
    await esc._fire_logged(claimed)
    sent = len(rig.sent)
    assert sent >= 1
    clock.advance(31)
    assert await service.store.claim_due_steps(clock.now()) == []  # still firing: nobody sends it again
    with pytest.raises(RuntimeError):
        await esc.record_delivered()  # the store is still away: kept for the next pass
    service.record_escalation = record  # type: ignore[method-assign]
    await esc.record_delivered()
    assert len(rig.sent) == sent
    incident = await service.store.get_incident(claimed[0].incident_id)
    assert incident is not None and any(e.action == "notified" for e in incident.timeline)
    assert await service.store.claim_due_steps(clock.now()) == []  # finished, not pending
