"""Credentials lifecycle: a password change, an admin's reset or a deactivation ends sessions
and revokes API tokens for good; an admin-set password must be changed at the next sign-in;
admins list and revoke anyone's tokens."""

from __future__ import annotations

import httpx
import pytest

from core import db
from tests.api.test_auth_support import (
    PASSWORD,
    audit_events,
    logged_in_client,
    login,
    make_user,
    without_request_id,
)
from tests.api.test_auth_tokens import bearer, create_token

NEW_PASSWORD = "a brand new passphrase of mine"


@pytest.fixture
async def admin(served_app, http):
    user = await make_user("ada", "admin")
    client = await logged_in_client(served_app.url, "ada")
    client.user = user  # type: ignore[attr-defined]
    yield client
    await client.aclose()


async def me_status(client: httpx.AsyncClient, **headers: str) -> int:
    return (await client.get("/api/auth/me", headers=headers)).status_code


async def token_rows() -> list[dict]:
    return await db.fetch("SELECT id, revoked_at FROM api_token ORDER BY id")


async def revocations() -> list[tuple[str, str, str]]:
    return [
        (e["actor"], e["subject_id"], e["reason"])
        for e in await audit_events()
        if e["action"] == "api_token.revoked"
    ]


async def test_a_token_stops_working_for_good_when_its_owner_changes_password(served_app, http):
    tess = await make_user("tess", "technician")
    session = await logged_in_client(served_app.url, "tess")
    other_session = await logged_in_client(served_app.url, "tess")
    token = await create_token(session)
    assert await me_status(http, **bearer(token["token"])) == 200

    changed = await session.post(
        "/api/auth/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )

    assert changed.status_code == 204
    assert await me_status(http, **bearer(token["token"])) == 401
    assert await me_status(other_session) == 401
    assert await me_status(session) == 200  # this one goes on under the new stamp
    [row] = await token_rows()
    assert row["revoked_at"] is not None
    assert await revocations() == [(f"user:{tess.id}", str(token["id"]), "password changed")]
    await session.aclose()
    await other_session.aclose()


async def test_an_admin_reset_revokes_the_tokens_and_requires_a_new_password(
    admin, served_app, http
):
    tess = await make_user("tess", "technician")
    session = await logged_in_client(served_app.url, "tess")
    token = await create_token(session)
    reset_to = "handed over in person"

    reset = await admin.put(f"/api/users/{tess.id}/password", json={"password": reset_to})

    assert reset.status_code == 204
    assert await me_status(http, **bearer(token["token"])) == 401
    assert await me_status(session) == 401
    assert await revocations() == [(f"user:{admin.user.id}", str(token["id"]), "password changed")]

    # Tess signs in with the password the admin gave her, and may do one thing: change it.
    signed_in = await login(session, "tess", reset_to)
    assert signed_in.status_code == 200
    assert signed_in.json()["must_change_password"] is True
    assert await me_status(session) == 200
    refused = await session.get("/api/auth/tokens")
    assert refused.status_code == 403
    assert without_request_id(refused) == {
        "type": "about:blank#password_change_required",
        "title": "Forbidden",
        "status": 403,
        "detail": "An admin set your password: choose a new one first (POST "
        "/api/auth/password, or the page /password).",
        "code": "password_change_required",
        "instance": "/api/auth/tokens",
    }
    minted = await session.post("/api/auth/tokens", json={"name": "sneaky"})
    assert minted.status_code == 403
    assert len(await token_rows()) == 1

    changed = await session.post(
        "/api/auth/password", json={"current_password": reset_to, "new_password": NEW_PASSWORD}
    )

    assert changed.status_code == 204
    assert (await session.get("/api/auth/tokens")).status_code == 200
    [row] = await db.fetch("SELECT must_change_password FROM app_user WHERE id = {}", tess.id)
    assert row["must_change_password"] is False
    # The old token stays revoked after the change: nothing brings it back.
    assert await me_status(http, **bearer(token["token"])) == 401
    await session.aclose()


async def test_deactivating_and_reactivating_revives_no_session_and_no_token(
    admin, served_app, http
):
    tess = await make_user("tess", "technician")
    session = await logged_in_client(served_app.url, "tess")
    token = await create_token(session)

    off = await admin.patch(f"/api/users/{tess.id}", json={"is_active": False, "reason": "leave"})
    on = await admin.patch(f"/api/users/{tess.id}", json={"is_active": True, "reason": "back"})

    assert (off.status_code, on.status_code) == (200, 200)
    assert await me_status(session) == 401
    assert await me_status(http, **bearer(token["token"])) == 401
    [row] = await token_rows()
    assert row["revoked_at"] is not None
    assert await revocations() == [
        (f"user:{admin.user.id}", str(token["id"]), "account deactivated")
    ]
    # Signing in again works, and that new session does.
    fresh = await logged_in_client(served_app.url, "tess")
    assert await me_status(fresh) == 200
    await fresh.aclose()
    await session.aclose()


async def test_a_token_made_before_a_credentials_change_is_refused_even_if_not_marked(
    served_app, http
):
    """Belt and braces: resolution also compares the token's age with the account's
    credentials_changed_at (a token issued in a race with a reset)."""
    tess = await make_user("tess", "technician")
    session = await logged_in_client(served_app.url, "tess")
    token = await create_token(session)
    await db.fetch(
        "UPDATE app_user SET credentials_changed_at = now() + interval '1 second' WHERE id = {}",
        tess.id,
    )

    assert await me_status(http, **bearer(token["token"])) == 401
    await session.aclose()


async def test_admins_list_and_revoke_any_users_tokens(admin, served_app, http):
    tess = await make_user("tess", "technician")
    paco = await make_user("paco", "packer")
    session = await logged_in_client(served_app.url, "tess")
    token = await create_token(session, "label printer")

    listed = await admin.get(f"/api/users/{tess.id}/tokens")
    not_hers = await admin.delete(f"/api/users/{paco.id}/tokens/{token['id']}")
    revoked = await admin.delete(
        f"/api/users/{tess.id}/tokens/{token['id']}", params={"reason": "printer stolen"}
    )
    again = await admin.delete(f"/api/users/{tess.id}/tokens/{token['id']}")
    unknown_user = await admin.get("/api/users/999999/tokens")

    assert listed.status_code == 200
    assert [(t["id"], t["name"], t["revoked_at"]) for t in listed.json()] == [
        (token["id"], "label printer", None)
    ]
    assert "token" not in listed.json()[0]
    assert not_hers.status_code == 404
    assert (revoked.status_code, again.status_code) == (204, 204)
    assert await me_status(http, **bearer(token["token"])) == 401
    assert unknown_user.status_code == 404
    assert await revocations() == [(f"user:{admin.user.id}", str(token["id"]), "printer stolen")]
    # Not for anyone but admins, and never with a token.
    assert (await session.get(f"/api/users/{tess.id}/tokens")).status_code == 403
    await session.aclose()


@pytest.mark.parametrize(
    ("new_password", "sentence"),
    [
        (
            "Password1234",
            "This password is on a list of common or breached passwords; choose another.",
        ),
        (
            "infusion-demo-2026",
            "The demo password is published; choose a password nobody else knows.",
        ),
        ("tab\tinside a password", "A password must not contain control characters."),
        (
            "aaaaaaaaaaaaaaaa",
            "A password must not be one character or a short run repeated, or a "
            "plain sequence such as abcdefghijkl or 123456789012.",
        ),
    ],
)
async def test_a_new_password_breaking_the_policy_is_422_and_changes_nothing(
    served_app, new_password, sentence
):
    await make_user("tess", "technician")
    session = await logged_in_client(served_app.url, "tess")
    [before] = await db.fetch("SELECT password_hash, credentials_changed_at FROM app_user")

    response = await session.post(
        "/api/auth/password", json={"current_password": PASSWORD, "new_password": new_password}
    )

    assert response.status_code == 422
    assert response.json()["detail"] == sentence
    assert await db.fetch("SELECT password_hash, credentials_changed_at FROM app_user") == [before]
    assert [e["action"] for e in await audit_events()] == ["user.logged_in"]
    await session.aclose()


async def test_an_admin_cannot_set_a_breached_password_for_someone(admin):
    tess = await make_user("tess", "technician")

    response = await admin.put(f"/api/users/{tess.id}/password", json={"password": "qwerty123456"})

    assert response.status_code == 422
    assert response.json()["detail"] == (
        "This password is on a list of common or breached passwords; choose another."
    )
