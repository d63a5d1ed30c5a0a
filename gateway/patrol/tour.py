"""One guard tour: the state machine of a route's scheduled run. Pure: no I/O, time comes in.

    due ──first punch──▶ in_progress ──last checkpoint──▶ completed | late | out_of_order
     │                        │
     └──────── ends_at (scheduled start + max duration) ──▶ missed (some checkpoint never punched)

Checkpoint i is expected at `due_at + after_i` and is on time when punched by that plus the tolerance
(its deadline). What raises an alarm (each once per tour, each cleared once):
- `patrol_late`: a checkpoint's deadline passed without a punch (for a tour not yet started, only the
  first checkpoint's: one alarm says the tour did not start). Cleared by the late punch or the tour's end.
- `patrol_out_of_order`: a checkpoint punched while an earlier one is still expected (the earlier ones
  are then skipped). Cleared at the tour's end.
- `patrol_missed`: at the tour's end, each checkpoint never punched (a tour never started: one alarm for
  the whole tour). Raised and cleared at once, as an event alarm: the incident stays for the operator.
A punch of a checkpoint already passed (a second swipe) changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["CheckpointPlan", "Signal", "Tour", "TourStatus"]

TourStatus = Literal["due", "in_progress", "completed", "late", "out_of_order", "missed"]
FINAL: frozenset[str] = frozenset({"completed", "late", "out_of_order", "missed"})


@dataclass(frozen=True)
class CheckpointPlan:
    """What a tour needs to know of a checkpoint: its id and its offset from the scheduled start."""

    id: str
    after_s: float


@dataclass(frozen=True)
class Signal:
    """An alarm change the tour asks for: raise (active) or clear `rule` on checkpoint `index`.
    `other`: the checkpoint that was expected instead (out of order); `whole`: the whole tour."""

    rule: str
    index: int
    active: bool
    ts: float
    other: int | None = None
    whole: bool = False


@dataclass
class Tour:
    """One scheduled run of one route. `checkpoints` holds each one's status and punch time."""

    estate: str
    route: str
    due_at: float
    ends_at: float
    tolerance_s: float
    plan: list[CheckpointPlan]
    status: TourStatus = "due"
    started_at: float | None = None
    finished_at: float | None = None
    next: int = 0  # index of the checkpoint expected next
    states: list[str] = field(default_factory=list)  # pending | on_time | late | skipped | missed
    punched: list[float | None] = field(default_factory=list)
    raised: dict[str, Signal] = field(default_factory=dict)  # "rule/index" → the raise, until cleared
    order_broken: bool = False

    def __post_init__(self) -> None:
        if not self.states:
            self.states = ["pending"] * len(self.plan)
            self.punched = [None] * len(self.plan)

    @property
    def open(self) -> bool:
        return self.status not in FINAL

    @property
    def opens_at(self) -> float:
        """Punches are taken from this early (a guard may start within the tolerance before)."""
        return self.due_at - self.tolerance_s

    def deadline(self, index: int) -> float:
        return self.due_at + self.plan[index].after_s + self.tolerance_s

    def takes(self, at: float) -> bool:
        """Would a punch at `at` belong to this tour?"""
        return self.open and self.opens_at <= at <= self.ends_at

    # -- input -----------------------------------------------------------------------------------
    def punch(self, index: int, at: float) -> list[Signal]:
        """Checkpoint `index` punched at `at` (deadlines before `at` are judged first)."""
        signals = self.advance(at)
        if not self.open or index < self.next:
            return signals
        if self.status == "due":
            self.status, self.started_at = "in_progress", at
        if index > self.next:  # earlier checkpoints skipped
            for skipped in range(self.next, index):
                self.states[skipped] = "skipped"
            self.order_broken = True
            signals.append(self._raise("patrol_out_of_order", index, at, other=self.next))
        self.punched[index] = at
        self.states[index] = "on_time" if at <= self.deadline(index) else "late"
        signals.extend(self._clear("patrol_late", index, at))
        self.next = index + 1
        if self.next == len(self.plan):
            signals.extend(self._finish(at))
        return signals

    def advance(self, now: float) -> list[Signal]:
        """Judge the deadlines and the end of the tour up to `now`."""
        signals: list[Signal] = []
        if not self.open:
            return signals
        last = len(self.plan) if self.status == "in_progress" else min(1, len(self.plan))
        for index in range(self.next, last):
            if self.states[index] == "pending" and self.deadline(index) < now:
                key = f"patrol_late/{index}"
                if key not in self.raised:
                    signals.append(self._raise("patrol_late", index, min(now, self.ends_at)))
        if now >= self.ends_at:
            signals.extend(self._finish(self.ends_at))
        return signals

    # -- outcome ---------------------------------------------------------------------------------
    def _finish(self, at: float) -> list[Signal]:
        signals: list[Signal] = []
        never = self.status == "due"
        for index in range(self.next, len(self.plan)):
            self.states[index] = "missed"
        missed = [i for i, s in enumerate(self.states) if s == "missed"]
        if never:
            signals += [
                Signal("patrol_missed", 0, True, at, whole=True),
                Signal("patrol_missed", 0, False, at),
            ]
        else:
            for index in missed:
                signals += [
                    Signal("patrol_missed", index, True, at),
                    Signal("patrol_missed", index, False, at),
                ]
        for key in list(self.raised):
            rule, number = key.split("/")
            signals.extend(self._clear(rule, int(number), at))
        if missed:
            self.status = "missed"
        elif self.order_broken:
            self.status = "out_of_order"
        else:
            self.status = "late" if "late" in self.states else "completed"
        self.finished_at = at
        return signals

    @property
    def completed(self) -> bool:
        """Every checkpoint punched, in order (late or not): counts for 巡更完成率."""
        return self.status in ("completed", "late")

    @property
    def on_time(self) -> bool:
        return self.status == "completed"

    def _raise(self, rule: str, index: int, at: float, other: int | None = None) -> Signal:
        signal = Signal(rule, index, True, at, other)
        self.raised[f"{rule}/{index}"] = signal
        return signal

    def _clear(self, rule: str, index: int, at: float) -> list[Signal]:
        raised = self.raised.pop(f"{rule}/{index}", None)
        return [] if raised is None else [Signal(rule, index, False, at, raised.other)]

    # -- persistence -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "estate": self.estate, "route": self.route, "due_at": self.due_at, "ends_at": self.ends_at,
            "tolerance_s": self.tolerance_s, "plan": [[c.id, c.after_s] for c in self.plan],
            "status": self.status, "started_at": self.started_at, "finished_at": self.finished_at,
            "next": self.next, "states": self.states, "punched": self.punched,
            "raised": {k: [s.rule, s.index, s.ts, s.other] for k, s in self.raised.items()},
            "order_broken": self.order_broken,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Tour:
        return cls(
            estate=str(raw["estate"]), route=str(raw["route"]), due_at=float(raw["due_at"]),
            ends_at=float(raw["ends_at"]), tolerance_s=float(raw["tolerance_s"]),
            plan=[CheckpointPlan(str(i), float(a)) for i, a in raw["plan"]], status=raw["status"],
            started_at=raw["started_at"], finished_at=raw["finished_at"], next=int(raw["next"]),
            states=list(raw["states"]), punched=list(raw["punched"]),
            raised={
                k: Signal(str(r), int(i), True, float(t), o) for k, (r, i, t, o) in raw["raised"].items()
            },
            order_broken=bool(raw["order_broken"]),
        )  # fmt: skip
