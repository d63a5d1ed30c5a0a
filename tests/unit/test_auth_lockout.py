"""Lock-out counters: N failures within the window lock a name (or an address) for a while; the clock is
the test's."""

from __future__ import annotations

from gateway.auth import LockOut, LockOutPolicy
from gateway.model import ManualClock


def test_failures_lock_a_name_within_the_window_only() -> None:
    clock = ManualClock()
    lock = LockOut(LockOutPolicy(failures=3, window=60, duration=300, address_failures=100), clock)
    assert lock.failed("li", "a") == []
    clock.advance(61)  # the first failure leaves the window
    assert lock.failed("li", "a") == []
    assert lock.failed("li", "b") == []
    assert lock.blocked("li", "c") is None
    assert lock.failed("li", "c") == ["user"]
    kind, left = lock.blocked("li", "z") or ("", 0.0)
    assert (kind, left) == ("user", 300)
    clock.advance(299)
    assert lock.blocked("li", "z") is not None
    clock.advance(2)
    assert lock.blocked("li", "z") is None
    assert lock.failed("li", "a") == []  # the count starts again after a lock


def test_success_clears_a_names_failures() -> None:
    clock = ManualClock()
    lock = LockOut(LockOutPolicy(failures=2, window=60, duration=60, address_failures=100), clock)
    lock.failed("li", "a")
    lock.succeeded("li")
    assert lock.failed("li", "a") == []


def test_an_address_is_throttled_across_names_and_memory_is_bounded() -> None:
    clock = ManualClock()
    lock = LockOut(
        LockOutPolicy(failures=5, window=60, duration=60, address_failures=3, max_tracked=50), clock
    )
    assert lock.failed("a", "203.0.113.9") == []
    assert lock.failed("b", "203.0.113.9") == []
    assert lock.failed("c", "203.0.113.9") == ["address"]
    assert lock.blocked("zhang", "203.0.113.9") == ("address", 60)
    assert lock.blocked("zhang", "10.0.0.1") is None
    for i in range(1000):
        lock.failed(f"name-{i}", f"10.1.{i // 250}.{i % 250}")
    assert len(lock._users._fails) <= 50 and len(lock._addresses._fails) <= 50
