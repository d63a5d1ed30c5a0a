"""Tenancy above the estate: property companies that own estates, and the regulator.

A user's or an API key's `estates` may hold estate ids, `*` (every estate) and `company:<id>` (every
estate of that company, including estates the company gets later: the list is expanded at each request
from the site config, never stored expanded). An unknown company expands to nothing.

The regulator (`role: regulator`, e.g. 区住建局) is a capability, not a rank: it reads the KPIs and the
monthly reports of every estate of every company, and nothing else (no incidents, devices, readings,
feed, commands, users). Ranked checks (`at_least`) never pass for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["COMPANY_PREFIX", "REGULATOR", "Company", "Tenancy"]

COMPANY_PREFIX = "company:"
REGULATOR = "regulator"


@dataclass(frozen=True)
class Company:
    id: str
    zh: str
    en: str
    estates: tuple[str, ...]


@dataclass(frozen=True)
class Tenancy:
    """Companies by id; which company each estate belongs to."""

    companies: Mapping[str, Company] = field(default_factory=dict)

    @classmethod
    def of(cls, companies: Iterable[Company]) -> Tenancy:
        return cls({c.id: c for c in companies})

    def company_of(self, estate: str) -> Company | None:
        return next((c for c in self.companies.values() if estate in c.estates), None)

    def scope(self, estates: Iterable[str]) -> frozenset[str] | None:
        """The estates a scope list grants; None: every estate."""
        out: set[str] = set()
        for entry in estates:
            if entry == "*":
                return None
            if entry.startswith(COMPANY_PREFIX):
                company = self.companies.get(entry.removeprefix(COMPANY_PREFIX))
                out.update(company.estates if company else ())
            else:
                out.add(entry)
        return frozenset(out)
