"""Work over many items in slices of the event loop's time, so a periodic round never stalls an alarm.

A round over every estate (the KPI sinks' figures, a regulator's `GET /kpis`, the KPI save) or over every
row it produced (InfluxDB lines) took 100-260 ms at 250 estates when done in one loop turn; an alarm that
arrived meanwhile waited as long (bench/kpi_round.py). `paced` gives the loop back whenever `budget`
seconds have gone; each item is computed in one go.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

__all__ = ["PACE_BUDGET", "paced"]

_T = TypeVar("_T")
_X = TypeVar("_X")
PACE_BUDGET = 0.004  # s: the longest paced work holds the event loop (one item may overrun it)


async def paced(items: Iterable[_X], compute: Callable[[_X], _T], budget: float = PACE_BUDGET) -> list[_T]:
    """`compute(item)` for each item, in order, with a loop turn whenever `budget` seconds have gone."""
    out: list[_T] = []
    clock = time.perf_counter
    slice_end = clock() + budget
    for item in list(items):
        out.append(compute(item))
        if clock() >= slice_end:
            await asyncio.sleep(0)
            slice_end = clock() + budget
    return out
