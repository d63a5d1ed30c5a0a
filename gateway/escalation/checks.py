"""Escalation set-up problems worth a warning at check-config time (not errors: the shipped policies name
roles and channels a small site may not have, and the engine falls back to the control room)."""

from __future__ import annotations

from gateway.config import GatewayConfig
from gateway.escalation.policy import load_default_policies, merge_policies


def escalation_warnings(config: GatewayConfig) -> list[str]:
    esc = config.escalation
    if not esc.enabled:
        return []
    policies = merge_policies(load_default_policies(), esc.policies)
    channels = {c.name for c in esc.channels}
    warnings: list[str] = []
    used = sorted({name for p in policies for step in p.steps for name in step.channels})
    missing = [name for name in used if name not in channels]
    if missing:
        warnings.append(
            "escalation: policies name channels not configured here (skipped when notifying): "
            + ", ".join(missing)
        )
    if not channels:
        warnings.append("escalation: no channels configured: nobody is notified of anything")
    for estate in config.estates:
        if estate.duty is None:
            warnings.append(
                f"estates {estate.id}: no duty roster: every step goes to the step's group channels"
            )
            continue
        roles = set(estate.duty.roles)
        wanted = {
            target
            for p in policies
            if "*" in p.estates or estate.id in p.estates
            for step in p.steps
            for target in step.notify
            if not target.startswith("person:")
        }
        if absent := sorted(wanted - roles):
            warnings.append(
                f"estates {estate.id}: roles used by escalation policies but not in its duty roster "
                f"(their steps go to {esc.fallback_role}): {', '.join(absent)}"
            )
    return warnings
