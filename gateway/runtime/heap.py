"""The garbage collector and a started gateway: the start-up heap is frozen.

CPython's full collection (generation 2) visits every tracked object. A started gateway holds some
130,000 that live as long as the process: modules, pydantic schemas, the config, profiles, routes, rule
indexes. At 8,000 msgs/s a full pass came every few seconds and took 60-70 ms, all of it a stall of the
event loop that went straight into the live feed's p99 (issue 9, bench/README.md). `gc.freeze()` after
start-up moves those objects into a permanent generation the collector skips: the same pass took about
5 ms. What is made later (incidents, readings in the rings, connections) is collected as before.

A process decision: `estate-gateway run` and `demo` freeze once their App is ready. Code that starts and
stops several Apps in one process (the test suite) does not: a frozen object is never collected, and an
App's reference cycles would outlive it. The benchmarks freeze after start and `thaw` after stop.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)


def freeze_startup_heap() -> int:
    """Collect, then freeze what is left (the start-up heap); returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.debug("gc: %d start-up objects frozen (never scanned by a collection again)", frozen)
    return frozen


def thaw() -> None:
    """Give the frozen objects back to the collector (after an App stops, in a process that goes on)."""
    gc.unfreeze()
