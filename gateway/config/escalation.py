"""Escalation policy config: who is told about which incidents, through which channels, and when.

A policy matches incidents by estate, priority and rule, and is a list of steps; each step names roles
(from the estate's duty roster) or people (`person:<id>`), the channels in fall-over order, and when it
is due: `after` seconds from the incident opening, if it is still unacknowledged by then.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.escalation.channel_config import ChannelConfig
from gateway.model import Priority


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EscalationStepConfig(_Strict):
    after: float = Field(ge=0, description="Seconds after the incident opened (0: at once), if still unacked")
    notify: list[str] = Field(
        min_length=1, description="Roles of the estate's duty roster, or person:<id> for a named person"
    )
    channels: list[str] = Field(
        min_length=1, description="Channel names in fall-over order (the first that delivers wins)"
    )
    repeat_every: float | None = Field(
        None, gt=0, description="Re-notify every N s while still unacked (last step only)"
    )
    repeat_max: int = Field(3, ge=0, le=100, description="At most this many re-notifications")


class EscalationPolicyConfig(_Strict):
    id: str = Field(description="Policy id; the same id in the site file replaces a shipped default")
    estates: list[str] = Field(default_factory=lambda: ["*"], description="Estate ids it applies to; *: all")
    priorities: list[Priority] = Field(default_factory=list, description="Incident priorities; empty: any")
    rules: list[str] = Field(
        default_factory=list, description="Rule ids or globs (fire_*); empty: any rule of those priorities"
    )
    steps: list[EscalationStepConfig] = Field(min_length=1, description="The ladder, in order of `after`")
    quiet_hours: str | None = Field(
        None,
        pattern=r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$",
        description="HH:MM-HH:MM (estate time) when its notifications wait until the end; never for critical",
    )
    enabled: bool = Field(True, description="False switches a shipped default off")

    @model_validator(mode="after")
    def _ordered(self) -> EscalationPolicyConfig:
        afters = [step.after for step in self.steps]
        if afters != sorted(afters):
            raise ValueError("steps must be in order of 'after'")
        if any(step.repeat_every is not None for step in self.steps[:-1]):
            raise ValueError("only the last step may repeat")
        if self.quiet_hours and (not self.priorities or Priority.CRITICAL in self.priorities):
            raise ValueError("quiet hours never apply to critical: give 'priorities' without critical")
        return self


class EscalationConfig(_Strict):
    enabled: bool = Field(True, description="Run escalation (notifications) at all")
    public_url: str | None = Field(
        None, description="Base URL operators reach the gateway at, for one-click ack links (unset: none)"
    )
    link_secret: str | None = Field(
        None, min_length=16, description="Secret that signs ack links; write ${ENV_VAR}"
    )
    link_ttl_hours: float = Field(24, gt=0, le=720, description="Hours an ack link stays valid")
    tick: float = Field(0.2, gt=0, le=10, description="Seconds between looks for due steps")
    fallback_role: str = Field(
        "control_room", description="Role told instead when a step's roles have nobody on duty"
    )
    policies: list[EscalationPolicyConfig] = Field(
        default_factory=list, description="Site policies, added to (or replacing) the shipped defaults"
    )
    channels: list[ChannelConfig] = Field(
        default_factory=list, description="Notification channels by name (webhook, sms_http, dingtalk, ...)"
    )
    group_interval: float = Field(
        10.0, ge=0, le=600,
        description="A person told about a step is told about more incidents of it at most this often: an "
        "alarm flood is one message per interval with the count, not one per incident (0: off)",
    )  # fmt: skip
    channel_alarm_after: int = Field(
        3, ge=1, le=100, description="Failed tries in a row after which a channel raises a health alarm"
    )
    attempts: int = Field(3, ge=1, le=10, description="Tries per channel before falling over to the next")
    backoff: float = Field(2.0, gt=0, le=60, description="Seconds before the first retry; doubles each time")

    @model_validator(mode="after")
    def _unique_channels(self) -> EscalationConfig:
        names = [channel.name for channel in self.channels]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"channel names appear twice: {dupes}")
        return self
