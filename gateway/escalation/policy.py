"""Escalation policies: the shipped defaults merged with the site's, and which one an incident gets."""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path

from pydantic import TypeAdapter
from ruamel.yaml import YAML

from gateway.config.escalation import EscalationPolicyConfig
from gateway.model import Incident

DEFAULTS = Path(__file__).with_name("defaults.yaml")
_ADAPTER = TypeAdapter(list[EscalationPolicyConfig])


def load_default_policies() -> list[EscalationPolicyConfig]:
    return _ADAPTER.validate_python(YAML(typ="safe").load(DEFAULTS.read_text(encoding="utf-8")))


def merge_policies(
    defaults: list[EscalationPolicyConfig], site: list[EscalationPolicyConfig]
) -> list[EscalationPolicyConfig]:
    """Site policies replace defaults of the same id in place; new ones go first (a site's specific
    policy must win over a shipped catch-all); disabled ones are dropped."""
    by_id = {p.id: p for p in site}
    merged = [by_id.pop(p.id, p) for p in defaults]
    return [p for p in [*by_id.values(), *merged] if p.enabled]


class PolicyBook:
    """First matching policy wins: estate, then priority, then rule glob."""

    def __init__(self, policies: list[EscalationPolicyConfig]) -> None:
        self.policies = policies
        self.by_id = {p.id: p for p in policies}

    def for_incident(self, incident: Incident) -> EscalationPolicyConfig | None:
        for policy in self.policies:
            if "*" not in policy.estates and incident.estate not in policy.estates:
                continue
            if policy.priorities and incident.priority not in policy.priorities:
                continue
            if policy.rules and not any(fnmatchcase(incident.rule, glob) for glob in policy.rules):
                continue
            return policy
        return None
