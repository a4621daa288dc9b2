"""argon2id hashing: verification, rehash detection, and the dummy hash for unknown users."""

from __future__ import annotations

from argon2 import PasswordHasher

from core.identity.passwords import (
    dummy_hash,
    hash_password,
    needs_rehash,
    verify_password,
    verify_password_async,
)

PASSWORD = "correct horse battery staple"


def test_hash_is_argon2id_salted_and_verifies_only_the_right_password():
    first, second = hash_password(PASSWORD), hash_password(PASSWORD)

    assert first.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert first != second  # salted
    assert verify_password(first, PASSWORD)
    assert not verify_password(first, PASSWORD + " ")
    assert not verify_password(first, "")


def test_a_malformed_hash_verifies_nothing_and_needs_rehash():
    assert not verify_password("not a hash", PASSWORD)
    assert not verify_password("", PASSWORD)
    assert needs_rehash("not a hash")


def test_hashes_made_with_weaker_parameters_need_rehash():
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)

    assert verify_password(weak, PASSWORD)
    assert needs_rehash(weak)
    assert not needs_rehash(hash_password(PASSWORD))


async def test_no_user_is_never_verified_whatever_the_password():
    assert await verify_password_async(None, PASSWORD) is False
    assert not verify_password(dummy_hash(), PASSWORD)
