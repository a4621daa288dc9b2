"""`/api/users` (admins only) and role guards on real routes of the product."""

from __future__ import annotations

import pytest

from core import db
from core.identity.passwords import verify_password
from tests.api.test_auth_support import (
    PASSWORD,
    audit_events,
    logged_in_client,
    login,
    make_user,
    user_count,
    without_request_id,
)

NEW_USER = {
    "username": "New.Pharmacist",
    "display_name": "  Dr.  Nadia   Novak ",
    "password": "a long enough passphrase",
    "roles": ["pharmacist"],
}


@pytest.fixture
async def admin(served_app, http):
    user = await make_user("ada", "admin")
    client = await logged_in_client(served_app.url, "ada")
    client.user = user  # type: ignore[attr-defined]
    yield client
    await client.aclose()


# ---------------------------------------------------------------- guards on real routes


async def test_technician_on_a_pharmacist_route_gets_403(served_app, http):
    """`GET /api/audit/events` is for pharmacists (and admins); a technician is refused."""
    await make_user("tess", "technician")
    client = await logged_in_client(served_app.url, "tess")

    response = await client.get("/api/audit/events")

    assert response.status_code == 403
    assert without_request_id(response) == {
        "type": "about:blank#forbidden",
        "title": "Forbidden",
        "status": 403,
        "detail": "This needs one of the roles pharmacist or admin.",
        "code": "forbidden",
        "instance": "/api/audit/events",
    }
    await client.aclose()


async def test_pharmacist_on_the_same_route_gets_200(served_app, http):
    await make_user("phil", "pharmacist")
    client = await logged_in_client(served_app.url, "phil")

    assert (await client.get("/api/audit/events")).status_code == 200
    await client.aclose()


@pytest.mark.parametrize("role", ["technician", "packer", "pharmacist"])
async def test_only_admins_manage_users(served_app, http, role):
    await make_user("someone", role)
    client = await logged_in_client(served_app.url, "someone")
    count = await user_count()

    listed = await client.get("/api/users")
    created = await client.post("/api/users", json=NEW_USER)

    for response in (listed, created):
        assert response.status_code == 403
        assert response.json()["detail"] == "This needs the admin role."
    assert await user_count() == count
    await client.aclose()


async def test_user_routes_need_a_login(http):
    response = await http.get("/api/users")
    assert response.status_code == 401


# ---------------------------------------------------------------- listing and creating


async def test_admin_lists_users_without_password_hashes(admin):
    await make_user("tess", "technician")

    response = await admin.get("/api/users")

    assert response.status_code == 200
    body = response.json()
    assert [(u["username"], u["roles"], u["is_active"]) for u in body] == [
        ("ada", ["admin"], True),
        ("tess", ["technician"], True),
    ]
    assert set(body[0]) == {
        "id",
        "username",
        "display_name",
        "roles",
        "is_active",
        "created_at",
        "password_changed_at",
        "last_login_at",
    }
    assert "argon2" not in response.text


async def test_admin_creates_a_user_who_can_then_log_in(admin, http):
    response = await admin.post("/api/users", json=NEW_USER)

    assert response.status_code == 201
    body = response.json()
    assert (body["username"], body["display_name"], body["roles"], body["is_active"]) == (
        "new.pharmacist",
        "Dr. Nadia Novak",
        ["pharmacist"],
        True,
    )
    assert body["last_login_at"] is None
    [row] = await db.fetch(
        "SELECT password_hash FROM app_user WHERE username = {}", "new.pharmacist"
    )
    assert row["password_hash"].startswith("$argon2id$")
    assert verify_password(row["password_hash"], NEW_USER["password"])
    created = [e for e in await audit_events() if e["action"] == "user.created"]
    assert created == [
        {
            "actor": f"user:{admin.user.id}",
            "action": "user.created",
            "subject_type": "user",
            "subject_id": str(body["id"]),
            "before": None,
            "after": {
                "username": "new.pharmacist",
                "display_name": "Dr. Nadia Novak",
                "roles": ["pharmacist"],
                "is_active": True,
            },
            "reason": "",
        }
    ]
    assert (await login(http, "new.pharmacist", NEW_USER["password"])).status_code == 200


async def test_duplicate_username_is_409_and_changes_nothing(admin):
    await make_user("new.pharmacist", "technician")
    count, events = await user_count(), await audit_events()

    response = await admin.post("/api/users", json=NEW_USER)

    assert response.status_code == 409
    assert without_request_id(response) == {
        "type": "about:blank#username_taken",
        "title": "Conflict",
        "status": 409,
        "detail": "The username 'new.pharmacist' is already taken.",
        "code": "username_taken",
        "instance": "/api/users",
    }
    assert await user_count() == count
    assert await audit_events() == events


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"password": "too short"}, "A password must be at least 12 characters long."),
        (
            {"username": "same.as.password", "password": "Same.As.Password"},
            "A password must not be the same as the username.",
        ),
        ({"username": "no"}, "A username must be 3 to 150 characters long."),
        (
            {"username": "nadia novak"},
            "A username may contain only the letters a-z, digits, dots, hyphens and underscores.",
        ),
        ({"roles": []}, "A user needs at least one role."),
        ({"display_name": "   "}, "A display name is required."),
    ],
)
async def test_policy_violations_are_422_with_a_sentence_and_change_nothing(admin, change, detail):
    count, events = await user_count(), await audit_events()

    response = await admin.post("/api/users", json={**NEW_USER, **change})

    assert response.status_code == 422
    problem = without_request_id(response)
    assert (problem["code"], problem["detail"]) == ("identity_policy", detail)
    assert await user_count() == count
    assert await audit_events() == events


@pytest.mark.parametrize(
    "body",
    [
        {**NEW_USER, "roles": ["superuser"]},
        {**NEW_USER, "roles": "pharmacist"},
        {key: value for key, value in NEW_USER.items() if key != "password"},
        {**NEW_USER, "password_hash": "$argon2id$..."},
    ],
)
async def test_malformed_create_is_400_problem_json(admin, body):
    count = await user_count()

    response = await admin.post("/api/users", json=body)

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"].startswith("Invalid request: ")
    assert await user_count() == count


# ---------------------------------------------------------------- changing


async def test_admin_changes_roles_and_the_trail_shows_before_and_after(admin, served_app):
    tess = await make_user("tess", "technician")
    session = await logged_in_client(served_app.url, "tess")
    assert (await session.get("/api/audit/events")).status_code == 403

    response = await admin.patch(
        f"/api/users/{tess.id}",
        json={"roles": ["pharmacist", "technician"], "reason": "passed boards"},
    )

    assert response.status_code == 200
    assert response.json()["roles"] == ["technician", "pharmacist"]
    # Roles are read on every request: the open session has the new role at once.
    assert (await session.get("/api/audit/events")).status_code == 200
    [event] = [e for e in await audit_events() if e["action"] == "user.updated"]
    assert (event["before"], event["after"], event["reason"]) == (
        {"roles": ["technician"]},
        {"roles": ["technician", "pharmacist"]},
        "passed boards",
    )
    await session.aclose()


async def test_deactivating_a_user_is_audited_and_blocks_login(admin, http):
    tess = await make_user("tess", "technician")

    response = await admin.patch(f"/api/users/{tess.id}", json={"is_active": False})

    assert response.status_code == 200
    assert response.json()["is_active"] is False
    assert [e["action"] for e in await audit_events()][-1] == "user.deactivated"
    assert (await login(http, "tess")).status_code == 401


async def test_a_patch_that_changes_nothing_writes_no_event(admin):
    tess = await make_user("tess", "technician")
    events = await audit_events()

    response = await admin.patch(f"/api/users/{tess.id}", json={"roles": ["technician"]})

    assert response.status_code == 200
    assert await audit_events() == events


async def test_the_last_active_admin_cannot_be_removed(admin):
    events = await audit_events()

    demote = await admin.patch(f"/api/users/{admin.user.id}", json={"roles": ["pharmacist"]})
    deactivate = await admin.patch(f"/api/users/{admin.user.id}", json={"is_active": False})

    for response in (demote, deactivate):
        assert response.status_code == 422
        assert response.json()["detail"] == (
            "This would leave no active admin; make another user an admin first."
        )
    assert await audit_events() == events
    [row] = await db.fetch("SELECT roles, is_active FROM app_user WHERE id = {}", admin.user.id)
    assert (row["roles"], row["is_active"]) == (["admin"], True)


async def test_an_admin_may_step_down_when_another_admin_remains(admin):
    await make_user("bea", "admin")

    response = await admin.patch(f"/api/users/{admin.user.id}", json={"roles": ["pharmacist"]})

    assert response.status_code == 200
    # The session goes on, but without the admin role from this request on.
    assert (await admin.get("/api/users")).status_code == 403


async def test_unknown_user_is_404(admin):
    response = await admin.patch("/api/users/999999", json={"is_active": False})

    assert response.status_code == 404
    assert response.json()["detail"] == "There is no user with id 999999."


async def test_admin_resets_a_password_and_the_users_sessions_end(admin, served_app, http):
    tess = await make_user("tess", "technician")
    session = await logged_in_client(served_app.url, "tess")
    new_password = "handed over in person"

    response = await admin.put(
        f"/api/users/{tess.id}/password", json={"password": new_password, "reason": "forgot it"}
    )

    assert response.status_code == 204
    assert (await session.get("/api/auth/me")).status_code == 401
    assert (await login(http, "tess", PASSWORD)).status_code == 401
    assert (await login(http, "tess", new_password)).status_code == 200
    [event] = [e for e in await audit_events() if e["action"] == "user.password_set"]
    assert set(event["after"]) == {"password_changed_at"}
    assert event["reason"] == "forgot it"
    await session.aclose()
