"""Job roles (岗位) and how they map onto the permission model.

A 小区's staff are hired by job, not by permission rank. Each job maps onto one rank (the role a user of
that job gets unless an admin says otherwise) plus a few capabilities the rank alone does not give:

| job          | 中文     | rank       | and also                                                         |
|--------------|----------|------------|------------------------------------------------------------------|
| guard        | 保安     | operator   | -                                                                |
| shift_leader | 班长     | supervisor | -                                                                |
| engineer     | 工程     | operator   | every configured device command up to supervisor; maintenance    |
|              |          |            | (out of service / back in service)                               |
| fire_control | 消防中控 | operator   | fire-panel commands up to supervisor                             |
| manager      | 经理     | admin      | (scope it to its company: `--estates company:<id>`)              |

A job never lifts a command above supervisor (admin-only commands stay admin-only) and never widens the
estates a user sees. Two-person rules (`confirm_by`) may name jobs as well as ranks.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["JOBS", "Job", "job_label", "may_command", "may_maintain", "role_for"]

_RANK = {"viewer": 0, "operator": 1, "supervisor": 2, "admin": 3}
_CAP_CEILING = "supervisor"  # a job's extra rights stop here


@dataclass(frozen=True)
class Job:
    """One job: its names, the rank it maps onto, and what it may do beyond that rank."""

    id: str
    zh: str
    en: str
    role: str
    command_families: frozenset[str] | None = frozenset()  # None: every family
    maintenance: bool = False


JOBS: dict[str, Job] = {
    job.id: job
    for job in (
        Job("guard", "保安", "Guard", "operator"),
        Job("shift_leader", "班长", "Shift leader", "supervisor"),
        Job("engineer", "工程", "Engineer", "operator", None, True),
        Job("fire_control", "消防中控", "Fire control room", "operator", frozenset({"fire_panel"})),
        Job("manager", "经理", "Manager", "admin"),
    )
}


def role_for(job: str) -> str:
    """The rank a job maps onto; ValueError for an unknown job."""
    if job not in JOBS:
        raise ValueError(f"job: one of {', '.join(JOBS)}")
    return JOBS[job].role


def job_label(job: str | None, lang: str = "zh-CN") -> str:
    """The job's name in the console's language ('' for none; the id itself when unknown)."""
    if not job:
        return ""
    known = JOBS.get(job)
    if known is None:
        return job
    return known.zh if lang.startswith("zh") else known.en


def may_command(job: str | None, family: str, least: str) -> bool:
    """Whether the job lets its holder run a command of a device of `family` whose configured least
    role is `least`, whatever the holder's rank."""
    known = JOBS.get(job or "")
    if known is None or least not in _RANK or _RANK[least] > _RANK[_CAP_CEILING]:
        return False
    families = known.command_families
    return families is None or family in families


def may_maintain(job: str | None) -> bool:
    """Whether the job may take devices out of service and back (recording maintenance)."""
    known = JOBS.get(job or "")
    return known is not None and known.maintenance
