"""Identity services called directly (real PostgreSQL + Redis): what the edges rely on."""

from __future__ import annotations

import asyncio

import pytest
from argon2 import PasswordHasher

from api.seed import SeedReport
from core import db
from core.errors import AuthenticationError, ConflictError, DomainError
from core.identity.model import Role
from core.identity.passwords import needs_rehash, verify_password
from core.identity.seed import DEMO_PASSWORD, seed_users
from core.identity.services import (
    authenticate,
    create_user,
    set_password,
    user_for_token,
)
from core.identity.tables import User
from tests.api.test_auth_support import audit_events, make_user, user_count


async def test_create_user_stores_a_normalised_account_and_one_event():
    async with db.transaction():
        user = await create_user(
            username=" Ph.Smith ",
            display_name="Pat Smith",
            password="twelve chars",
            roles=["admin", "pharmacist", "admin"],
            actor="cli:ops",
        )

    [row] = await User.select().where(User.id == user.id)
    assert (row["username"], row["roles"], row["is_active"]) == (
        "ph.smith",
        ["pharmacist", "admin"],
        True,
    )
    assert row["password_changed_at"] == row["created_at"]
    assert [(e["actor"], e["action"]) for e in await audit_events()] == [
        ("cli:ops", "user.created")
    ]
    assert "password_hash" not in repr(await audit_events())


async def test_two_concurrent_creates_of_one_username_give_one_user_and_one_conflict():
    async def attempt() -> str:
        try:
            async with db.transaction():
                await create_user(
                    username="twin",
                    display_name="Twin",
                    password="twelve chars",
                    roles=[Role.packer],
                    actor="test",
                )
        except ConflictError as exc:
            return exc.message
        return "created"

    results = sorted(await asyncio.gather(attempt(), attempt()))

    assert results == ["The username 'twin' is already taken.", "created"]
    assert await user_count() == 1
    assert [e["action"] for e in await audit_events()] == ["user.created"]


async def test_refused_create_inside_a_transaction_leaves_nothing():
    with pytest.raises(DomainError) as refused:
        async with db.transaction():
            await create_user(
                username="ok.name",
                display_name="Ok",
                password="short",
                roles=["packer"],
                actor="test",
            )
    assert refused.value.status == 422
    assert await user_count() == 0
    assert await audit_events() == []


async def test_login_upgrades_a_hash_made_with_older_parameters(redis):
    old_hasher = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
    user = await make_user("tess", "technician")
    await User.update({User.password_hash: old_hasher.hash("an old passphrase")}).where(
        User.id == user.id
    )
    [before] = await User.select(User.password_changed_at).where(User.id == user.id)

    async with db.transaction():
        await authenticate(redis, username="tess", password="an old passphrase", client="10.0.0.1")

    [after] = await User.select(User.password_hash, User.password_changed_at).where(
        User.id == user.id
    )
    assert not needs_rehash(after["password_hash"])
    assert verify_password(after["password_hash"], "an old passphrase")
    # Not a password change: sessions started before the upgrade go on.
    assert after["password_changed_at"] == before["password_changed_at"]


async def test_authenticate_failure_inside_the_edge_transaction_counts_but_writes_nothing(redis):
    await make_user("tess", "technician")

    with pytest.raises(AuthenticationError) as refused:
        async with db.transaction():
            await authenticate(redis, username="tess", password="wrong password!", client="c1")

    assert refused.value.message == "Wrong username or password."
    assert await audit_events() == []
    [key] = await redis.keys("infusion:login-failures:*")
    assert await redis.get(key) == b"1"
    assert 0 < await redis.ttl(key) <= 15 * 60


async def test_set_password_applies_the_policy_and_keeps_the_old_one_on_refusal():
    user = await make_user("tess.technician", "technician")

    with pytest.raises(DomainError, match="must not be the same as the username"):
        async with db.transaction():
            await set_password(user.id, password="TESS.Technician", actor="test")
    with pytest.raises(DomainError, match="at least 12 characters"):
        async with db.transaction():
            await set_password(user.id, password="tess", actor="test")

    [row] = await User.select(User.password_hash).where(User.id == user.id)
    assert verify_password(row["password_hash"], "correct horse battery staple")
    assert await audit_events() == []


async def test_user_for_token_ignores_malformed_and_unknown_tokens():
    assert await user_for_token("") is None
    assert await user_for_token("inf_zzzzzzzz_" + "a" * 43) is None
    assert await user_for_token("inf_0123abcd_" + "a" * 43) is None


async def test_demo_seed_creates_five_users_once_and_lists_working_logins():
    first, second = SeedReport(), SeedReport()
    async with db.transaction():
        await seed_users(first)
    async with db.transaction():
        await seed_users(second)

    assert (first.created, second.created) == ({"users": 5}, {"users": 0})
    expected = [
        ("admin", DEMO_PASSWORD, "admin"),
        ("pharmacist", DEMO_PASSWORD, "pharmacist"),
        ("pharmacist2", DEMO_PASSWORD, "pharmacist"),
        ("technician", DEMO_PASSWORD, "technician"),
        ("packer", DEMO_PASSWORD, "packer"),
    ]
    assert first.logins == second.logins == expected
    assert len(DEMO_PASSWORD) >= 12
    assert await user_count() == 5
    assert [e["actor"] for e in await audit_events()] == ["system:seed"] * 5


async def test_demo_seed_does_not_list_a_login_whose_password_was_changed():
    async with db.transaction():
        await seed_users(SeedReport())
    [row] = await User.select(User.id).where(User.username == "pharmacist2")
    async with db.transaction():
        await set_password(row["id"], password="changed after the demo", actor="test")

    report = SeedReport()
    async with db.transaction():
        await seed_users(report)

    assert [login[0] for login in report.logins] == [
        "admin",
        "pharmacist",
        "technician",
        "packer",
    ]
