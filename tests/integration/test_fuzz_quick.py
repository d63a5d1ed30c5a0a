"""The fuzz bench's quick mode in the suite: 20,000 hostile payloads through a private Mosquitto into a
real gateway; no crash, every payload accounted for (processed or rejected by reason), dead letters out."""

from __future__ import annotations

import pytest

from bench.fuzz_mqtt import QUICK, report, run_fuzz

pytestmark = pytest.mark.integration


@pytest.mark.timeout(240)
async def test_twenty_thousand_hostile_payloads_leave_the_gateway_standing() -> None:
    result = await run_fuzz(QUICK, seed=1, max_seconds=180)
    print(report(result))
    assert result.failures() == [], report(result)
    assert result.crashed is None and result.core_errors == 0
    rejected = {reason for reasons in result.rejected.values() for reason in reasons}
    assert {"bad_json", "not_object", "bad_type", "unknown_channel", "duplicate"} <= rejected
    assert result.envelopes > QUICK // 10 and result.items_processed >= result.envelopes
    assert result.dead_letters["published"] > 0
    assert result.dead_letters["published"] + result.dead_letters["suppressed"] >= sum(
        c.total() - c["duplicate"] for c in result.rejected.values()
    )
