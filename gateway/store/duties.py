"""Engine-neutral rows of guard tours and maintenance duties (tables in sqlite_patrol.py and
postgres_patrol.py): a completion record of a maintenance duty, kept for the audit and the console."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["DutyStateRow", "MaintenanceRecord", "TourRow"]

TourRow = tuple[str, str, float, str, str]  # estate, route, due_at (epoch s), status, JSON of the tour
DutyStateRow = tuple[str, str, str]  # estate, duty, JSON of the duty's state


@dataclass(frozen=True)
class MaintenanceRecord:
    """A duty done: who, when, how (`detected` from readings, or `recorded` by a person), a note."""

    id: int | None
    estate: str
    duty: str
    done_at: float  # epoch s
    by: str
    how: Literal["detected", "recorded"]
    note: str = ""
    recorded_at: float = 0.0
