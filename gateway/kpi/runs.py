"""Generator test runs: an engine run of at least the configured length counts once, when it reaches
that length (not when it ends). The KPI engine counts them (`generator_test_runs`); maintenance closes
its monthly test-run duty with them (gateway/maintenance). One rule, one place.
"""

from __future__ import annotations

__all__ = ["RunDetector"]


class RunDetector:
    """Per generator: the start of the current run and whether it has been counted. Pure: time in."""

    def __init__(self, min_seconds: float) -> None:
        self.min_seconds = min_seconds
        self.runs: dict[str, list[float]] = {}  # device → [run start, counted (0/1)]

    def engine(self, device: str, running: bool, now: float) -> bool:
        """An engine_state reading: True when this reading completes a test run (count it now)."""
        run = self.runs.get(device)
        if running and run is None:
            self.runs[device] = [now, 0.0]
            return False
        return run is not None and self.check(device, now, ending=not running)

    def check(self, device: str, now: float, ending: bool = False) -> bool:
        """True when the device's current run reached the length just now (it is counted once)."""
        start, counted = self.runs[device]
        done = not counted and now - start >= self.min_seconds
        if done:
            self.runs[device][1] = 1.0
        if ending:
            del self.runs[device]
        return done

    def settle(self, now: float) -> list[str]:
        """Devices whose running engine reached the length by `now` (a query between readings)."""
        return [device for device in list(self.runs) if self.check(device, now)]
