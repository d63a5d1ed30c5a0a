"""Session, lock-out and cookie settings, from `api.auth` in the site config."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.auth.lockout import LockOutPolicy
from gateway.config.schema import ApiAuthConfig

__all__ = ["AuthSettings"]


@dataclass(frozen=True)
class AuthSettings:
    session_idle: float = 1800.0  # seconds without a request before a session ends
    session_max: float = 12 * 3600.0  # absolute lifetime of a session
    lockout: LockOutPolicy = field(default_factory=LockOutPolicy)
    cookie_secure: bool = False  # Secure cookies even when the request came over plain http
    trusted_proxies: frozenset[str] = frozenset()  # peers whose X-Forwarded-For is believed
    login_page: str = "/console/login"  # where a failed form login is sent back to

    @classmethod
    def from_config(cls, cfg: ApiAuthConfig) -> AuthSettings:
        return cls(
            session_idle=cfg.session_idle_minutes * 60,
            session_max=cfg.session_max_hours * 3600,
            lockout=LockOutPolicy(
                failures=cfg.lockout_failures,
                window=cfg.lockout_window_minutes * 60,
                duration=cfg.lockout_minutes * 60,
                address_failures=cfg.address_failures,
            ),
            cookie_secure=cfg.cookie_secure,
            trusted_proxies=frozenset(cfg.trusted_proxies),
            login_page=cfg.login_page,
        )
