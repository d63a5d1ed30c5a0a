"""Scenarios: timelines of what happens to which simulated device, as data files.

    name: low-oil
    steps:
      - {at: 2, device: gen-1, do: set, args: {oil_pressure_running: 120}}
      - {at: 4, device: gate-north, do: event, args: {kind: door_forced}}

Actions: `set` (attributes of a Modbus model), `mains` ({ok: bool}), `fault` (silent / exception /
delay of a Modbus device), `event` (an MQTT event, {kind, ...attributes}), `publish` ({channel, payload}),
`silent` ({on: bool} for an MQTT device), `plate` ({plate, direction?, offline?, color?} for an ANPR camera),
`burst` ({kind, count, within, ...attributes}: `count` MQTT events spread over `within` s, e.g. denials).
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any, Literal

import aiomqtt
import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator
from ruamel.yaml import YAML

log = logging.getLogger(__name__)
SHIPPED = Path(__file__).with_name("scenarios")


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    at: float = Field(ge=0, description="Seconds after the scenario starts")
    device: str = Field(description="Device id")
    do: Literal["set", "mains", "fault", "event", "publish", "silent", "plate", "burst"]
    args: dict[str, Any] = Field(default_factory=dict)
    say: str = Field("", description="What the demo prints when the step runs")

    @model_validator(mode="after")
    def _burst_args(self) -> Step:
        if self.do == "burst":
            count, within = self.args.get("count"), self.args.get("within", 0)
            if not isinstance(self.args.get("kind"), str):
                raise ValueError("a burst needs 'kind'")
            if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 1000:
                raise ValueError("a burst needs 'count': 1..1000 events")
            if not isinstance(within, int | float) or isinstance(within, bool) or within < 0:
                raise ValueError("a burst's 'within' is seconds >= 0")
        return self


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    description: str = ""
    steps: list[Step]


def load_scenario(name_or_path: str) -> Scenario:
    path = Path(name_or_path)
    if not path.is_file():
        path = SHIPPED / f"{name_or_path}.yaml"
    data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    return Scenario.model_validate(data)


async def play(scenario: Scenario, host: Any, speed: float = 1.0, echo: Any = None) -> None:
    """Run the steps at their times (divided by `speed`) against a SimulationHost."""
    start = time.monotonic()
    for step in sorted(scenario.steps, key=lambda s: s.at):
        delay = start + step.at / speed - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if echo is not None and step.say:
            echo(step)
        args = step.args
        if step.do == "burst":  # its spread is compressed with the timeline
            args = {**args, "within": float(args.get("within", 0)) / speed}
        try:
            await host.apply(step.device, step.do, args)
        except (OSError, httpx.HTTPError, aiomqtt.MqttError) as exc:  # the gateway (or broker) is not there
            log.warning(
                "scenario step at %gs on %s (%s) failed: %s; continuing", step.at, step.device, step.do, exc
            )
