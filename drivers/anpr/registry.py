"""The estate's vehicle registry and the barrier decision it drives.

Seeds from the estates (DEVICES.md): residents pass on their registered plate; visitors pass on a pass
that is valid *now*; a blacklisted plate never opens the barrier, whatever else it is; an unregistered
vehicle may enter only where the estate allows it (by default the guard decides) and may not leave
without a pass. The decision is made here, once, for every camera of the estate: an HTTP-push camera
opens by our reply, an MQTT camera through the barrier relay.
"""

from __future__ import annotations

import threading
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Literal

Direction = Literal["in", "out"]

_SEPARATORS = str.maketrans("", "", " ·•.-_\t")
# What cameras send when they saw a vehicle but read no plate (臻识 "_无_", others "无牌"/"unknown").
_NO_PLATE = {"", "无", "无牌", "_无_", "无车牌", "UNKNOWN", "NONE", "NOPLATE"}


def normalize_plate(raw: str) -> str:
    """One spelling per plate: full-width → half-width (NFKC), upper case, no separators.

    '粤b·12345' and '粤Ｂ１２３４５' are the same car as '粤B12345'; an empty or 'no plate' read is ''.
    """
    plate = unicodedata.normalize("NFKC", raw).upper().translate(_SEPARATORS)
    return "" if plate in _NO_PLATE else plate


class Category(StrEnum):
    RESIDENT = "resident"
    VISITOR = "visitor"
    UNKNOWN = "unknown"
    BLACKLISTED = "blacklisted"


EVENT_KIND = {
    Category.RESIDENT: "plate_resident",
    Category.VISITOR: "plate_visitor",
    Category.UNKNOWN: "plate_unknown",
    Category.BLACKLISTED: "plate_blacklisted",
}


@dataclass(frozen=True)
class Vehicle:
    """A registry entry. `valid_from`/`valid_until` (epoch s) bound visitor passes; None is open-ended."""

    plate: str
    category: Category
    label: str = ""  # who: "3-1502 张先生", "访客 5-201", a blacklist reason
    valid_from: float | None = None
    valid_until: float | None = None
    ref: int | None = None  # a pass registered through the API: its id in the store

    def valid_at(self, ts: float) -> bool:
        return (self.valid_from is None or self.valid_from <= ts) and (
            self.valid_until is None or ts < self.valid_until
        )


@dataclass(frozen=True)
class Decision:
    """What the barrier does for one read, and the event the core sees."""

    plate: str
    category: Category
    open: bool
    detail: str  # why, for the operator: "resident 3-1502", "visitor pass expired", ...

    @property
    def kind(self) -> str:
        return EVENT_KIND[self.category]


class VehicleRegistry:
    """Residents, visitor passes and the blacklist of one estate, looked up by normalised plate.

    Reads happen on every plate event, writes when the gatehouse registers a visitor: a lock keeps a
    lookup from seeing a half-replaced entry when writes come from another thread (the API's).
    """

    def __init__(self, vehicles: Iterable[Vehicle] = (), unknown_entry: Literal["hold", "open"] = "hold"):
        self.unknown_entry = unknown_entry
        self._lock = threading.Lock()
        self._residents: dict[str, Vehicle] = {}
        self._blacklist: dict[str, Vehicle] = {}
        self._passes: dict[str, list[Vehicle]] = {}
        for vehicle in vehicles:
            self.add(vehicle)

    def add(self, vehicle: Vehicle) -> Vehicle:
        plate = normalize_plate(vehicle.plate)
        if not plate:
            raise ValueError(f"{vehicle.plate!r} is not a plate")
        entry = replace(vehicle, plate=plate)
        with self._lock:
            if entry.category is Category.RESIDENT:
                self._residents[plate] = entry
            elif entry.category is Category.BLACKLISTED:
                self._blacklist[plate] = entry
            elif entry.category is Category.VISITOR:
                self._passes.setdefault(plate, []).append(entry)
            else:
                raise ValueError("only residents, visitors and blacklisted vehicles are registered")
        return entry

    def drop_stored_passes(self) -> int:
        """Forget the passes registered through the API (`ref` set), to load them again from the store
        (an estate arriving from another gateway instance, which may have added or deleted some)."""
        with self._lock:
            before = sum(len(v) for v in self._passes.values())
            kept = {p: [v for v in vs if v.ref is None] for p, vs in self._passes.items()}
            self._passes = {p: vs for p, vs in kept.items() if vs}
            return before - sum(len(v) for v in self._passes.values())

    def remove(self, plate: str, category: Category) -> int:
        """Remove a plate's entries of one category; returns how many were removed."""
        key = normalize_plate(plate)
        with self._lock:
            if category is Category.VISITOR:
                return len(self._passes.pop(key, []))
            table = self._residents if category is Category.RESIDENT else self._blacklist
            return 0 if category is Category.UNKNOWN or table.pop(key, None) is None else 1

    def remove_pass(self, ref: int) -> bool:
        """Remove the visitor pass registered under store id `ref`."""
        with self._lock:
            for plate, passes in self._passes.items():
                kept = [p for p in passes if p.ref != ref]
                if len(kept) != len(passes):
                    if kept:
                        self._passes[plate] = kept
                    else:
                        del self._passes[plate]
                    return True
        return False

    def entries(self) -> list[Vehicle]:
        with self._lock:
            passes = [v for vs in self._passes.values() for v in vs]
            return [*self._residents.values(), *passes, *self._blacklist.values()]

    def prune(self, now: float) -> int:
        """Forget visitor passes that ended before `now`; returns how many."""
        with self._lock:
            before = sum(len(v) for v in self._passes.values())
            self._passes = {
                plate: kept
                for plate, vs in self._passes.items()
                if (kept := [v for v in vs if v.valid_until is None or v.valid_until > now])
            }
            return before - sum(len(v) for v in self._passes.values())

    def decide(
        self, raw_plate: str, direction: Direction | None, ts: float, camera_list: str | None = None
    ) -> Decision:
        """The barrier decision for one read at `ts` (epoch s).

        `camera_list` is the camera's own list verdict ("allow" / "block"), used only for plates the
        registry does not know, so a site that keeps its lists in the camera still gets the right events.
        """
        plate = normalize_plate(raw_plate)
        with self._lock:
            banned = self._blacklist.get(plate)
            resident = self._residents.get(plate)
            passes = list(self._passes.get(plate, ()))
        if banned is not None:
            return Decision(plate, Category.BLACKLISTED, False, f"blacklisted: {banned.label}".rstrip(": "))
        if resident is not None:
            return Decision(plate, Category.RESIDENT, True, f"resident {resident.label}".rstrip())
        valid = next((p for p in passes if p.valid_at(ts)), None)
        if valid is not None:
            return Decision(plate, Category.VISITOR, True, f"visitor pass {valid.label}".rstrip())
        if camera_list == "block":
            return Decision(plate, Category.BLACKLISTED, False, "on the camera's block list")
        if camera_list == "allow":
            return Decision(plate, Category.RESIDENT, True, "on the camera's allow list")
        why = "visitor pass not valid now" if passes else "not registered"
        if not plate:
            why = "no plate read"
        if direction == "in" and self.unknown_entry == "open":
            return Decision(plate, Category.UNKNOWN, True, f"{why}; entry allowed by estate policy")
        guard = "may not leave without a pass" if direction == "out" else "guard to decide"
        return Decision(plate, Category.UNKNOWN, False, f"{why}; {guard}")
