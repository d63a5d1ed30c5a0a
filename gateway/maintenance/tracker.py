"""The maintenance tracker: duties' due dates, reminders, overdue alarms and completion records.

    generator readings ─▶ observe: engine runs (kpi/runs.py, the KPI engine's test-run rule), run-hours
    API / console ─▶ complete(): a record (who, when, note, how) ─▶ the duty's base moves on
    clock ─▶ evaluate: judge each duty ─▶ due soon: one reminder to the on-call engineer (Reminder)
                                       └▶ overdue: ONE alarm (raised once, cleared by the completion)

State (last completion, run-hours, whether reminded / alarmed) is a row per duty in the store, so a
restart neither forgets an alarm nor raises it again.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from gateway.alerts import Transition
from gateway.config.maintenance import DutyConfig, MaintenanceConfig
from gateway.config.schema import GatewayConfig
from gateway.kpi.runs import RunDetector
from gateway.maintenance.alarms import overdue_transition
from gateway.maintenance.duty import DutyState, Judgement, judge
from gateway.model import Clock, Item, Quality, Reading
from gateway.store.duties import DutyStateRow, MaintenanceRecord

__all__ = ["DutyView", "MaintenanceEstate", "MaintenanceStore", "MaintenanceTracker", "Remind"]

log = logging.getLogger(__name__)
RUN_HOURS_POINT = "run_time"  # seconds of engine run time (DSE 1798, the simulator's)


class MaintenanceStore(Protocol):
    async def save_duty_states(self, rows: list[DutyStateRow]) -> None: ...

    async def load_duty_states(self) -> list[DutyStateRow]: ...

    async def add_maintenance_record(self, record: MaintenanceRecord) -> MaintenanceRecord: ...

    async def list_maintenance_records(
        self, estate: str, duty: str | None = None, limit: int = 100
    ) -> list[MaintenanceRecord]: ...


@dataclass(frozen=True)
class MaintenanceEstate:
    id: str
    name_zh: str
    name_en: str
    timezone: str
    config: MaintenanceConfig


@dataclass(frozen=True)
class DutyView:
    """A duty as the API and the console show it."""

    estate: str
    duty: DutyConfig
    status: str
    due_at: float | None
    due_run_hours: float | None
    run_hours: float | None
    last_done: float | None
    alarmed: bool


Apply = Callable[[list[Transition]], Awaitable[object]]
# (estate, duty config, judgement, estate names (zh, en)) → sent to somebody
Remind = Callable[[MaintenanceEstate, DutyConfig, Judgement], Awaitable[bool]]


class MaintenanceTracker:
    def __init__(
        self, estates: Sequence[MaintenanceEstate], store: MaintenanceStore, clock: Clock, apply: Apply,
        remind: Remind | None = None, test_run_minutes: float = 15.0,
        running_states: Sequence[str] = ("running",),
    ) -> None:  # fmt: skip
        self.estates = {e.id: e for e in estates}
        self.store, self.clock, self.apply, self.remind = store, clock, apply, remind
        self.duties: dict[tuple[str, str], DutyConfig] = {
            (e.id, d.id): d for e in estates for d in e.config.duties
        }
        self.states: dict[tuple[str, str], DutyState] = {}
        self.runs = RunDetector(test_run_minutes * 60)
        self.running_states = frozenset(running_states)
        self._by_device: dict[tuple[str, str], list[DutyConfig]] = {}
        for (estate, _), duty in self.duties.items():
            if duty.device is not None and duty.kind.startswith("generator_"):
                self._by_device.setdefault((estate, duty.device), []).append(duty)
        self._detected: list[tuple[str, str, float]] = []  # (estate, duty, at) test runs to record
        self._dirty: set[tuple[str, str]] = set()
        self._lock = asyncio.Lock()  # evaluate and complete do not interleave
        self.reminders = 0
        self.errors = 0
        # Several gateway instances (gateway/cluster): only the estates this one owns are judged here.
        self.owns: Callable[[str], bool] = lambda estate: True

    @classmethod
    def from_config(
        cls, config: GatewayConfig, store: MaintenanceStore, clock: Clock, apply: Apply, remind: Remind | None
    ) -> MaintenanceTracker | None:
        """The tracker of every estate with duties; None when no estate has any."""
        estates = [
            MaintenanceEstate(e.id, e.name.zh, e.name.en, e.timezone, e.maintenance)
            for e in config.estates
            if e.maintenance is not None and e.maintenance.duties
        ]
        kpi = config.kpi
        return (
            cls(estates, store, clock, apply, remind, kpi.test_run_minutes, kpi.generator_running_states)
            if estates
            else None
        )

    @property
    def tick(self) -> float:
        return min((e.config.tick_seconds for e in self.estates.values()), default=30.0)

    # -- input (the core's loop) -----------------------------------------------------------------
    def observe(self, items: Sequence[Item], transitions: Sequence[Transition]) -> None:
        for item in items:
            if not isinstance(item, Reading) or item.quality is not Quality.GOOD:
                continue
            duties = self._by_device.get((item.estate, item.device))
            if not duties:
                continue
            if item.point == "engine_state" and isinstance(item.value, str):
                now = self.clock.now()
                run_key = f"{item.estate}/{item.device}"
                if self.runs.engine(run_key, item.value in self.running_states, now):
                    for duty in duties:
                        if duty.kind == "generator_test_run":
                            self._detected.append((item.estate, duty.id, now))
            elif item.point == RUN_HOURS_POINT and isinstance(item.value, int | float):
                hours = float(item.value) / 3600.0
                for duty in duties:
                    if duty.kind == "generator_service":
                        state = self._state((item.estate, duty.id))
                        state.run_hours = hours
                        if state.run_hours_at_last is None:  # never serviced: count from here
                            state.run_hours_at_last = hours
                        self._dirty.add((item.estate, duty.id))

    # -- actions ---------------------------------------------------------------------------------
    async def load(self, estates: Collection[str] | None = None) -> None:
        """Duty states from the store: every estate's at start, or those of estates that arrived from
        another gateway instance (gateway/cluster)."""
        for estate, duty, data in await self.store.load_duty_states():
            if (estate, duty) in self.duties and (estates is None or estate in estates):
                self.states[(estate, duty)] = DutyState.from_dict(json.loads(data))
        for key in self.duties:
            if estates is None or key[0] in estates:
                self._state(key)

    def forget(self, estates: Collection[str]) -> None:
        """Drop these estates' duty states (another instance runs them now; the store keeps them)."""
        for key in [k for k in self.states if k[0] in estates]:
            del self.states[key]
            self._dirty.discard(key)

    def _state(self, key: tuple[str, str]) -> DutyState:
        state = self.states.get(key)
        if state is None:
            state = self.states[key] = DutyState(since=self.clock.now())
            self._dirty.add(key)
        return state

    async def complete(
        self, estate: str, duty: str, by: str, note: str = "", done_at: float | None = None,
        how: Literal["detected", "recorded"] = "recorded",
    ) -> MaintenanceRecord:  # fmt: skip
        """Record a completion; the duty's due date moves on and its overdue alarm clears."""
        key = (estate, duty)
        if key not in self.duties:
            raise KeyError(f"{estate}/{duty}")
        async with self._lock:
            now = self.clock.now()
            record = await self.store.add_maintenance_record(
                MaintenanceRecord(None, estate, duty, now if done_at is None else done_at, by, how, note, now)
            )
            state = self._state(key)
            if state.last_done is None or record.done_at >= state.last_done:
                state.last_done = record.done_at
                if self.duties[key].kind == "generator_service":
                    state.run_hours_at_last = state.run_hours
                state.reminded_for = None
            self._dirty.add(key)
            await self._evaluate(now)
            return record

    async def evaluate(self) -> list[Transition]:
        async with self._lock:
            return await self._evaluate(self.clock.now())

    async def _evaluate(self, now: float) -> list[Transition]:
        for run_key in self.runs.settle(now):  # a run that reached its length between readings
            estate_id, device = run_key.split("/", 1)
            for duty in self._by_device.get((estate_id, device), []):
                if duty.kind == "generator_test_run":
                    self._detected.append((estate_id, duty.id, now))
        detected, self._detected = self._detected, []
        for estate_id, duty_id, at in detected:
            record = MaintenanceRecord(None, estate_id, duty_id, at, "gateway", "detected", "", now)
            await self.store.add_maintenance_record(record)
            state = self._state((estate_id, duty_id))
            state.last_done, state.reminded_for = at, None
            self._dirty.add((estate_id, duty_id))
        out: list[Transition] = []
        reminders: list[tuple[MaintenanceEstate, DutyConfig, Judgement, DutyState]] = []
        for (estate_id, duty_id), duty in self.duties.items():
            if not self.owns(estate_id):  # another gateway instance judges it (gateway/cluster)
                continue
            estate, state = self.estates[estate_id], self._state((estate_id, duty_id))
            verdict = judge(duty, state, now, estate.timezone)
            overdue = verdict.status == "overdue"
            if overdue != state.alarmed:
                state.alarmed = overdue
                out.append(overdue_transition(estate_id, duty, verdict, overdue, now, estate.timezone))
                self._dirty.add((estate_id, duty_id))
            if verdict.status == "due_soon" and state.reminded_for != verdict.due_key:
                reminders.append((estate, duty, verdict, state))
        if out:
            try:
                await self.apply(out)
            except Exception:  # judged again next time: the flags go back
                for t in out:
                    self.states[(t.estate, str(t.value))].alarmed = not t.active
                raise
        for estate, duty, verdict, state in reminders:
            if self.remind is not None and await self._remind(estate, duty, verdict):
                state.reminded_for = verdict.due_key
                self._dirty.add((estate.id, duty.id))
        await self._save()
        return out

    async def _remind(self, estate: MaintenanceEstate, duty: DutyConfig, verdict: Judgement) -> bool:
        assert self.remind is not None
        try:
            sent = await self.remind(estate, duty, verdict)
        except Exception:
            self.errors += 1
            log.exception("maintenance: reminder for %s/%s failed", estate.id, duty.id)
            return False
        self.reminders += int(sent)
        return sent

    async def _save(self) -> None:
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, set()
        rows = [(e, d, json.dumps(self.states[(e, d)].to_dict())) for e, d in sorted(dirty)]
        try:
            await self.store.save_duty_states(rows)
        except Exception:
            self._dirty |= dirty
            raise

    # -- queries ---------------------------------------------------------------------------------
    def view(self, estate: str) -> list[DutyView]:
        spec = self.estates.get(estate)
        if spec is None:
            return []
        now = self.clock.now()
        out = []
        for duty in spec.config.duties:
            state = self._state((estate, duty.id))
            verdict = judge(duty, state, now, spec.timezone)
            out.append(DutyView(
                estate, duty, verdict.status, verdict.due_at, verdict.due_run_hours, state.run_hours,
                state.last_done, state.alarmed,
            ))  # fmt: skip
        return out

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            try:
                await self.evaluate()
            except Exception:
                self.errors += 1
                log.exception("maintenance: evaluation failed; trying again at the next tick")

    def health(self) -> dict[str, int]:
        overdue = sum(1 for s in self.states.values() if s.alarmed)
        return {"maintenance_overdue": overdue, "maintenance_reminders": self.reminders,
                "maintenance_errors": self.errors}  # fmt: skip
