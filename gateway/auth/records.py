"""Account records as the store keeps them. Secrets appear only as digests or hashes, and never in a repr
(a record logged by mistake must not leak a hash)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["REGULATOR", "ROLES", "ApiKey", "Session", "User", "scope_of"]

ROLES = ("viewer", "operator", "supervisor", "admin")
# Not a rank: reads KPIs and reports of every estate and nothing else (gateway/auth/tenancy.py).
REGULATOR = "regulator"


def scope_of(estates: tuple[str, ...]) -> frozenset[str] | None:
    """The estates a list grants; None: every estate ("*")."""
    return None if "*" in estates else frozenset(estates)


@dataclass(frozen=True)
class User:
    """A console or API user. `estates` is ("*",) for every estate."""

    username: str
    display_name: str
    role: str
    estates: tuple[str, ...]
    disabled: bool
    password_hash: str = field(repr=False)
    created_at: float
    updated_at: float
    job: str | None = None  # 保安 guard, 班长 shift_leader ... (gateway/auth/jobs.py); None: none given

    @property
    def scope(self) -> frozenset[str] | None:
        return scope_of(self.estates)


@dataclass(frozen=True)
class Session:
    """A login session; the browser holds the token, the store only its SHA-256 digest."""

    digest: bytes = field(repr=False)
    username: str
    created_at: float
    last_seen: float
    expires_at: float  # absolute lifetime; the idle timeout counts from last_seen
    revoked_at: float | None
    source: str


@dataclass(frozen=True)
class ApiKey:
    """A key for a machine client, acting for `owner` with at most the owner's rights."""

    key_id: str  # public part of the key (egk_<key_id>_<secret>), for lookup and revocation
    name: str
    owner: str
    role: str
    estates: tuple[str, ...]
    digest: bytes = field(repr=False)
    created_by: str
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    last_used_at: float | None

    @property
    def scope(self) -> frozenset[str] | None:
        return scope_of(self.estates)
