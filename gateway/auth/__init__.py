"""Users, passwords, login sessions, API keys and lock-out (issue 7). The API layer (gateway/api/auth.py)
turns these into a Principal per request; the store keeps the records (migration 12)."""

from gateway.auth.accounts import (
    KEY_PREFIX,
    AccountError,
    Accounts,
    LoginRefused,
    LoginResult,
    csrf_for,
    digest,
    valid_username,
)
from gateway.auth.lockout import LockOut, LockOutPolicy
from gateway.auth.passwords import PasswordPolicyError, Passwords, check_policy
from gateway.auth.records import ROLES, ApiKey, Session, User, scope_of
from gateway.auth.settings import AuthSettings
from gateway.auth.store import AccountStore

__all__ = [
    "KEY_PREFIX",
    "ROLES",
    "AccountError",
    "AccountStore",
    "Accounts",
    "ApiKey",
    "AuthSettings",
    "LockOut",
    "LockOutPolicy",
    "LoginRefused",
    "LoginResult",
    "PasswordPolicyError",
    "Passwords",
    "Session",
    "User",
    "check_policy",
    "csrf_for",
    "digest",
    "scope_of",
    "valid_username",
]
