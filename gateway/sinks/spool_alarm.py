"""The health alarm "metrics spool failing": the spool's disk refuses writes (full, read-only, gone).

While it lasts, points the sink could not hand to InfluxDB are dropped (counted as `spool_error`); the alert
core is not affected, but someone should free the disk. The alarm is a Transition on device "gateway" in
every estate (as the escalation engine's channel-failure alarm), so it becomes an incident and escalates
like any other; the first spool write that succeeds again clears it.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.alerts import Transition
from gateway.model import Priority

__all__ = ["RULE", "SpoolAlarm"]

RULE = "metrics_spool_failing"


class SpoolAlarm:
    """Failure and success reports from the sink in; the transitions of a change out (raise once, clear
    once, however many writes fail in between)."""

    def __init__(self, estates: Sequence[str]) -> None:
        self.estates = list(estates)
        self.failing = False  # the last spool write failed
        self.raised = False  # the alarm is active (transitions handed out)
        self.reason = ""

    def failed(self, exc: BaseException) -> None:
        self.failing, self.reason = True, str(exc)

    def succeeded(self) -> None:
        self.failing = False

    def transitions(self, now: float) -> list[Transition]:
        """The raise or the clear when the state changed since the last call; otherwise nothing."""
        if self.failing == self.raised:
            return []
        self.raised = self.failing
        reason = self.reason[:200]
        return [
            Transition(
                f"{estate}/gateway/{RULE}",
                estate,
                "gateway",
                RULE,
                Priority.HIGH,
                self.raised,
                now,
                None,
                f"指标缓存写入失败（磁盘已满？）：{reason}",
                f"Metrics spool cannot be written (disk full?): {reason}",
            )
            for estate in self.estates
        ]
