"""Users, login sessions and API keys: the one place that creates, checks and revokes credentials.

Session tokens and API keys are 32 random bytes; the store keeps only their SHA-256 digests, so a copy
of the database lets nobody in. Passwords are argon2id hashes (passwords.py). A failed login answers
the same, in about the same time, whether or not the user exists.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field, replace

from gateway.auth.jobs import JOBS, role_for
from gateway.auth.lockout import LockOut
from gateway.auth.passwords import Passwords, check_policy
from gateway.auth.records import REGULATOR, ROLES, ApiKey, Session, User
from gateway.auth.settings import AuthSettings
from gateway.auth.store import AccountStore
from gateway.auth.tenancy import COMPANY_PREFIX, Tenancy
from gateway.model import Clock, SystemClock

__all__ = [
    "KEY_PREFIX",
    "AccountError",
    "Accounts",
    "LoginRefused",
    "LoginResult",
    "csrf_for",
    "digest",
    "valid_username",
]

KEY_PREFIX = "egk_"
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9_.@-]{1,63}$")
_ESTATE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class AccountError(ValueError):
    """A request about accounts that cannot be done (unknown user, weak password, bad role...)."""


class LoginRefused(Exception):
    """Login refused: `reason` is "invalid" (wrong name or password, or disabled), "locked" (the
    username) or "throttled" (the source address). Callers answer "invalid" with one message for all."""

    def __init__(self, reason: str, retry_after: float = 0.0) -> None:
        super().__init__(reason)
        self.reason, self.retry_after = reason, retry_after


@dataclass(frozen=True)
class LoginResult:
    user: User
    token: str = field(repr=False)  # the session token: goes into the eg_session cookie, nowhere else
    csrf: str = field(repr=False)
    expires_at: float


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def csrf_for(session_token: str) -> str:
    """The CSRF token bound to a session: derived one way, so the readable cookie reveals nothing."""
    return hmac.new(b"estate-gateway csrf", session_token.encode(), hashlib.sha256).hexdigest()


def valid_username(username: str) -> str:
    name = username.strip().lower()
    if not _USERNAME.match(name):
        raise AccountError("username: 2-64 of a-z 0-9 _ . @ -, starting with a letter or digit")
    return name


def _estates(estates: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    if not estates:
        raise AccountError("estates: give estate ids or '*'")
    if "*" in estates:
        return ("*",)
    for estate in estates:
        if not _ESTATE.match(estate.removeprefix(COMPANY_PREFIX)):
            raise AccountError(f"estates: {estate!r} is not an estate id or company:<id>")
    return tuple(sorted(set(estates)))


def _role(role: str) -> str:
    if role not in (*ROLES, REGULATOR):
        raise AccountError(f"role: one of {', '.join((*ROLES, REGULATOR))}")
    return role


def _job(job: str | None) -> str | None:
    if job is not None and job not in JOBS:
        raise AccountError(f"job: one of {', '.join(JOBS)}")
    return job or None


def _role_and_job(role: str | None, job: str | None) -> tuple[str, str | None]:
    """A job without a role gets the job's rank; a regulator has no job (it is no estate's staff)."""
    job = _job(job)
    if not role:
        if job is None:
            raise AccountError("role: give a role or a job")
        role = role_for(job)
    role = _role(role)
    if role == REGULATOR and job is not None:
        raise AccountError("job: a regulator has no job in an estate")
    return role, job


def _scope_for(role: str, estates: tuple[str, ...]) -> tuple[str, ...]:
    """A regulator reads every estate's KPIs: its scope is always every estate."""
    return ("*",) if role == REGULATOR else estates


class Accounts:
    def __init__(
        self,
        store: AccountStore,
        settings: AuthSettings | None = None,
        clock: Clock | None = None,
        passwords: Passwords | None = None,
        tenancy: Tenancy | None = None,
    ) -> None:
        self.store = store
        self.tenancy = tenancy or Tenancy()
        self.settings = settings or AuthSettings()
        self.clock = clock or SystemClock()
        self.passwords = passwords or Passwords()
        self.lockout = LockOut(self.settings.lockout, self.clock)

    # -- login and sessions --------------------------------------------------------------------------
    async def login(self, username: str, password: str, source: str) -> LoginResult:
        """A new session, or LoginRefused. Every refusal is counted towards lock-out."""
        name = username.strip().lower()[:64]
        blocked = self.lockout.blocked(name, source)
        if blocked is not None:
            kind, left = blocked
            raise LoginRefused("locked" if kind == "user" else "throttled", left)
        user = await self.store.get_user(name) if _USERNAME.match(name) else None
        ok = await self.passwords.verify_async(user.password_hash if user else None, password)
        if user is None or not ok or user.disabled:
            locked = self.lockout.failed(name, source)
            reason = "locked" if "user" in locked else "throttled" if locked else "invalid"
            raise LoginRefused(reason, self.settings.lockout.duration if locked else 0.0)
        self.lockout.succeeded(name)
        if self.passwords.needs_rehash(user.password_hash):
            user = replace(user, password_hash=await self.passwords.hash_async(password))
            await self.store.save_user(user)
        now = self.clock.now()
        token = secrets.token_urlsafe(32)
        expires = now + self.settings.session_max
        await self.store.add_session(Session(digest(token), user.username, now, now, expires, None, source))
        return LoginResult(user, token, csrf_for(token), expires)

    async def session_user(self, token: str) -> User | None:
        """The user of a live session; None when unknown, revoked, idle too long, expired or disabled."""
        key = digest(token)
        session = await self.store.get_session(key)
        now = self.clock.now()
        if session is None or session.revoked_at is not None or now >= session.expires_at:
            return None
        if now - session.last_seen >= self.settings.session_idle:
            return None
        user = await self.store.get_user(session.username)
        if user is None or user.disabled:
            return None
        if now - session.last_seen >= min(60.0, self.settings.session_idle / 10):  # not a write per call
            await self.store.touch_session(key, now)
        return user

    async def logout(self, token: str) -> None:
        await self.store.revoke_session(digest(token), self.clock.now())

    # -- API keys ------------------------------------------------------------------------------------
    async def key_user(self, key: str) -> tuple[ApiKey, User] | None:
        """The key and its owner when the key is live and the owner enabled."""
        _, _, rest = key.partition(KEY_PREFIX)
        key_id, _, secret = rest.partition("_")
        if not key.startswith(KEY_PREFIX) or not key_id or not secret:
            return None
        record = await self.store.get_api_key(key_id)
        if record is None or not hmac.compare_digest(record.digest, digest(key)):
            return None
        now = self.clock.now()
        if record.revoked_at is not None or (record.expires_at is not None and now >= record.expires_at):
            return None
        owner = await self.store.get_user(record.owner)
        if owner is None or owner.disabled:
            return None
        if record.last_used_at is None or now - record.last_used_at >= 60.0:
            await self.store.touch_api_key(key_id, now)
        return record, owner

    async def create_key(
        self, name: str, owner: str, role: str | None, estates: list[str] | None, expires_at: float | None,
        created_by: str,
    ) -> tuple[ApiKey, str]:  # fmt: skip
        """A new key (shown once: the second value). Role and estates default to the owner's and may
        only narrow them."""
        user = await self.store.get_user(valid_username(owner))
        if user is None:
            raise AccountError("owner: no such user")
        key_role = _role(role or user.role)
        if (REGULATOR in (key_role, user.role) and key_role != user.role) or (
            user.role != REGULATOR and ROLES.index(key_role) > ROLES.index(user.role)
        ):
            raise AccountError("role: a key cannot have more rights than its owner")
        key_estates = _scope_for(key_role, _estates(estates or list(user.estates)))
        owner_scope, key_scope = self.tenancy.scope(user.estates), self.tenancy.scope(key_estates)
        if owner_scope is not None and (key_scope is None or not key_scope <= owner_scope):
            raise AccountError("estates: a key cannot see estates its owner cannot")
        now = self.clock.now()
        if expires_at is not None and expires_at <= now:
            raise AccountError("expires_at: in the past")
        key_id = secrets.token_hex(6)
        key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        record = ApiKey(key_id, name, user.username, key_role, key_estates, digest(key), created_by, now,
                        expires_at, None, None)  # fmt: skip
        await self.store.add_api_key(record)
        return record, key

    async def list_keys(self) -> list[ApiKey]:
        return await self.store.list_api_keys()

    async def get_key(self, key_id: str) -> ApiKey | None:
        return await self.store.get_api_key(key_id)

    async def revoke_key(self, key_id: str) -> bool:
        return await self.store.revoke_api_key(key_id, self.clock.now())

    # -- users ---------------------------------------------------------------------------------------
    async def get_user(self, username: str) -> User | None:
        return await self.store.get_user(username.strip().lower())

    async def list_users(self) -> list[User]:
        return await self.store.list_users()

    async def add_user(
        self,
        username: str,
        role: str | None,
        estates: list[str],
        password: str,
        display_name: str = "",
        job: str | None = None,
    ) -> User:
        """A new user; `role` may be None when a `job` gives it (see gateway/auth/jobs.py)."""
        name = valid_username(username)
        if await self.store.get_user(name) is not None:
            raise AccountError("username: taken")
        role, job = _role_and_job(role, job)
        check_policy(password, name)
        now = self.clock.now()
        user = User(name, display_name.strip() or name, role, _scope_for(role, _estates(estates)), False,
                    await self.passwords.hash_async(password), now, now, job)  # fmt: skip
        await self.store.save_user(user)
        return user

    async def update_user(
        self,
        username: str,
        *,
        role: str | None = None,
        estates: list[str] | None = None,
        disabled: bool | None = None,
        password: str | None = None,
        display_name: str | None = None,
        job: str | None = None,
    ) -> User:
        """Change a user. Disabling or a password reset revokes the user's sessions and keys. `job` ""
        removes the job."""
        user = await self.store.get_user(username.strip().lower())
        if user is None:
            raise AccountError("no such user")
        changes: dict[str, object] = {"updated_at": self.clock.now()}
        if role is not None or job is not None:
            new_job = user.job if job is None else (job or None)
            changes["role"], changes["job"] = _role_and_job(role or user.role, new_job)
        if estates is not None:
            changes["estates"] = _estates(estates)
        if changes.get("role", user.role) == REGULATOR:
            changes["estates"] = ("*",)
        if disabled is not None:
            changes["disabled"] = disabled
        if display_name is not None:
            changes["display_name"] = display_name.strip() or user.username
        if password is not None:
            check_policy(password, user.username)
            changes["password_hash"] = await self.passwords.hash_async(password)
        updated = replace(user, **changes)  # type: ignore[arg-type]
        await self.store.save_user(updated)
        if disabled or password is not None:
            await self.store.revoke_credentials(user.username, self.clock.now())
        return updated
