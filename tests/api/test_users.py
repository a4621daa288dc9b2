"""`/api/users` (admins only) and role guards on real routes of the product."""

from __future__ import annotations

import pytest

from core import db
from core.identity.passwords import verify_password
from core.identity.services import issue_token
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
        "pending_roles",
        "is_active",
        "must_change_password",
        "created_at",
        "password_changed_at",
        "last_login_at",
    }
    assert "argon2" not in response.text


async def test_admin_creates_a_user_who_can_then_log_in(admin, http):
    """The pharmacist role waits for a second admin (tests/api/test_role_grants.py); the
    password must be changed at the first sign-in (test_credentials_lifecycle.py)."""
    response = await admin.post("/api/users", json=NEW_USER)

    assert response.status_code == 201
    body = response.json()
    assert (
        body["username"],
        body["display_name"],
        body["roles"],
        body["pending_roles"],
        body["is_active"],
        body["must_change_password"],
    ) == ("new.pharmacist", "Dr. Nadia Novak", [], ["pharmacist"], True, True)
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
                "roles": [],
                "is_active": True,
                "must_change_password": True,
            },
            "reason": "",
        }
    ]
    signed_in = await login(http, "new.pharmacist", NEW_USER["password"])
    assert signed_in.status_code == 200
    assert signed_in.json()["must_change_password"] is True


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
        (
            {"display_name": "Amy \u202eeeL"},
            "A display name must not contain invisible formatting characters, such as "
            "right-to-left overrides.",
        ),
        ({"password": " " * 12}, "A password must not be made of spaces only."),
        ({"password": "\u3000" * 12}, "A password must not be made of spaces only."),
        (
            {"password": "q7" + " " * 10},
            "A password must be at least 12 characters long, not counting spaces at the start "
            "or end.",
        ),
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

    assert (await session.get("/api/users")).status_code == 403

    # admin would need a second admin's approval (test_role_grants.py); packer does not.
    response = await admin.patch(
        f"/api/users/{tess.id}",
        json={"roles": ["packer", "technician"], "reason": "covers the pack bench"},
    )

    assert response.status_code == 200
    assert response.json()["roles"] == ["technician", "packer"]
    [event] = [e for e in await audit_events() if e["action"] == "user.updated"]
    assert (event["before"], event["after"], event["reason"]) == (
        {"roles": ["technician"]},
        {"roles": ["technician", "packer"]},
        "covers the pack bench",
    )
    # Roles are read on every request: the open session loses a role at once.
    removed = await admin.patch(f"/api/users/{tess.id}", json={"roles": ["packer"]})
    assert removed.json()["roles"] == ["packer"]
    assert (await session.get("/api/auth/me")).json()["roles"] == ["packer"]
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


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        # Separation of duties: an admin granting themself pharmacist could verify product.
        (
            {"roles": ["pharmacist", "admin"]},
            "You cannot change your own roles; another admin must do it.",
        ),
        (
            {"roles": ["technician"], "reason": "stepping down"},
            "You cannot change your own roles; another admin must do it.",
        ),
        (
            {"is_active": False},
            "You cannot deactivate your own account; another admin must do it.",
        ),
        (
            {"display_name": "Ada L.", "is_active": False},
            "You cannot deactivate your own account; another admin must do it.",
        ),
    ],
)
async def test_an_admin_cannot_change_their_own_roles_or_active_flag(admin, change, detail):
    await make_user("bea", "admin")  # not the last-admin rule: another admin exists
    events = await audit_events()

    response = await admin.patch(f"/api/users/{admin.user.id}", json=change)

    assert response.status_code == 403
    assert without_request_id(response) == {
        "type": "about:blank#own_account",
        "title": "Forbidden",
        "status": 403,
        "detail": detail,
        "code": "own_account",
        "instance": f"/api/users/{admin.user.id}",
    }
    assert await audit_events() == events
    [row] = await db.fetch(
        "SELECT display_name, roles, is_active FROM app_user WHERE id = {}", admin.user.id
    )
    assert (row["display_name"], row["roles"], row["is_active"]) == ("Ada (test)", ["admin"], True)
    assert (await admin.get("/api/users")).status_code == 200


async def test_an_admin_may_rename_themself_and_restate_their_roles(admin):
    response = await admin.patch(
        f"/api/users/{admin.user.id}", json={"display_name": "Ada Lovelace", "roles": ["admin"]}
    )

    assert response.status_code == 200
    assert (response.json()["display_name"], response.json()["roles"]) == (
        "Ada Lovelace",
        ["admin"],
    )
    [event] = [e for e in await audit_events() if e["action"] == "user.updated"]
    assert (event["before"], event["after"]) == (
        {"display_name": "Ada (test)"},
        {"display_name": "Ada Lovelace"},
    )


async def test_another_admin_can_take_the_admin_role_away(admin, served_app):
    await make_user("bea", "admin")
    bea = await logged_in_client(served_app.url, "bea")

    response = await bea.patch(f"/api/users/{admin.user.id}", json={"roles": ["packer"]})

    assert response.status_code == 200
    assert response.json()["roles"] == ["packer"]
    # Ada's session goes on, but without the admin role from this request on.
    assert (await admin.get("/api/users")).status_code == 403
    await bea.aclose()


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
    assert set(event["after"]) == {"password_changed_at", "must_change_password"}
    assert event["after"]["must_change_password"] is True
    assert event["reason"] == "forgot it"
    await session.aclose()


@pytest.mark.parametrize("password", [" " * 12, "q7" + " " * 10, "\u3000" * 12])
async def test_a_reset_to_spaces_is_refused_and_changes_nothing(admin, served_app, password):
    tess = await make_user("tess", "technician")
    session = await logged_in_client(served_app.url, "tess")
    events = await audit_events()

    response = await admin.put(f"/api/users/{tess.id}/password", json={"password": password})

    assert response.status_code == 422
    assert response.json()["code"] == "identity_policy"
    [row] = await db.fetch("SELECT password_hash FROM app_user WHERE id = {}", tess.id)
    assert verify_password(row["password_hash"], PASSWORD)
    assert await audit_events() == events
    assert (await session.get("/api/auth/me")).status_code == 200
    await session.aclose()


async def test_an_admin_cannot_reset_their_own_password(admin):
    events = await audit_events()

    response = await admin.put(
        f"/api/users/{admin.user.id}/password", json={"password": "taken over quietly"}
    )

    assert response.status_code == 403
    assert without_request_id(response) == {
        "type": "about:blank#own_account",
        "title": "Forbidden",
        "status": 403,
        "detail": "You cannot reset your own password as an admin; change it with your "
        "current password (POST /api/auth/password).",
        "code": "own_account",
        "instance": f"/api/users/{admin.user.id}/password",
    }
    [row] = await db.fetch("SELECT password_hash FROM app_user WHERE id = {}", admin.user.id)
    assert verify_password(row["password_hash"], PASSWORD)
    assert await audit_events() == events
    assert (await admin.get("/api/auth/me")).status_code == 200


# ---------------------------------------------------------------- API tokens


async def test_an_admin_api_token_cannot_manage_users(http):
    """A leaked integration token must not mint accounts (an admin + pharmacist one would
    defeat separation of duties) nor change or read them."""
    ada = await make_user("ada", "admin")
    tess = await make_user("tess", "technician")
    async with db.transaction():
        _, token = await issue_token(ada.id, name="integration", actor="test")
    bearer = {"authorization": f"Bearer {token}"}
    events = await audit_events()
    mallory = {**NEW_USER, "username": "mallory", "roles": ["admin", "pharmacist"]}

    responses = [
        await http.get("/api/users", headers=bearer),
        await http.post("/api/users", json=mallory, headers=bearer),
        await http.get(f"/api/users/{tess.id}", headers=bearer),
        await http.patch(f"/api/users/{tess.id}", json={"roles": ["admin"]}, headers=bearer),
        await http.put(
            f"/api/users/{tess.id}/password", json={"password": "x" * 20}, headers=bearer
        ),
    ]

    for response in responses:
        assert response.status_code == 403
        assert without_request_id(response)["detail"] == (
            "This must be done by a person logged in, not with an API token."
        )
    assert await user_count() == 2
    [row] = await db.fetch("SELECT roles, password_hash FROM app_user WHERE id = {}", tess.id)
    assert row["roles"] == ["technician"]
    assert verify_password(row["password_hash"], PASSWORD)
    assert await audit_events() == events


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("method", "path", "body", "detail"),
    [
        ("GET", "/api/users/99999999999", None, "user_id: Expected `int` <= 2147483647"),
        ("GET", "/api/users/2147483648", None, "user_id: Expected `int` <= 2147483647"),
        ("GET", "/api/users/0", None, "user_id: Expected `int` >= 1"),
        ("GET", "/api/users/-3", None, "user_id: Expected `int` >= 1"),
        (
            "PATCH",
            "/api/users/99999999999",
            {"is_active": False},
            "user_id: Expected `int` <= 2147483647",
        ),
        (
            "PUT",
            "/api/users/99999999999/password",
            {"password": "a long enough password"},
            "user_id: Expected `int` <= 2147483647",
        ),
    ],
)
async def test_ids_beyond_postgresql_integer_are_a_400_naming_the_parameter(
    admin, method, path, body, detail
):
    events = await audit_events()

    response = await admin.request(method, path, json=body)

    assert response.status_code == 400
    problem = without_request_id(response)
    assert (problem["code"], problem["detail"]) == ("invalid_request", f"Invalid request: {detail}")
    assert await audit_events() == events


async def test_the_largest_id_is_a_404_not_a_400(admin):
    response = await admin.get("/api/users/2147483647")

    assert response.status_code == 404
    assert response.json()["detail"] == "There is no user with id 2147483647."


@pytest.mark.parametrize("character", ["\x00", "\x07", "\x1b", "\x7f"])
async def test_control_characters_in_names_and_reasons_are_a_400_naming_the_field(admin, character):
    tess = await make_user("tess", "technician")
    count, events = await user_count(), await audit_events()
    cases = [
        ("POST", "/api/users", {**NEW_USER, "display_name": f"Nadia{character}"}, "display_name"),
        ("PATCH", f"/api/users/{tess.id}", {"display_name": f"T{character}"}, "display_name"),
        (
            "PATCH",
            f"/api/users/{tess.id}",
            {"is_active": False, "reason": f"left{character}"},
            "reason",
        ),
        (
            "PUT",
            f"/api/users/{tess.id}/password",
            {"password": "handed over in person", "reason": f"forgot{character}"},
            "reason",
        ),
    ]

    for method, path, body, field in cases:
        response = await admin.request(method, path, json=body)
        assert response.status_code == 400, (method, path, response.text)
        assert without_request_id(response)["detail"] == (
            f"Invalid request: data: {field} must not contain control characters (such as NUL)."
        )
    assert await user_count() == count
    assert await audit_events() == events
    [row] = await db.fetch(
        "SELECT display_name, is_active, password_hash FROM app_user WHERE id = {}", tess.id
    )
    assert (row["display_name"], row["is_active"]) == ("Tess (test)", True)
    assert verify_password(row["password_hash"], PASSWORD)


async def test_line_breaks_in_a_reason_are_kept(admin):
    tess = await make_user("tess", "technician")

    response = await admin.patch(
        f"/api/users/{tess.id}", json={"is_active": False, "reason": "left\r\nsee HR ticket\t42"}
    )

    assert response.status_code == 200
    [event] = [e for e in await audit_events() if e["action"] == "user.deactivated"]
    assert event["reason"] == "left\r\nsee HR ticket\t42"


async def test_creating_a_user_needs_a_json_body(admin):
    count = await user_count()

    response = await admin.post(
        "/api/users",
        content=b'{"username": "mallory", "display_name": "M", "password": "mallory-password-1",'
        b' "roles": ["admin", "pharmacist"]}',
        headers={"content-type": "text/plain"},
    )

    assert response.status_code == 415
    assert await user_count() == count
