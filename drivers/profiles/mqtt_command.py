"""Commands to an MQTT-bridged controller, as profile data: a topic and payload template, a proof state.

    commands:
      open_door:
        topic: "{base}/command"
        payload: {action: open, door: "{door}", request_id: "{request_id}"}
        defaults: {door: 1}
        confirm: {point: door_open, values: [true], within: 5}

Templates fill `{name}` from `base` (the device's topic filter without its trailing wildcards), `device`
(its id), `request_id` (new for every command), then the command's `defaults`, which a device may
override with its config's `mqtt.vars`. A string that is exactly one `{name}` takes the value itself, so
`door: "{door}"` sends the number 1, not the text "1" (controllers check types).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["BUILTIN_FIELDS", "MqttCommand", "MqttConfirm", "render", "template_fields"]

_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
BUILTIN_FIELDS = frozenset({"base", "device", "request_id"})
TemplateValue = str | int | float | bool


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MqttConfirm(_Strict):
    """The state reading that proves a command worked, and how long to wait for it."""

    point: str = Field(description="State point of this profile, read from the device's next state messages")
    values: list[str | int | float | bool] = Field(min_length=1, description="Any of these means it worked")
    within: float = Field(5.0, gt=0, le=120, description="Seconds to wait for the proof after publishing")


class MqttCommand(_Strict):
    """One command: published QoS 1 through the gateway's broker connection."""

    topic: str = Field(min_length=1, description="Topic template, e.g. '{base}/command'")
    payload: dict[str, Any] = Field(
        default_factory=dict, description="JSON object template; '{name}' fields are filled (see above)"
    )
    defaults: dict[str, TemplateValue] = Field(
        default_factory=dict, description="Values of the template's own fields (a device's mqtt.vars win)"
    )
    confirm: MqttConfirm | None = Field(None, description="State that proves it worked (e.g. door_open)")

    @model_validator(mode="after")
    def _one_topic(self) -> MqttCommand:
        if {"+", "#"} & set(self.topic.split("/")):
            raise ValueError(f"topic {self.topic!r}: a command is published to one topic, not a filter")
        return self

    def missing_fields(self) -> dict[str, list[str]]:
        """Template fields with no value (not built in, not in defaults), by 'topic' / 'payload'."""
        known = BUILTIN_FIELDS | set(self.defaults)
        out = {}
        for key, template in (("topic", self.topic), ("payload", self.payload)):
            missing = sorted(template_fields(template) - known)
            if missing:
                out[key] = missing
        return out

    @property
    def fields(self) -> set[str]:
        """Every field name the topic and payload use."""
        return template_fields(self.topic) | template_fields(self.payload)


def template_fields(template: Any) -> set[str]:
    """Names of the `{name}` fields anywhere in a string, list or mapping."""
    if isinstance(template, str):
        return set(_FIELD.findall(template))
    if isinstance(template, Mapping):
        return {name for value in template.values() for name in template_fields(value)}
    if isinstance(template, list):
        return {name for value in template for name in template_fields(value)}
    return set()


def render(template: Any, values: Mapping[str, TemplateValue]) -> Any:
    """Fill every field; a string that is exactly one field becomes the value itself."""
    if isinstance(template, str):
        whole = _FIELD.fullmatch(template)
        if whole is not None:
            return values[whole.group(1)]
        return _FIELD.sub(lambda m: _text(values[m.group(1)]), template)
    if isinstance(template, Mapping):
        return {key: render(value, values) for key, value in template.items()}
    if isinstance(template, list):
        return [render(value, values) for value in template]
    return template


def _text(value: TemplateValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
