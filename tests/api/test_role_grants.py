"""The two-person rule: admin and pharmacist are granted only when a second admin approves."""

from __future__ import annotations

import httpx
import pytest

from core import db
from tests.api.test_auth_support import (
    audit_events,
    logged_in_client,
    login,
    make_user,
    without_request_id,
)

SOCK_PUPPET = {
    "username": "b.sock",
    "display_name": "B. Sock",
    "password": "handed over in person",
    "roles": ["admin", "pharmacist"],
}


@pytest.fixture
async def admins(served_app, http):
    """Two admins, A (ada) and C (cyd), signed in."""
    ada = await make_user("ada", "admin")
    cyd = await make_user("cyd", "admin")
    a = await logged_in_client(served_app.url, "ada")
    c = await logged_in_client(served_app.url, "cyd")
    a.user, c.user = ada, cyd  # type: ignore[attr-defined]
    yield a, c
    await a.aclose()
    await c.aclose()


async def roles_of(username: str) -> list[str]:
    [row] = await db.fetch("SELECT roles FROM app_user WHERE username = {}", username)
    return list(row["roles"])


async def pending(client: httpx.AsyncClient) -> list[dict]:
    response = await client.get("/api/users/role-requests")
    assert response.status_code == 200
    return response.json()


async def test_the_walk_around_fails_a_new_admin_pharmacist_account_holds_neither(
    admins, served_app
):
    """Today's hole: A makes B with admin + pharmacist, signs in as B and grants A the same."""
    a, _ = admins
    created = await a.post("/api/users", json=SOCK_PUPPET)
    assert created.status_code == 201
    assert (created.json()["roles"], created.json()["pending_roles"]) == (
        [],
        ["pharmacist", "admin"],
    )

    # A knows B's password: signs in as B and chooses B's own password...
    b = httpx.AsyncClient(base_url=served_app.url, timeout=10)
    assert (await login(b, "b.sock", SOCK_PUPPET["password"])).status_code == 200
    changed = await b.post(
        "/api/auth/password",
        json={"current_password": SOCK_PUPPET["password"], "new_password": "mine now, all mine"},
    )
    assert changed.status_code == 204
    # ...but B is no admin, so B cannot grant A anything.
    grab = await b.patch(f"/api/users/{a.user.id}", json={"roles": ["admin", "pharmacist"]})

    assert grab.status_code == 403
    assert grab.json()["detail"] == "This needs the admin role."
    assert await roles_of("b.sock") == []
    assert await roles_of("ada") == ["admin"]
    await b.aclose()


async def test_requester_cannot_approve_and_a_second_admin_can(admins):
    a, c = admins
    created = (await a.post("/api/users", json=SOCK_PUPPET)).json()
    requests = await pending(a)
    assert [(r["user_id"], r["role"], r["state"], r["requested_by"]) for r in requests] == [
        (created["id"], "pharmacist", "pending", a.user.id),
        (created["id"], "admin", "pending", a.user.id),
    ]
    pharmacist = requests[0]["id"]

    own = await a.post(f"/api/users/role-requests/{pharmacist}/approve", json={})

    assert own.status_code == 403
    assert without_request_id(own) == {
        "type": "about:blank#own_role_request",
        "title": "Forbidden",
        "status": 403,
        "detail": "You asked for this role; another admin must approve it (two-person rule).",
        "code": "own_role_request",
        "instance": f"/api/users/role-requests/{pharmacist}/approve",
    }
    assert await roles_of("b.sock") == []
    assert not [e for e in await audit_events() if e["action"].startswith("role_grant.appr")]

    approved = await c.post(
        f"/api/users/role-requests/{pharmacist}/approve", json={"reason": "licence checked"}
    )

    assert approved.status_code == 200
    body = approved.json()
    assert (body["state"], body["decided_by"], body["decision_reason"]) == (
        "approved",
        c.user.id,
        "licence checked",
    )
    assert await roles_of("b.sock") == ["pharmacist"]
    shown = (await a.get(f"/api/users/{created['id']}")).json()
    assert (shown["roles"], shown["pending_roles"]) == (["pharmacist"], ["admin"])
    trail = [
        (e["actor"], e["action"], e["subject_type"], e["before"], e["after"], e["reason"])
        for e in await audit_events()
        if e["action"].startswith(("role_grant.", "user.role_granted"))
    ]
    a_actor, c_actor = f"user:{a.user.id}", f"user:{c.user.id}"
    request_for = {"user_id": created["id"], "requested_by": a.user.id, "decided_by": None}
    assert trail == [
        (a_actor, "role_grant.requested", "role_grant_request", None,
         {**request_for, "role": "pharmacist", "state": "pending"}, ""),
        (a_actor, "role_grant.requested", "role_grant_request", None,
         {**request_for, "role": "admin", "state": "pending"}, ""),
        (c_actor, "role_grant.approved", "role_grant_request", {"state": "pending"},
         {"state": "approved", "decided_by": c.user.id}, "licence checked"),
        (c_actor, "user.role_granted", "user", {"roles": []},
         {"roles": ["pharmacist"], "role_request": pharmacist}, "licence checked"),
    ]  # fmt: skip

    twice = await c.post(f"/api/users/role-requests/{pharmacist}/approve", json={})
    assert twice.status_code == 409
    assert twice.json()["detail"] == "This role request was approved already."


async def test_nobody_approves_a_role_for_themself(admins, served_app):
    """C asks for pharmacist for A: A is an admin other than the requester, but the role is
    for A, so only a third admin may approve."""
    a, c = admins
    asked = await c.post(f"/api/users/{a.user.id}/role-requests", json={"role": "pharmacist"})
    assert asked.status_code == 201

    mine = await a.post(f"/api/users/role-requests/{asked.json()['id']}/approve", json={})

    assert mine.status_code == 403
    assert mine.json()["code"] == "own_account"
    assert mine.json()["detail"] == (
        "You cannot approve a role for your own account; another admin must."
    )
    assert await roles_of("ada") == ["admin"]
    # Nor may anyone ask for themself.
    self_ask = await a.post(f"/api/users/{a.user.id}/role-requests", json={"role": "pharmacist"})
    assert self_ask.status_code == 403
    assert self_ask.json()["code"] == "own_account"


async def test_a_patch_adding_pharmacist_opens_a_request_and_a_rejection_grants_nothing(admins):
    a, c = admins
    tess = await make_user("tess", "technician")

    patched = await a.patch(
        f"/api/users/{tess.id}", json={"roles": ["technician", "pharmacist"], "reason": "boards"}
    )

    assert patched.status_code == 200
    assert (patched.json()["roles"], patched.json()["pending_roles"]) == (
        ["technician"],
        ["pharmacist"],
    )
    [request] = await pending(c)
    assert (request["user_id"], request["role"], request["reason"]) == (
        tess.id,
        "pharmacist",
        "boards",
    )
    again = await a.post(f"/api/users/{tess.id}/role-requests", json={"role": "pharmacist"})
    assert (again.status_code, again.json()["id"]) == (201, request["id"])  # the same request

    rejected = await c.post(
        f"/api/users/role-requests/{request['id']}/reject", json={"reason": "not yet licensed"}
    )
    late = await c.post(f"/api/users/role-requests/{request['id']}/approve", json={})

    assert rejected.status_code == 200
    assert rejected.json()["state"] == "rejected"
    assert late.status_code == 409
    assert await roles_of("tess") == ["technician"]
    assert await pending(a) == []
    everything = (await a.get("/api/users/role-requests", params={"state": "all"})).json()
    assert [r["state"] for r in everything] == ["rejected"]


async def test_role_requests_need_an_admin_in_person(admins, served_app, http):
    a, _ = admins
    await make_user("phil", "pharmacist")
    phil = await logged_in_client(served_app.url, "phil")
    created = (await a.post("/api/users", json=SOCK_PUPPET)).json()
    [first, _] = await pending(a)

    assert (await phil.get("/api/users/role-requests")).status_code == 403
    assert (
        await phil.post(f"/api/users/role-requests/{first['id']}/approve", json={})
    ).status_code == 403
    assert (await http.get("/api/users/role-requests")).status_code == 401
    assert await roles_of("b.sock") == []
    assert created["pending_roles"] == ["pharmacist", "admin"]
    await phil.aclose()


async def test_approval_is_refused_for_a_deactivated_account(admins):
    a, c = admins
    created = (await a.post("/api/users", json={**SOCK_PUPPET, "roles": ["pharmacist"]})).json()
    [request] = await pending(a)
    await a.patch(f"/api/users/{created['id']}", json={"is_active": False})

    response = await c.post(f"/api/users/role-requests/{request['id']}/approve", json={})

    assert response.status_code == 422
    assert response.json()["detail"] == (
        "The account is inactive: reject this request, or reactivate the account first."
    )
    assert await roles_of("b.sock") == []
