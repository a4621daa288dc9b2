"""API tokens: shown once, stored as a keyed hash, usable as Bearer, revocable."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from datetime import timedelta

import httpx

from core import db
from core.clock import utcnow
from core.identity.services import issue_token
from tests.api.test_auth_support import (
    audit_events,
    logged_in_client,
    make_user,
    set_cookies,
    without_request_id,
)

TOKEN = re.compile(r"inf_([0-9a-f]{8})_[A-Za-z0-9_-]{43}")


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def create_token(client: httpx.AsyncClient, name: str = "label printer") -> dict:
    response = await client.post("/api/auth/tokens", json={"name": name})
    assert response.status_code == 201, response.text
    return response.json()


async def test_token_is_shown_once_and_stored_only_as_a_keyed_hash(served_app, http):
    user = await make_user("tess", "technician")
    client = await logged_in_client(served_app.url, "tess")

    created = await create_token(client)

    match = TOKEN.fullmatch(created["token"])
    assert match is not None
    assert created["prefix"] == match.group(1)
    assert created["name"] == "label printer"
    assert created["expires_at"] is None
    [row] = await db.fetch("SELECT * FROM api_token")
    expected_hash = hmac.new(
        os.environ["SECRET_KEY"].encode(), created["token"].encode(), hashlib.sha256
    ).hexdigest()
    assert row["token_hash"] == expected_hash
    assert row["user"] == user.id
    assert created["token"] not in repr(row)
    listed = await client.get("/api/auth/tokens")
    assert listed.json() == [
        {
            "id": created["id"],
            "name": "label printer",
            "prefix": created["prefix"],
            "created_at": created["created_at"],
            "expires_at": None,
            "last_used_at": None,
            "revoked_at": None,
        }
    ]
    issued = [e for e in await audit_events() if e["action"] == "api_token.issued"]
    assert issued == [
        {
            "actor": f"user:{user.id}",
            "action": "api_token.issued",
            "subject_type": "api_token",
            "subject_id": str(created["id"]),
            "before": None,
            "after": {
                "user_id": user.id,
                "name": "label printer",
                "prefix": created["prefix"],
                "expires_at": None,
            },
            "reason": "",
        }
    ]
    await client.aclose()


async def test_bearer_token_authenticates_without_a_cookie(served_app, http):
    user = await make_user("tess", "technician")
    client = await logged_in_client(served_app.url, "tess")
    created = await create_token(client)
    await client.aclose()

    response = await http.get("/api/auth/me", headers=bearer(created["token"]))

    assert response.status_code == 200
    assert response.json() == {
        "id": user.id,
        "username": "tess",
        "display_name": "Tess (test)",
        "roles": ["technician"],
        "via": "token",
        "token_id": created["id"],
        "must_change_password": False,
    }
    assert set_cookies(response) == []
    [row] = await db.fetch("SELECT last_used_at FROM api_token")
    assert row["last_used_at"] is not None


async def test_revoked_token_is_refused_and_revoking_again_changes_nothing(served_app, http):
    user = await make_user("tess", "technician")
    client = await logged_in_client(served_app.url, "tess")
    created = await create_token(client)
    assert (await http.get("/api/auth/me", headers=bearer(created["token"]))).status_code == 200

    revoked = await client.delete(f"/api/auth/tokens/{created['id']}")
    again = await client.delete(f"/api/auth/tokens/{created['id']}")

    assert (revoked.status_code, again.status_code) == (204, 204)
    refused = await http.get("/api/auth/me", headers=bearer(created["token"]))
    assert refused.status_code == 401
    assert without_request_id(refused)["code"] == "not_authenticated"
    revocations = [e for e in await audit_events() if e["action"] == "api_token.revoked"]
    assert [(e["actor"], e["subject_id"]) for e in revocations] == [
        (f"user:{user.id}", str(created["id"]))
    ]
    await client.aclose()


async def test_invalid_bearer_does_not_fall_back_to_the_session_cookie(served_app):
    await make_user("tess", "technician")
    client = await logged_in_client(served_app.url, "tess")

    for value in ("inf_00000000_" + "x" * 43, "garbage", "inf_"):
        response = await client.get("/api/auth/me", headers=bearer(value))
        assert response.status_code == 401, value
    assert (await client.get("/api/auth/me")).status_code == 200
    await client.aclose()


async def test_expired_token_and_token_of_inactive_user_are_refused(http):
    user = await make_user("tess", "technician")
    async with db.transaction():
        expiring, expiring_text = await issue_token(
            user.id, name="expiring", actor="test", expires_at=utcnow() + timedelta(hours=1)
        )
        _, other_text = await issue_token(user.id, name="other", actor="test")
    assert (await http.get("/api/auth/me", headers=bearer(expiring_text))).status_code == 200
    await db.fetch(
        "UPDATE api_token SET expires_at = now() - interval '1 second' WHERE id = {}", expiring.id
    )
    assert (await http.get("/api/auth/me", headers=bearer(expiring_text))).status_code == 401

    assert (await http.get("/api/auth/me", headers=bearer(other_text))).status_code == 200
    await db.fetch("UPDATE app_user SET is_active = false WHERE id = {}", user.id)
    assert (await http.get("/api/auth/me", headers=bearer(other_text))).status_code == 401


async def test_a_token_cannot_create_more_tokens(http):
    user = await make_user("tess", "technician")
    async with db.transaction():
        _, text = await issue_token(user.id, name="integration", actor="test")

    response = await http.post("/api/auth/tokens", json={"name": "another"}, headers=bearer(text))

    assert response.status_code == 403
    assert response.json()["detail"] == (
        "This must be done by a person logged in, not with an API token."
    )
    assert len(await db.fetch("SELECT id FROM api_token")) == 1
    # Nor change the password of the person it belongs to.
    response = await http.post(
        "/api/auth/password",
        json={"current_password": "violet kettle under the stairs", "new_password": "x" * 20},
        headers=bearer(text),
    )
    assert response.status_code == 403
    assert [e["action"] for e in await audit_events()] == ["api_token.issued"]


async def test_someone_elses_token_cannot_be_revoked_and_is_reported_missing(served_app):
    await make_user("tess", "technician")
    await make_user("paco", "packer")
    tess = await logged_in_client(served_app.url, "tess")
    paco = await logged_in_client(served_app.url, "paco")
    created = await create_token(tess)

    response = await paco.delete(f"/api/auth/tokens/{created['id']}")

    assert response.status_code == 404
    assert response.json()["detail"] == f"There is no API token with id {created['id']}."
    [row] = await db.fetch("SELECT revoked_at FROM api_token")
    assert row["revoked_at"] is None
    await tess.aclose()
    await paco.aclose()


async def test_token_creation_refuses_bad_input_with_a_sentence(served_app):
    await make_user("tess", "technician")
    client = await logged_in_client(served_app.url, "tess")

    cases = [
        ({"name": "   "}, 422, "An API token needs a name saying what uses it."),
        (
            {"name": "x", "expires_at": "2001-01-01T00:00:00Z"},
            422,
            "A token's expiry must be in the future.",
        ),
        ({"name": "x", "expires_at": "next tuesday"}, 400, None),
        ({}, 400, None),
    ]
    for body, status, detail in cases:
        response = await client.post("/api/auth/tokens", json=body)
        assert response.status_code == status, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        if detail:
            assert response.json()["detail"] == detail
    assert await db.fetch("SELECT id FROM api_token") == []
    await client.aclose()


async def test_token_ids_beyond_postgresql_integer_are_a_400_naming_the_parameter(served_app):
    await make_user("tess", "technician")
    client = await logged_in_client(served_app.url, "tess")
    created = await create_token(client)

    for token_id, limit in (("99999999999", "<= 2147483647"), ("0", ">= 1"), ("-1", ">= 1")):
        response = await client.delete(f"/api/auth/tokens/{token_id}")
        assert response.status_code == 400, token_id
        assert without_request_id(response)["detail"] == (
            f"Invalid request: token_id: Expected `int` {limit}"
        )
    [row] = await db.fetch("SELECT id, revoked_at FROM api_token")
    assert (row["id"], row["revoked_at"]) == (created["id"], None)
    await client.aclose()


async def test_a_token_name_with_a_control_character_is_a_400_naming_the_field(served_app):
    await make_user("tess", "technician")
    client = await logged_in_client(served_app.url, "tess")

    for name in ("label\x00printer", "label\x1bprinter"):
        response = await client.post("/api/auth/tokens", json={"name": name})
        assert response.status_code == 400
        assert without_request_id(response)["detail"] == (
            "Invalid request: data: name must not contain control characters (such as NUL)."
        )
    assert await db.fetch("SELECT id FROM api_token") == []
    await client.aclose()


async def test_creating_a_token_needs_a_json_body(served_app):
    await make_user("tess", "technician")
    client = await logged_in_client(served_app.url, "tess")

    response = await client.post(
        "/api/auth/tokens", content=b'{"name": "printer"}', headers={"content-type": "text/plain"}
    )

    assert response.status_code == 415
    assert await db.fetch("SELECT id FROM api_token") == []
    await client.aclose()
