"""HTTP-push camera profiles: where a camera's JSON keeps the plate, and what the camera wants back.

Cameras that push (臻识/Alphadigi, Dahua ITC) POST one JSON document per vehicle and act on the reply:
an Alphadigi camera opens its barrier on `{"Response_AlarmInfoPlate":{"info":"ok"}}`; a Dahua camera
re-sends until it reads `{"Result":true}`. So a profile is paths into the document plus the replies.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.model import Family


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PushTimestamp(_Strict):
    path: str = Field(description="Dotted path of the camera's capture time")
    format: Literal["epoch", "local"] = Field(
        "epoch",
        description="epoch: seconds since 1970; local: 'YYYY-MM-DD HH:MM:SS[.fff]' in the estate's zone",
    )


class HttpPushProfile(_Strict):
    protocol: Literal["http_push"] = "http_push"
    name: str = Field(description="Profile name (file stem)")
    family: Family = Field(description="Device family (plate_barrier)")
    description: str = Field("", description="Vendor, firmware, source of the format")
    max_body: int = Field(
        4 * 1024 * 1024,
        ge=1024,
        description="Larger bodies are refused unread (pictures ride along in base64)",
    )
    plate: str = Field(description="Dotted path of the plate text")
    record_id: list[str] = Field(
        default_factory=list,
        description="Dotted paths whose values together identify a record (re-sends repeat it); "
        "empty: plate + timestamp",
    )
    offline: str | None = Field(None, description="Dotted path of the 'sent after an outage' flag")
    timestamp: PushTimestamp | None = Field(None, description="The camera's capture time")
    direction: str | None = Field(None, description="Dotted path of the vehicle's direction, if reported")
    camera_list: str | None = Field(None, description="Dotted path of the camera's own list verdict")
    attributes: dict[str, str] = Field(default_factory=dict, description="Attribute → dotted path")
    pictures: dict[Literal["plate", "scene"], str] = Field(
        default_factory=dict,
        description="Picture kind → dotted path of its base64 JPEG or its URL; kept as incident evidence "
        "(gateway/evidence), never as an attribute",
    )
    values: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="Raw value (as text) → canonical, per attribute, direction or camera_list "
        "(e.g. colorType 5 → green)",
    )
    reply_open: dict[str, Any] = Field(description="JSON reply that lets the vehicle through")
    reply_hold: dict[str, Any] = Field(description="JSON reply that keeps the barrier down")

    @model_validator(mode="after")
    def _family(self) -> HttpPushProfile:
        if self.family is not Family.PLATE_BARRIER:
            raise ValueError("HTTP push profiles are for plate_barrier cameras")
        known = {"direction", "camera_list", *self.attributes}
        unknown = sorted(set(self.values) - known)
        if unknown:
            raise ValueError(f"values given for {unknown}, which are not attributes of this profile")
        return self
