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


APPROVER_FROM_REQUESTER = (
    "You cannot approve this: the admin who asked created your account, set its password or "
    "asked for its admin role (directly or through an account they made), so they could be "
    "acting as you; a different admin must approve."
)
REQUESTER_FROM_APPROVER = (
    "You cannot approve this: you created the requester's account, set its password or asked "
    "for its admin role (directly or through an account you made), so the request could be "
    "your own; a different admin must approve."
)


async def take_over(base_url: str, username: str, password: str) -> httpx.AsyncClient:
    """Sign in with a password someone else set and do the forced change, as its setter can."""
    client = httpx.AsyncClient(base_url=base_url, timeout=10)
    assert (await login(client, username, password)).status_code == 200
    changed = await client.post(
        "/api/auth/password",
        json={"current_password": password, "new_password": f"{username} is mine now"},
    )
    assert changed.status_code == 204, changed.text
    return client


def request_ids(requests: list[dict], username_id: int) -> dict[str, int]:
    return {r["role"]: r["id"] for r in requests if r["user_id"] == username_id}


async def approvals() -> list[tuple[str, int]]:
    return [
        (e["action"], e["subject_id"])
        for e in await audit_events()
        if e["action"] in {"role_grant.approved", "user.role_granted"}
    ]


async def test_an_account_the_requester_made_cannot_approve_their_requests(admins, served_app):
    """The walk-around: A makes mallory with admin + pharmacist; C approves only the admin
    grant; A signs in as mallory with the password A set, does the forced change, and has
    mallory approve A's next account, yvette, with admin + pharmacist."""
    a, c = admins
    mallory = (await a.post("/api/users", json={**SOCK_PUPPET, "username": "mallory"})).json()
    admin_grant = request_ids(await pending(a), mallory["id"])["admin"]
    assert (
        await c.post(f"/api/users/role-requests/{admin_grant}/approve", json={})
    ).status_code == 200
    m = await take_over(served_app.url, "mallory", SOCK_PUPPET["password"])
    yvette = (await a.post("/api/users", json={**SOCK_PUPPET, "username": "yvette"})).json()
    before = await approvals()

    refused = [
        await m.post(f"/api/users/role-requests/{request_id}/approve", json={})
        for request_id in request_ids(await pending(a), yvette["id"]).values()
    ]

    assert [r.status_code for r in refused] == [403, 403]
    assert without_request_id(refused[0]) == {
        "type": "about:blank#approver_not_independent",
        "title": "Forbidden",
        "status": 403,
        "detail": APPROVER_FROM_REQUESTER,
        "code": "approver_not_independent",
        "instance": refused[0].json()["instance"],
    }
    assert await roles_of("yvette") == []
    assert await roles_of("mallory") == ["admin"]
    assert await approvals() == before
    assert len(await pending(a)) == 3  # mallory's pharmacist, yvette's two: all still pending
    await m.aclose()


async def test_nor_may_an_admin_approve_what_their_own_account_asks(admins, served_app):
    """The same chain the other way, and one link further: A cannot approve what mallory
    (made by A) asks for; nor can nina, made by mallory, approve what A asks for, even
    after an honest admin approved nina's admin role."""
    a, c = admins
    mallory = (await a.post("/api/users", json={**SOCK_PUPPET, "username": "mallory"})).json()
    grant = request_ids(await pending(a), mallory["id"])["admin"]
    await c.post(f"/api/users/role-requests/{grant}/approve", json={})
    m = await take_over(served_app.url, "mallory", SOCK_PUPPET["password"])
    nina = (await m.post("/api/users", json={**SOCK_PUPPET, "username": "nina"})).json()
    nina_grants = request_ids(await pending(a), nina["id"])

    by_a = await a.post(f"/api/users/role-requests/{nina_grants['pharmacist']}/approve", json={})

    assert (by_a.status_code, by_a.json()["code"]) == (403, "approver_not_independent")
    assert by_a.json()["detail"] == REQUESTER_FROM_APPROVER
    assert await roles_of("nina") == []

    assert (
        await c.post(f"/api/users/role-requests/{nina_grants['admin']}/approve", json={})
    ).status_code == 200
    n = await take_over(served_app.url, "nina", SOCK_PUPPET["password"])
    tess = await make_user("tess", "technician")
    asked = await a.post(f"/api/users/{tess.id}/role-requests", json={"role": "pharmacist"})

    by_nina = await n.post(f"/api/users/role-requests/{asked.json()['id']}/approve", json={})

    assert (by_nina.status_code, by_nina.json()["detail"]) == (403, APPROVER_FROM_REQUESTER)
    assert await roles_of("tess") == ["technician"]
    # An independent admin still can.
    assert (
        await c.post(f"/api/users/role-requests/{asked.json()['id']}/approve", json={})
    ).status_code == 200
    assert await roles_of("tess") == ["technician", "pharmacist"]
    await m.aclose()
    await n.aclose()


async def test_an_admin_whose_password_the_requester_reset_cannot_approve(admins, served_app):
    """A resets another admin's password, signs in as them and does the forced change: that
    account still comes from A, so it cannot approve A's requests."""
    a, c = admins
    dee = await make_user("dee", "admin")
    reset = await a.put(f"/api/users/{dee.id}/password", json={"password": "a reset by ada"})
    assert reset.status_code == 204
    d = await take_over(served_app.url, "dee", "a reset by ada")
    tess = await make_user("tess", "technician")
    asked = (
        await a.post(f"/api/users/{tess.id}/role-requests", json={"role": "pharmacist"})
    ).json()

    response = await d.post(f"/api/users/role-requests/{asked['id']}/approve", json={})

    assert (response.status_code, response.json()["detail"]) == (403, APPROVER_FROM_REQUESTER)
    assert await roles_of("tess") == ["technician"]
    [row] = await db.fetch("SELECT password_set_by FROM app_user WHERE id = {}", dee.id)
    assert row["password_set_by"] == a.user.id
    by_c = await c.post(f"/api/users/role-requests/{asked['id']}/approve", json={})
    assert (by_c.status_code, await roles_of("tess")) == (200, ["technician", "pharmacist"])
    await d.aclose()


async def test_an_account_with_a_password_set_by_someone_else_cannot_approve(admins, served_app):
    """Until its owner chooses their own password, the account may do nothing but that."""
    a, c = admins
    dee = await make_user("dee", "admin")
    await c.put(f"/api/users/{dee.id}/password", json={"password": "a reset by cyd"})
    tess = await make_user("tess", "technician")
    asked = (
        await a.post(f"/api/users/{tess.id}/role-requests", json={"role": "pharmacist"})
    ).json()
    d = httpx.AsyncClient(base_url=served_app.url, timeout=10)
    assert (await login(d, "dee", "a reset by cyd")).status_code == 200

    response = await d.post(f"/api/users/role-requests/{asked['id']}/approve", json={})

    assert (response.status_code, response.json()["code"]) == (403, "password_change_required")
    assert await roles_of("tess") == ["technician"]
    await d.aclose()


async def test_accounts_made_on_the_shell_are_independent(admins):
    """The documented exception: created_by NULL (the shell, the seed, accounts made before
    provenance was recorded) links to nobody."""
    a, c = admins
    tess = await make_user("tess", "technician")
    asked = (await a.post(f"/api/users/{tess.id}/role-requests", json={"role": "admin"})).json()

    response = await c.post(f"/api/users/role-requests/{asked['id']}/approve", json={})

    assert response.status_code == 200
    assert await roles_of("tess") == ["technician", "admin"]
