"""The escalation engine: plans each open incident's ladder as rows in the store, and fires due steps.

    plan:  open incident without rows → its policy's steps, due at opened_at + after   (store rows)
    fire:  claim due rows (pending → firing, one transaction) → people on duty → one notification per
           person per step (an alarm flood is one grouped message) → channels with retry and fall-over
           → timeline entries and the escalation level → rows done; a repeating last step plans its next

The incidents table is the source of truth: an incident acknowledged, resolved or closed meanwhile has its
rows cancelled by the claim itself, so an ack stops the ladder without any message passing. Nothing is
held in memory across ticks, so a kill -9 loses nothing: after a restart, overdue rows fire at once.
The engine only reads incidents and appends timeline entries through the IncidentService; it never
blocks the alert core (it runs in its own task, and channels have their own timeouts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from gateway.alerts import Transition
from gateway.config.escalation import EscalationPolicyConfig, EscalationStepConfig
from gateway.escalation.delivery import AttemptRecord
from gateway.escalation.policy import PolicyBook
from gateway.escalation.quiet import quiet_until
from gateway.escalation.types import Notification, Person
from gateway.incidents import IncidentService
from gateway.incidents.feed import FeedItem, Subscription
from gateway.model import Clock, EscalationStep, Incident, Priority, TimelineEntry
from gateway.store.base import StepScope

log = logging.getLogger(__name__)
NO_POLICY = "-"  # the marker row of an incident no policy matches (so it is not planned again)
NOBODY = "escalation_nobody_on_duty"  # the timeline entry of a step whose roles had nobody on duty
RETRY_AFTER = 30.0  # seconds before a failed pass's steps are tried again
MAX_PASSES = 50  # delivery passes in flight at once
ROLE_GROUP = {"control_room": "控制室 / control room", "duty_manager": "值班经理 / duty manager"}


@dataclass(frozen=True)
class EstateInfo:
    name_zh: str
    name_en: str
    timezone: str = "Asia/Shanghai"


PeopleFor = Callable[[str, str, float], list[Person]]  # (estate, role or person:<id>, at) → people
Send = Callable[[Notification, Person, Sequence[str]], Awaitable[list[AttemptRecord]]]
AckUrl = Callable[[int, str], str | None]  # (incident id, person id) → signed link, or None


@dataclass
class EscalationStats:
    planned: int = 0
    fired: int = 0
    notifications: int = 0
    failed_notifications: int = 0
    nobody_on_duty: int = 0
    held: int = 0  # steps held back to be grouped into a person's next message
    quiet: int = 0  # steps of non-critical incidents held until their quiet hours end
    delays: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))  # s from due to sent
    engine_delays: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))  # holds excluded

    def delay_percentiles(self, engine: bool = False) -> dict[str, float | None]:
        delays = self.engine_delays if engine else self.delays
        if len(delays) < 2:
            only = delays[0] if delays else None
            return {"p50": only, "p99": only}
        cuts = statistics.quantiles(delays, n=100, method="inclusive")
        return {"p50": round(cuts[49], 4), "p99": round(cuts[98], 4)}


@dataclass
class _Batch:
    """One person, one step of one policy: the incidents to tell them about in one message."""

    person: Person
    step: EscalationStepConfig
    level: int
    key_policy: str
    incidents: list[Incident] = field(default_factory=list)
    rows: list[EscalationStep] = field(default_factory=list)


@dataclass
class _Delivered:
    """A pass whose messages went out: what is left is to write it down (`Escalator._record`)."""

    due: list[EscalationStep]
    notes: dict[int, list[TimelineEntry]]  # incident id → its new timeline entries
    now: float
    done: set[str] = field(default_factory=set)  # parts of the record already in the store


class Escalator:
    def __init__(
        self,
        service: IncidentService,
        book: PolicyBook,
        people_for: PeopleFor,
        send: Send,
        clock: Clock,
        estates: dict[str, EstateInfo],
        locations: dict[tuple[str, str], str],
        ack_url: AckUrl | None = None,
        tick: float = 0.2,
        fallback_role: str = "control_room",
        group_interval: float = 0.0,
        channel_alarm_after: int = 3,
    ) -> None:
        self.service, self.store, self.book = service, service.store, book
        self.people_for, self.send, self.clock = people_for, send, clock
        self.estates, self.locations, self.ack_url = estates, locations, ack_url
        self.tick, self.fallback_role = tick, fallback_role
        self.stats = EscalationStats()
        self.group_interval, self.channel_alarm_after = group_interval, channel_alarm_after
        # Several instances (gateway/cluster): the steps of the estates this one owns, claimed under its
        # id; firing steps of a dead owner are released when its estates are adopted, not at start.
        self.scope: Callable[[], StepScope | None] = lambda: None
        # In memory on purpose: after a restart the worst case is one message more, never one less.
        self._last_sent: dict[tuple[str, str, int], float] = {}  # (person, policy, step) → last sent
        self._channel_failures: dict[tuple[str, str], int] = {}  # (estate, channel) → failed tries in a row
        self._channel_alarmed: set[str] = set()  # alarm keys currently raised
        self._stranded: set[int] = set()  # firing steps of failed passes not yet given back
        # Passes whose messages went out but whose record did not reach the store (it went away): their
        # steps stay `firing` (nobody claims them again) and the record is retried each pass, so a
        # store outage costs a late timeline entry, never a second message.
        self._unrecorded: list[_Delivered] = []

    async def run(self) -> None:
        """Plan and fire until cancelled; an error costs one pass, not the engine.

        Each pass's deliveries run as their own task, so a slow or retrying channel never delays the next
        due step (a fire at 03:00 does not wait behind an SMS gateway's backoff). Between passes it sleeps
        until the next step is due, or a new incident is committed (the live feed wakes it), but never
        longer than `tick`: the store stays the truth, the feed only a hint."""
        released = await self.store.release_firing() if self.scope() is None else 0
        if released:
            log.warning(
                "escalation: %d steps were being sent when the gateway stopped; sending again", released
            )
        sub = self.service.feed.subscribe(maxsize=100, hint=True)  # wakes the loop; the store is the truth
        passes: set[asyncio.Task[None]] = set()
        try:
            while True:
                try:
                    await self.record_delivered()
                    if self._stranded:  # steps a failed pass could not give back while the store was away
                        stranded = sorted(self._stranded)
                        await self.store.hold_steps(stranded, self.clock.now())
                        self._stranded.difference_update(stranded)
                    await self.plan()
                    claimed = await self.store.claim_due_steps(self.clock.now(), scope=self.scope())
                    if claimed:
                        passes.add(asyncio.create_task(self._fire_logged(claimed), name="escalation-pass"))
                        passes = {t for t in passes if not t.done()}
                        if len(passes) >= MAX_PASSES:  # bounded: wait for one before claiming more
                            await asyncio.wait(passes, return_when=asyncio.FIRST_COMPLETED)
                    due = await self.store.next_due(self.scope())
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("escalation pass failed; retrying")
                    due = None
                wait = self.tick if due is None else min(self.tick, max(0.0, due - self.clock.now()))
                await self._sleep_or_new_incident(sub, wait)
        finally:
            sub.close()
            for task in passes:
                task.cancel()  # their steps stay `firing` and are released at the next start
            await asyncio.gather(*passes, return_exceptions=True)

    async def record_delivered(self) -> None:
        """Write down the passes whose messages went out while the store was away (oldest first)."""
        while self._unrecorded:
            await self._record(self._unrecorded[0])
            self._unrecorded.pop(0)

    async def _fire_logged(self, claimed: list[EscalationStep]) -> None:
        delivered: _Delivered | None = None
        try:
            delivered = await self._deliver(claimed)
            await self._record(delivered)
        except Exception:  # e.g. the store went away mid-pass: the steps are tried again, not dropped
            if delivered is not None:  # the messages went out: only their record is retried
                self._unrecorded.append(delivered)
                log.exception(
                    "escalation: %d steps delivered but not recorded; recording them again each pass",
                    len(delivered.due),
                )
                return
            log.exception(
                "escalation: a pass of %d steps failed; retrying in %.0f s", len(claimed), RETRY_AFTER
            )
            ids = [row.id for row in claimed if row.id is not None]
            try:  # back to pending (held), not stuck `firing` until a restart; a message may go twice
                await self.store.hold_steps(ids, self.clock.now() + RETRY_AFTER)
            except Exception:  # the store is still away: given back by a later pass (run's loop)
                self._stranded.update(ids)
                log.exception("escalation: could not give %d steps back yet; retrying each pass", len(ids))

    async def _sleep_or_new_incident(self, sub: Subscription[FeedItem], wait: float) -> None:
        deadline = asyncio.get_running_loop().time() + wait
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(deadline):
                while not (await sub.get()).change.new:  # our own timeline writes do not wake us
                    pass

    async def run_once(self) -> None:
        await self.plan()
        await self.fire(await self.store.claim_due_steps(self.clock.now(), scope=self.scope()))

    # -- planning ----------------------------------------------------------------------------------
    async def plan(self) -> None:
        rows: list[EscalationStep] = []
        unresolved = self.service.manager.by_id  # committed and unresolved: no store read (with timeline)
        for incident_id in await self.store.unplanned_incidents(scope=self.scope()):
            # A plan needs the estate, priority, rule and opening time, which the manager's copy has; a
            # store read per new incident was the biggest store cost of an MQTT drain (py-spy, issue 9).
            incident = unresolved.get(incident_id) or await self.store.get_incident(incident_id)
            if incident is None:
                continue
            policy = self.book.for_incident(incident)
            if policy is None:
                rows.append(EscalationStep(None, incident.id, NO_POLICY, -1, 0, incident.opened_at))
                continue
            rows += [
                EscalationStep(None, incident.id, policy.id, index, 0, incident.opened_at + step.after)
                for index, step in enumerate(policy.steps)
            ]
        if rows:
            self.stats.planned += await self.store.plan_escalation(rows)

    # -- firing ------------------------------------------------------------------------------------
    async def fire(self, due: list[EscalationStep]) -> None:
        if due:
            await self._record(await self._deliver(due))

    async def _deliver(self, due: list[EscalationStep]) -> _Delivered:
        """Quiet hours and grouping (held rows go back to the store), then the messages themselves."""
        now = self.clock.now()
        incidents: dict[int, Incident] = {}  # read once per pass, for quiet hours and the messages
        for incident_id in {row.incident_id for row in due if row.step >= 0}:
            if (incident := await self.store.get_incident(incident_id)) is not None:
                incidents[incident_id] = incident
        quiet = await self._hold(self._quiet(due, incidents, now))
        self.stats.quiet += len(quiet)
        due = [row for row in due if row.id not in quiet]
        batches, notes = self._batches(due, incidents, now)
        held = await self._hold(self._grouped(batches, now))
        if held:
            self.stats.held += len(held)
            due = [row for row in due if row.id not in held]
            batches, notes = self._batches(due, incidents, now)  # what is left goes now
        self.stats.nobody_on_duty += sum(1 for n in notes.values() for e in n if e.action == NOBODY)
        results = await asyncio.gather(*(self._notify(batch) for batch in batches.values()))
        for batch, entries in zip(batches.values(), results, strict=True):
            for incident in batch.incidents:
                notes.setdefault(incident.id, []).extend(entries)
        self.stats.fired += sum(1 for row in due if row.step >= 0)  # held rows are counted when they go
        return _Delivered(due, notes, now)

    async def _record(self, pass_: _Delivered) -> None:
        """Write a delivered pass down; each part once, so a retry after a store outage repeats none."""
        due, now = pass_.due, pass_.now
        if "timeline" not in pass_.done:
            levels = {row.incident_id: row.step + 1 for row in due if row.step >= 0}
            notes = pass_.notes
            await self.service.record_escalation({i: (levels.get(i, 0), e) for i, e in notes.items()})
            pass_.done.add("timeline")
        if "channels" not in pass_.done:
            await self._channel_alarms(now)
            pass_.done.add("channels")
        if "repeats" not in pass_.done:
            await self._plan_repeats(due, now)
            pass_.done.add("repeats")
        await self.store.finish_steps([row.id for row in due if row.id is not None])

    async def _hold(self, holds: dict[float, set[int]]) -> set[int]:
        """Give rows back to the store, each not to be claimed before its time (until → row ids)."""
        for until, ids in holds.items():
            await self.store.hold_steps(sorted(ids), until)
        return set().union(*holds.values()) if holds else set()

    def _quiet(
        self, due: list[EscalationStep], incidents: dict[int, Incident], now: float
    ) -> dict[float, set[int]]:
        """Steps of non-critical incidents due inside their policy's quiet hours wait for the end."""
        holds: dict[float, set[int]] = {}
        for row in due:
            policy, incident = self.book.by_id.get(row.policy), incidents.get(row.incident_id)
            if policy is None or policy.quiet_hours is None or incident is None or row.id is None:
                continue
            if incident.priority is Priority.CRITICAL:  # critical is never quiet
                continue
            timezone = self.estates.get(incident.estate, EstateInfo("", "")).timezone
            until = quiet_until(policy.quiet_hours, timezone, now)
            if until is not None:
                holds.setdefault(until, set()).add(row.id)
        return holds

    def _batches(
        self, due: list[EscalationStep], incidents: dict[int, Incident], now: float
    ) -> tuple[dict[tuple[str, str, int], _Batch], dict[int, list[TimelineEntry]]]:
        """Group the due steps by (person, policy, step): one message each, however many incidents."""
        batches: dict[tuple[str, str, int], _Batch] = {}
        notes: dict[int, list[TimelineEntry]] = {}
        for row in due:
            policy, incident = self.book.by_id.get(row.policy), incidents.get(row.incident_id)
            if policy is None or incident is None or row.step >= len(policy.steps):
                continue  # the no-policy marker, or a policy removed from the config since
            step = policy.steps[row.step]
            people, note = self._people(incident, step, now)
            if note:
                notes.setdefault(incident.id, []).append(note)
            for person in people:
                key = (person.id, policy.id, row.step)
                batch = batches.setdefault(key, _Batch(person, step, row.step + 1, policy.id))
                batch.incidents.append(incident)
                batch.rows.append(row)
        return batches, notes

    def _grouped(self, batches: dict[tuple[str, str, int], _Batch], now: float) -> dict[float, set[int]]:
        """A person told about this step less than `group_interval` ago gets the rest in one message
        when the interval ends (Alertmanager's group_interval): their rows go back to the store, held."""
        holds: dict[float, set[int]] = {}
        if self.group_interval <= 0:
            return holds
        for key, batch in batches.items():
            last = self._last_sent.get(key)
            if last is not None and now < last + self.group_interval:
                ids = {row.id for row in batch.rows if row.id is not None}
                holds.setdefault(last + self.group_interval, set()).update(ids)
        return holds

    async def _channel_alarms(self, now: float) -> None:
        """A channel failing `channel_alarm_after` tries in a row raises a health alarm in the estate it
        failed for; its next delivery clears it. The alarm escalates like any other (over other channels)."""
        transitions = []
        for (estate, channel), failures in list(self._channel_failures.items()):
            key = f"{estate}/gateway/notify_channel_failing/{channel}"
            raised = key in self._channel_alarmed
            if failures >= self.channel_alarm_after and not raised:
                self._channel_alarmed.add(key)
                transitions.append(self._channel_transition(key, estate, channel, True, now, failures))
            elif failures == 0 and raised:
                self._channel_alarmed.discard(key)
                transitions.append(self._channel_transition(key, estate, channel, False, now, failures))
        if transitions:
            await self.service.apply(transitions)

    @staticmethod
    def _channel_transition(
        key: str, estate: str, channel: str, active: bool, now: float, n: int
    ) -> Transition:
        return Transition(
            key, estate, "gateway", "notify_channel_failing", Priority.HIGH, active, now, n,
            f"通知渠道 {channel} 连续 {n} 次发送失败",
            f"Notification channel {channel} failed {n} times in a row",
        )  # fmt: skip

    def _people(
        self, incident: Incident, step: EscalationStepConfig, at: float
    ) -> tuple[list[Person], TimelineEntry | None]:
        people: dict[str, Person] = {}
        for target in step.notify:
            for person in self.people_for(incident.estate, target, at):
                people.setdefault(person.id, person)
        if people:
            return list(people.values()), None
        fallback = self.people_for(incident.estate, self.fallback_role, at)
        detail = {"roles": step.notify, "fallback": self.fallback_role, "found": [p.id for p in fallback]}
        log.warning("%s: nobody on duty for %s; telling %s", incident.estate, step.notify, self.fallback_role)
        if not fallback:  # no roster at all: the step's group channels (robots, webhook, console) still fire
            fallback = [Person(self.fallback_role, ROLE_GROUP.get(self.fallback_role, self.fallback_role))]
        return fallback, TimelineEntry(at, NOBODY, "system", detail)

    async def _notify(self, batch: _Batch) -> list[TimelineEntry]:
        first = batch.incidents[0]
        estate = self.estates.get(first.estate, EstateInfo(first.estate, first.estate))
        flood = len(batch.incidents) > 1
        count = len(batch.incidents)
        notification = Notification(
            estate=first.estate,
            estate_name_zh=estate.name_zh,
            estate_name_en=estate.name_en,
            incident_ids=tuple(i.id for i in batch.incidents),
            priority=min((i.priority for i in batch.incidents), key=lambda p: p.rank),
            title_zh=f"{count} 起事件（告警泛滥）" if flood else first.title,
            title_en=f"{count} incidents (alarm flood)" if flood else first.title_en,
            device=first.device,
            location=self.locations.get((first.estate, first.device), ""),
            opened_at=first.opened_at,
            step=batch.level - 1,
            ack_url=self.ack_url(first.id, batch.person.id) if self.ack_url and not flood else None,
            timezone=estate.timezone,
            member_titles=tuple((i.title, i.title_en) for i in batch.incidents) if flood else (),
        )
        attempts = await self.send(notification, batch.person, batch.step.channels)
        sent = any(a.outcome == "sent" for a in attempts)
        for attempt in attempts:
            if attempt.channel != "-":
                key = (first.estate, attempt.channel)
                self._channel_failures[key] = (
                    0 if attempt.outcome == "sent" else self._channel_failures.get(key, 0) + 1
                )
        if sent:
            self._last_sent[(batch.person.id, batch.key_policy, batch.level - 1)] = self.clock.now()
        self.stats.notifications += 1
        if sent:
            done = self.clock.now()
            self.stats.delays.extend(done - row.due_at for row in batch.rows)  # what the person waited
            # the engine's own lateness: from the due time, or the end of a deliberate hold (grouping, quiet)
            self.stats.engine_delays.extend(
                done - max(row.due_at, row.hold_until or 0.0) for row in batch.rows
            )
        else:
            self.stats.failed_notifications += 1
        detail = {
            "level": batch.level,
            "person": batch.person.id,
            "name": batch.person.name,
            "outcome": "sent" if sent else "failed",
            "attempts": [
                {"channel": a.channel, "outcome": a.outcome, "detail": a.detail[:200]} for a in attempts
            ],
            "grouped": len(batch.incidents),
        }
        return [
            TimelineEntry(self.clock.now(), "notified" if sent else "notification_failed", "system", detail)
        ]

    async def _plan_repeats(self, due: list[EscalationStep], now: float) -> None:
        repeats = []
        for row in due:
            policy: EscalationPolicyConfig | None = self.book.by_id.get(row.policy)
            if policy is None or row.step != len(policy.steps) - 1:
                continue
            step = policy.steps[row.step]
            if step.repeat_every is not None and row.repeat < step.repeat_max:
                repeats.append(
                    EscalationStep(
                        None, row.incident_id, row.policy, row.step, row.repeat + 1, now + step.repeat_every
                    )
                )
        if repeats:
            await self.store.plan_escalation(repeats)
