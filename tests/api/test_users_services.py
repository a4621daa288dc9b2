"""Identity services called directly (real PostgreSQL + Redis): what the edges rely on."""

from __future__ import annotations

import asyncio

import pytest
from argon2 import PasswordHasher

from api.seed import SeedReport
from core import db
from core.errors import AuthenticationError, ConflictError, DomainError
from core.identity.errors import LastAdminError, OwnAccountError
from core.identity.model import Role
from core.identity.passwords import needs_rehash, verify_password
from core.identity.seed import DEMO_PASSWORD, seed_users
from core.identity.services import (
    authenticate,
    create_user,
    record_login,
    resolve_token,
    set_password,
    update_user,
    verify_password_change,
)
from core.identity.tables import User
from core.identity.throttle import Throttle
from tests.api.test_auth_support import PASSWORD, audit_events, make_user, user_count


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

    verified = await authenticate(
        redis, username="tess", password="an old passphrase", client="10.0.0.1"
    )
    async with db.transaction():
        await record_login(verified)

    [after] = await User.select(User.password_hash, User.password_changed_at).where(
        User.id == user.id
    )
    assert not needs_rehash(after["password_hash"])
    assert verify_password(after["password_hash"], "an old passphrase")
    # Not a password change: sessions started before the upgrade go on.
    assert after["password_changed_at"] == before["password_changed_at"]


async def test_a_hash_upgrade_never_brings_back_a_password_changed_meanwhile(redis):
    old_hasher = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
    user = await make_user("tess", "technician")
    await User.update({User.password_hash: old_hasher.hash("an old passphrase")}).where(
        User.id == user.id
    )
    verified = await authenticate(
        redis, username="tess", password="an old passphrase", client="10.0.0.1"
    )
    async with db.transaction():
        await set_password(user.id, password="reset by an admin", actor="test")

    async with db.transaction():
        await record_login(verified)

    [row] = await User.select(User.password_hash).where(User.id == user.id)
    assert verify_password(row["password_hash"], "reset by an admin")
    assert not verify_password(row["password_hash"], "an old passphrase")


async def test_a_failed_login_counts_one_attempt_and_records_only_the_failure(redis):
    user = await make_user("tess", "technician")

    with pytest.raises(AuthenticationError) as refused:
        await authenticate(redis, username="tess", password="wrong password!", client="c1")

    assert refused.value.message == "Wrong username or password."
    # Committed on its own (the refused request commits nothing); never the password.
    assert await audit_events() == [
        {
            "actor": "anonymous",
            "action": "user.sign_in_failed",
            "subject_type": "user",
            "subject_id": str(user.id),
            "before": None,
            "after": {"username": "tess", "client": "c1", "reason": "wrong_password"},
            "reason": "",
        }
    ]
    [row] = await db.fetch("SELECT last_login_at FROM app_user WHERE id = {}", user.id)
    assert row == {"last_login_at": None}
    assert sorted(await redis.keys("infusion:login-failures*")) == [
        Throttle(1, 1).client_key("c1").encode(),
        Throttle(1, 1).key("tess", "c1").encode(),
    ]
    for key in (Throttle(1, 1).key("tess", "c1"), Throttle(1, 1).client_key("c1")):
        assert await redis.get(key) == b"1"
        assert 0 < await redis.ttl(key) <= 15 * 60


async def test_password_checks_refuse_to_run_inside_a_transaction(redis):
    """argon2 inside a transaction would hold a pooled connection for its whole wait."""
    user = await make_user("tess", "technician")

    with pytest.raises(RuntimeError) as login:
        async with db.transaction():
            await authenticate(redis, username="tess", password=PASSWORD, client="c1")
    with pytest.raises(RuntimeError) as change:
        async with db.transaction():
            await verify_password_change(
                redis,
                user_id=user.id,
                current_password=PASSWORD,
                new_password="a brand new passphrase",
                client="c1",
            )

    assert str(login.value) == (
        "authenticate() verifies a password: call it before opening core.db.transaction(), "
        "so no pooled connection waits on argon2"
    )
    assert str(change.value).startswith("verify_password_change() verifies a password:")
    assert await redis.keys("*") == []


async def test_set_password_applies_the_policy_and_keeps_the_old_one_on_refusal():
    user = await make_user("tess.technician", "technician")

    with pytest.raises(DomainError, match="must not be the same as the username"):
        async with db.transaction():
            await set_password(user.id, password="TESS.Technician", actor="test")
    with pytest.raises(DomainError, match="at least 12 characters"):
        async with db.transaction():
            await set_password(user.id, password="tess", actor="test")

    [row] = await User.select(User.password_hash).where(User.id == user.id)
    assert verify_password(row["password_hash"], "violet kettle under the stairs")
    assert await audit_events() == []


async def test_resolve_token_ignores_malformed_and_unknown_tokens():
    assert await resolve_token("") is None
    assert await resolve_token("inf_zzzzzzzz_" + "a" * 43) is None
    assert await resolve_token("inf_0123abcd_" + "a" * 43) is None


async def test_the_last_active_admin_cannot_be_removed_even_from_the_cli():
    """Without an acting admin (the CLI), the only rule left is that an admin remains."""
    ada = await make_user("ada", "admin")

    for change in ({"roles": ["pharmacist"]}, {"is_active": False}):
        with pytest.raises(LastAdminError) as refused:
            async with db.transaction():
                await update_user(ada.id, actor="cli:ops", **change)
        assert refused.value.message == (
            "This would leave no active admin; make another user an admin first."
        )
        assert refused.value.status == 422
    [row] = await User.select(User.roles, User.is_active).where(User.id == ada.id)
    assert (row["roles"], row["is_active"]) == (["admin"], True)
    assert await audit_events() == []


async def test_an_acting_admin_is_refused_on_their_own_account_but_the_cli_is_not():
    ada = await make_user("ada", "admin")
    await make_user("bea", "admin")

    with pytest.raises(OwnAccountError) as roles:
        async with db.transaction():
            await update_user(
                ada.id, actor="user:1", roles=["admin", "pharmacist"], acting_user_id=ada.id
            )
    with pytest.raises(OwnAccountError) as reset:
        async with db.transaction():
            await set_password(
                ada.id, password="a new passphrase", actor="user:1", acting_user_id=ada.id
            )

    assert (roles.value.status, roles.value.code) == (403, "own_account")
    assert reset.value.message == (
        "You cannot reset your own password as an admin; change it with your current password "
        "(POST /api/auth/password)."
    )
    assert await audit_events() == []
    async with db.transaction():
        await update_user(ada.id, actor="cli:ops", roles=["admin", "pharmacist"])
    [row] = await User.select(User.roles).where(User.id == ada.id)
    assert row["roles"] == ["pharmacist", "admin"]


async def test_a_control_character_in_a_reason_is_refused_by_the_service_too():
    tess = await make_user("tess", "technician")

    with pytest.raises(DomainError) as refused:
        async with db.transaction():
            await update_user(tess.id, actor="cli:ops", is_active=False, reason="left\x00")

    assert refused.value.message == "A reason must not contain control characters."
    [row] = await User.select(User.is_active).where(User.id == tess.id)
    assert row["is_active"] is True
    assert await audit_events() == []


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
