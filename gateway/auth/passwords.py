"""Password hashing (argon2id through argon2-cffi) and the minimum password policy.

Hashing and verifying cost tens of milliseconds of CPU on purpose, so the async helpers run them on a
worker thread: the event loop keeps serving while a login is checked.
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["MAX_LENGTH", "MIN_LENGTH", "PasswordPolicyError", "Passwords", "check_policy"]

MIN_LENGTH = 10
MAX_LENGTH = 256
_COMMON = frozenset(
    {"password123", "1234567890", "0123456789", "qwertyuiop", "1qaz2wsx3edc", "password1234", "admin12345",
     "iloveyou123", "abcdefghij", "passw0rd123", "1q2w3e4r5t", "qwerty12345", "a123456789", "woaini1314"}
)  # fmt: skip


class PasswordPolicyError(ValueError):
    """The password is too weak; the message says why (never echoes the password)."""


def check_policy(password: str, username: str) -> None:
    """Length 10-256, at least 5 different characters, not the username, not a well-known password."""
    if len(password) < MIN_LENGTH:
        raise PasswordPolicyError(f"password must have at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise PasswordPolicyError(f"password must have at most {MAX_LENGTH} characters")
    if len(set(password)) < 5:
        raise PasswordPolicyError("password must have at least 5 different characters")
    lowered = password.lower()
    if username and username.lower() in lowered:
        raise PasswordPolicyError("password must not contain the username")
    if lowered in _COMMON:
        raise PasswordPolicyError("password is too common")


class Passwords:
    """argon2id hashes. Defaults are argon2-cffi's (RFC 9106 low-memory profile); tests pass cheap ones."""

    def __init__(
        self, time_cost: int | None = None, memory_cost: int | None = None, parallelism: int | None = None
    ):
        defaults = PasswordHasher()
        self._hasher = PasswordHasher(
            time_cost=time_cost or defaults.time_cost,
            memory_cost=memory_cost or defaults.memory_cost,
            parallelism=parallelism or defaults.parallelism,
        )
        # Unknown users are checked against this, so they cost the same time as known ones.
        self._dummy = self._hasher.hash("estate-gateway dummy password")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        """True when `password` matches; with `stored` None, burns the same time and answers False."""
        try:
            return self._hasher.verify(stored or self._dummy, password) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(stored)
        except InvalidHashError:
            return True

    async def hash_async(self, password: str) -> str:
        return await asyncio.to_thread(self.hash, password)

    async def verify_async(self, stored: str | None, password: str) -> bool:
        return await asyncio.to_thread(self.verify, stored, password)
