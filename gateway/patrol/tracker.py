"""The patrol tracker: a pipeline observer (checkpoint punches in) and a timer (due tours, deadlines).

    DeviceEvent (card_granted, patrol_tag ...) ─▶ observe: match a checkpoint ─▶ bounded punch queue
    clock ─▶ evaluate: open due tours ─▶ punches ─▶ deadlines ─▶ Transitions (IncidentService.apply)
                                                              └▶ tours saved (store) ─▶ finished: listeners

`observe` only matches and queues (it runs inside the core's loop); `evaluate` does the rest in the
tracker's own task. Tours live in the store (`patrol_tours`), so a restart continues the open ones; tours
due while the gateway was down are not invented afterwards (nothing saw those punches).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from gateway.alerts import Transition
from gateway.config.patrol import PatrolConfig, RouteConfig
from gateway.config.schema import GatewayConfig
from gateway.model import Clock, DeviceEvent, Item
from gateway.patrol.alarms import transition
from gateway.patrol.schedule import due_times
from gateway.patrol.tour import CheckpointPlan, Signal, Tour
from gateway.store.duties import TourRow

__all__ = ["PatrolEstate", "PatrolStore", "PatrolTracker", "TourRow"]

log = logging.getLogger(__name__)
# A punch is taken at the reader's own time stamp (a wand docked later, a QoS 1 message redelivered
# after a restart), unless that is more than CLOCK_SKEW ahead of our clock or LATE_DELIVERY behind it:
# then the reader's clock is wrong, and the punch counts when it arrived.
CLOCK_SKEW = 120.0
LATE_DELIVERY = 6 * 3600.0
LOOKBACK = 2 * 86400.0  # tours loaded at start to find the open ones and each route's last due time


class PatrolStore(Protocol):
    async def save_patrol_tours(self, rows: list[TourRow]) -> None: ...

    async def load_patrol_tours(
        self, estates: frozenset[str] | None, since: float, until: float
    ) -> list[TourRow]: ...


@dataclass(frozen=True)
class PatrolEstate:
    id: str
    timezone: str
    config: PatrolConfig
    zones: dict[str, str]  # device → zone (alarms correlate on it)


Apply = Callable[[list[Transition]], Awaitable[object]]
TourListener = Callable[[Tour], None]


def _matches(wanted: dict[str, str | int | bool], attributes: dict[str, object]) -> bool:
    return all(str(attributes.get(k)) == str(v) for k, v in wanted.items())


class PatrolTracker:
    """Every estate's guard tours."""

    def __init__(
        self, estates: Sequence[PatrolEstate], store: PatrolStore, clock: Clock, apply: Apply,
        max_queue: int = 10_000,
    ) -> None:  # fmt: skip
        self.estates = {e.id: e for e in estates}
        self.store, self.clock, self.apply = store, clock, apply
        self.routes: dict[tuple[str, str], RouteConfig] = {
            (e.id, r.id): r for e in estates for r in e.config.routes if r.enabled
        }
        # (estate, device, event kind) → [(route, checkpoint index)]
        self._points: dict[tuple[str, str, str], list[tuple[str, int]]] = {}
        for (estate, route_id), route in self.routes.items():
            for index, cp in enumerate(route.checkpoints):
                self._points.setdefault((estate, cp.device, cp.event), []).append((route_id, index))
        self.tours: dict[tuple[str, str, float], Tour] = {}  # open tours
        self._horizon: dict[tuple[str, str], float] = {}  # last scheduled start created, per route
        self._punches: deque[tuple[str, str, int, float]] = deque()
        self._max_queue = max_queue
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()  # one evaluation at a time (the task's, or a caller's)
        self.listeners: list[TourListener] = []
        self._unsent: list[Transition] = []
        self._unsaved: dict[tuple[str, str, float], Tour] = {}
        self.punches = 0
        self.unmatched = 0  # punches of a checkpoint with no tour open at that time
        self.dropped = 0
        self.errors = 0
        # Several gateway instances (gateway/cluster): only the estates this one owns are judged here.
        self.owns: Callable[[str], bool] = lambda estate: True

    @classmethod
    def from_config(
        cls, config: GatewayConfig, store: PatrolStore, clock: Clock, apply: Apply
    ) -> PatrolTracker | None:
        """The tracker of every estate with a `patrol:` block; None when no estate has one."""
        estates = [
            PatrolEstate(e.id, e.timezone, e.patrol, {d.id: d.zone for d in e.devices})
            for e in config.estates
            if e.patrol is not None and e.patrol.routes
        ]
        return cls(estates, store, clock, apply) if estates else None

    @property
    def tick(self) -> float:
        return min((e.config.tick_seconds for e in self.estates.values()), default=5.0)

    # -- input (the core's loop) -----------------------------------------------------------------
    def observe(self, items: Sequence[Item], transitions: Sequence[Transition]) -> None:
        now = None
        for item in items:
            if not isinstance(item, DeviceEvent):
                continue
            points = self._points.get((item.estate, item.device, item.kind))
            if not points:
                continue
            now = self.clock.now() if now is None else now
            at = item.ts_ns / 1e9
            at = at if now - LATE_DELIVERY <= at <= now + CLOCK_SKEW else now
            for route_id, index in points:
                route = self.routes[(item.estate, route_id)]
                if _matches(route.match, item.attributes) and _matches(
                    route.checkpoints[index].match, item.attributes
                ):
                    if len(self._punches) >= self._max_queue:
                        self.dropped += 1
                        log.warning("patrol: punch queue full; dropping %s/%s", item.estate, item.device)
                        continue
                    self._punches.append((item.estate, route_id, index, at))
                    self._wake.set()

    # -- the tracker's task ----------------------------------------------------------------------
    async def load(self, estates: Collection[str] | None = None) -> None:
        """Open tours and each route's last scheduled start from the store (call once, at start; or for
        estates that arrived from another gateway instance, gateway/cluster)."""
        now = self.clock.now()
        for estate, route_id, due_at, _status, data in await self.store.load_patrol_tours(
            None, now - LOOKBACK, now + LOOKBACK
        ):
            if (estate, route_id) not in self.routes or (estates is not None and estate not in estates):
                continue
            key = (estate, route_id)
            self._horizon[key] = max(self._horizon.get(key, 0.0), due_at)
            tour = Tour.from_dict(json.loads(data))
            if tour.open:
                self.tours[(estate, route_id, due_at)] = tour
        for key in self.routes:
            if estates is None or key[0] in estates:
                self._horizon[key] = max(self._horizon.get(key, 0.0), now)

    def forget(self, estates: Collection[str]) -> None:
        """Drop these estates' open tours (another instance runs them now; the store keeps them)."""
        for key in [k for k in self.tours if k[0] in estates]:
            del self.tours[key]
        for route_key in [k for k in self._horizon if k[0] in estates]:
            del self._horizon[route_key]

    async def evaluate(self) -> list[Transition]:
        """Open the tours now due, apply queued punches, judge deadlines; commit the alarms, save the
        tours that changed. Returns the transitions applied."""
        async with self._lock:
            return await self._evaluate(self.clock.now())

    async def _evaluate(self, now: float) -> list[Transition]:
        changed: dict[tuple[str, str, float], Tour] = {}
        out: list[Transition] = []
        for key, route in self.routes.items():
            if self.owns(key[0]):  # another gateway instance schedules the others (gateway/cluster)
                self._schedule(key, route, now, changed)
        while self._punches:
            estate, route_id, index, at = self._punches.popleft()
            self.punches += 1
            tour = next(
                (
                    t
                    for (e, r, _), t in sorted(self.tours.items())
                    if e == estate and r == route_id and t.takes(at)
                ),
                None,
            )
            if tour is None:
                self.unmatched += 1
                continue
            out.extend(self._signals(tour, tour.punch(index, at)))
            changed[(estate, route_id, tour.due_at)] = tour
        for tour_key, tour in list(self.tours.items()):
            signals = tour.advance(now)
            if signals or not tour.open:
                out.extend(self._signals(tour, signals))
                changed[tour_key] = tour
        # What a failed commit or save leaves is tried again first next time: an alarm is never lost.
        out, self._unsent = self._unsent + out, []
        changed, self._unsaved = {**self._unsaved, **changed}, {}
        try:
            if out:
                await self.apply(out)
        except Exception:
            self._unsent, self._unsaved = out, changed
            raise
        try:
            if changed:
                await self.store.save_patrol_tours([
                    (t.estate, t.route, t.due_at, t.status, json.dumps(t.to_dict(), ensure_ascii=False))
                    for t in changed.values()
                ])  # fmt: skip
        except Exception:
            self._unsaved = changed
            raise
        for tour_key, tour in changed.items():
            if not tour.open and self.tours.pop(tour_key, None) is not None:
                for listener in self.listeners:
                    try:
                        listener(tour)
                    except Exception:
                        self.errors += 1
                        log.exception("patrol: a tour listener failed")
        return out

    def _schedule(self, key: tuple[str, str], route: RouteConfig, now: float,
                  changed: dict[tuple[str, str, float], Tour]) -> None:  # fmt: skip
        estate = self.estates[key[0]]
        tolerance = route.tolerance_minutes * 60
        horizon = self._horizon.get(key, now)
        for due in due_times(route, estate.timezone, horizon, now + tolerance):
            plan = [CheckpointPlan(c.id, c.after_minutes * 60) for c in route.checkpoints]
            tour = Tour(key[0], key[1], due, due + route.max_duration_minutes * 60, tolerance, plan)
            self.tours[(key[0], key[1], due)] = changed[(key[0], key[1], due)] = tour
            self._horizon[key] = due

    def _signals(self, tour: Tour, signals: list[Signal]) -> list[Transition]:
        estate = self.estates[tour.estate]
        route = self.routes[(tour.estate, tour.route)]
        return [
            transition(
                s, tour, route, estate.timezone, estate.zones.get(route.checkpoints[s.index].device, "")
            )
            for s in signals
        ]

    async def run(self) -> None:
        """Evaluate every tick, or at once when a punch arrives, until cancelled."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.tick)
            self._wake.clear()
            try:
                await self.evaluate()
            except Exception:
                self.errors += 1
                log.exception("patrol: evaluation failed; trying again at the next tick")

    def health(self) -> dict[str, int]:
        return {
            "patrol_open_tours": len(self.tours), "patrol_punches": self.punches,
            "patrol_punches_unmatched": self.unmatched, "patrol_punches_dropped": self.dropped,
            "patrol_errors": self.errors,
        }  # fmt: skip
