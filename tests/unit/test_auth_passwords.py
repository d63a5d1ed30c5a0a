"""argon2id hashing, rehash on login, the password policy, and unknown users costing the same time."""

from __future__ import annotations

import time

import pytest

from gateway.auth import Accounts, PasswordPolicyError, Passwords, check_policy
from gateway.model import ManualClock
from tests.integration.postgres import StoreFactory

CHEAP = Passwords(time_cost=1, memory_cost=8, parallelism=1)


def test_hashes_are_argon2id_and_verify() -> None:
    stored = CHEAP.hash("Correct-horse-42")
    assert stored.startswith("$argon2id$")
    assert CHEAP.verify(stored, "Correct-horse-42")
    assert not CHEAP.verify(stored, "Correct-horse-43")
    assert not CHEAP.verify("not-a-hash", "Correct-horse-42")
    assert not CHEAP.verify(None, "Correct-horse-42")  # unknown user: checked against the dummy, refused


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("short-1", "at least 10"),
        ("x" * 257, "at most 256"),
        ("aaaaabbbbbaaaa", "5 different"),
        ("my-zhangwei-pass", "username"),
        ("Password123", "too common"),
    ],
)
def test_policy_refuses_weak_passwords(password: str, why: str) -> None:
    with pytest.raises(PasswordPolicyError, match=why):
        check_policy(password, "zhangwei")
    check_policy("长城-Great-Wall-1987", "zhangwei")  # any script counts


async def test_a_hash_with_old_parameters_is_replaced_at_login(make_store: StoreFactory) -> None:
    store = make_store()
    await store.open()
    try:
        old = Accounts(store, clock=ManualClock(), passwords=CHEAP)
        await old.add_user("li-ming", "viewer", ["alpha"], "Correct-horse-42")
        before = (await store.get_user("li-ming")).password_hash  # type: ignore[union-attr]
        stronger = Passwords(time_cost=2, memory_cost=16, parallelism=1)
        new = Accounts(store, clock=ManualClock(), passwords=stronger)
        await new.login("li-ming", "Correct-horse-42", "10.0.0.1")
        after = (await store.get_user("li-ming")).password_hash  # type: ignore[union-attr]
        assert after != before and "m=16,t=2" in after
        assert not stronger.needs_rehash(after)
        await new.login("li-ming", "Correct-horse-42", "10.0.0.1")  # still the same password
    finally:
        await store.close()


def test_unknown_users_cost_about_what_known_ones_do() -> None:
    """Timing must not tell whether a name exists: both paths run one argon2 verification."""
    passwords = Passwords(time_cost=2, memory_cost=4096, parallelism=1)
    stored = passwords.hash("Correct-horse-42")

    def once(stored_hash: str | None) -> float:
        start = time.perf_counter()
        passwords.verify(stored_hash, "wrong-password-1")
        return time.perf_counter() - start

    # Interleaved, and the fastest of each: the intrinsic cost, not the load of a busy CI machine.
    runs: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(15):
        runs[True].append(once(stored))
        runs[False].append(once(None))
    known, unknown = min(runs[True]), min(runs[False])
    assert 0.5 < unknown / known < 2.0, (known, unknown)
