"""Per-estate local fallback: when the uplink is down, critical alarms sound on site.

estates:
  - id: sunshine
    local_fallback: {after: 120, outputs: [siren], priorities: [critical]}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gateway.model import Family, Priority

__all__ = ["LocalFallbackConfig", "local_output_problem"]


class LocalFallbackConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    after: float = Field(
        120, gt=0, le=86400,
        description="Seconds every remote channel (webhook, SMS, robots, e-mail, MQTT) of the estate must "
        "have been failing before alarms go to the local outputs",
    )  # fmt: skip
    outputs: list[str] = Field(
        min_length=1, description="Names of `modbus_relay` escalation channels of this estate to pulse"
    )
    priorities: list[Priority] = Field(
        default_factory=lambda: [Priority.CRITICAL], min_length=1, description="Incident priorities it covers"
    )


def local_output_problem(estates: Sequence[Any], channels: Sequence[Any]) -> str | None:
    """What is wrong with the site's local outputs, or None: a `modbus_relay` channel must name a
    local_output device of its estate, and a fallback only outputs of its own estate. (Duck-typed over
    the estate and channel configs, which import this module.)"""
    relays = {c.name: c for c in channels if c.type == "modbus_relay"}
    devices = {(e.id, d.id): d for e in estates for d in e.devices}
    for relay in relays.values():
        device = devices.get((relay.estate, relay.device))
        if device is None or device.family is not Family.LOCAL_OUTPUT:
            return (
                f"escalation channel {relay.name}: {relay.estate}/{relay.device} is not a local_output "
                "device of that estate"
            )
    for estate in estates:
        fallback = estate.local_fallback
        for name in fallback.outputs if fallback is not None else ():
            relay = relays.get(name)
            if relay is None or relay.estate != estate.id:
                return (
                    f"estates {estate.id}: local_fallback output {name!r} is not a modbus_relay channel of it"
                )
    return None
