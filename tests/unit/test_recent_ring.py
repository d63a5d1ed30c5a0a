"""The console's recent-readings rings (gateway/console/recent.py): compact, bounded, typed.

The soak of issue 9 found the old deque-of-objects rings growing towards a gigabyte at 10,000 devices;
these tests pin the properties that keep them small: the ring size follows the sample budget, memory is
taken when a ring is created and not after, values come back with their type, the ring wraps in order.
"""

from __future__ import annotations

import tracemalloc

from gateway.console.recent import RecentReadings
from gateway.model import Quality, Reading


def reading(point: str, value: float | int | bool | str, ts: float, device: str = "d1") -> Reading:
    return Reading(int(ts * 1e9), "e1", device, point, value, "kPa", Quality.GOOD)


def test_values_keep_their_type_and_the_ring_wraps_in_order() -> None:
    recent = RecentReadings(per_point=4, min_interval=0.0)
    for n in range(10):
        recent.add(reading("level", 1.5 * n, 100.0 + n))
        recent.add(reading("running", n % 2 == 0, 100.0 + n))
        recent.add(reading("count", n, 100.0 + n))
        recent.add(reading("mode", "auto" if n % 2 else "manual", 100.0 + n))
    unit, level = recent.series("e1", "d1", "level", 0)
    assert unit == "kPa" and [s.value for s in level] == [9.0, 10.5, 12.0, 13.5]
    assert [s.ts for s in level] == [106.0, 107.0, 108.0, 109.0]
    assert [s.value for s in recent.series("e1", "d1", "running", 0)[1]] == [True, False, True, False]
    assert all(type(s.value) is bool for s in recent.series("e1", "d1", "running", 0)[1])
    assert [s.value for s in recent.series("e1", "d1", "count", 107.5)[1]] == [8, 9]
    assert all(type(s.value) is int for s in recent.series("e1", "d1", "count", 0)[1])
    assert [s.value for s in recent.series("e1", "d1", "mode", 0)[1]] == ["manual", "auto", "manual", "auto"]


def test_a_point_that_mixes_ints_and_floats_reads_back_as_floats() -> None:
    recent = RecentReadings(per_point=8, min_interval=0.0)
    for n, value in enumerate((1, 2, 2.5, 3)):
        recent.add(reading("p", value, 10.0 + n))
    assert [s.value for s in recent.series("e1", "d1", "p", 0)[1]] == [1.0, 2.0, 2.5, 3.0]


def test_quality_is_kept_per_sample() -> None:
    recent = RecentReadings(per_point=8, min_interval=0.0)
    recent.add(reading("p", 1.0, 1.0))
    recent.add(Reading(int(2e9), "e1", "d1", "p", 1.0, "kPa", Quality.BAD))
    assert [s.quality for s in recent.series("e1", "d1", "p", 0)[1]] == ["good", "bad"]


def test_many_points_share_a_budget_and_memory_stops_growing_once_the_rings_exist() -> None:
    recent = RecentReadings(per_point=720, min_interval=0.0, expected_series=500, max_samples=50_000)
    assert recent.per_point == 100  # 50,000 samples over 500 points
    small = RecentReadings(per_point=720, expected_series=10, max_samples=200_000)
    assert small.per_point == 720  # few points: the full hour at 5 s
    floor = RecentReadings(per_point=720, expected_series=1_000_000, max_samples=200_000)
    assert floor.per_point == 60  # never fewer than min_per_point
    tracemalloc.start()
    for n in range(500):  # every ring created and filled once
        for k in range(100):
            recent.add(reading("p", float(k), 1000.0 + k, device=f"d{n}"))
    filled, _ = tracemalloc.get_traced_memory()
    for lap in range(2):  # two more laps round every ring: no new memory
        for n in range(500):
            for k in range(100):
                recent.add(reading("p", float(k), 2000.0 + lap * 100 + k, device=f"d{n}"))
    after, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    per_sample = filled / 50_000
    assert per_sample < 30, f"{per_sample:.1f} bytes a sample"
    assert after - filled < 50_000, f"grew {after - filled} bytes after the rings were full"
