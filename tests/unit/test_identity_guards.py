"""`requires(...)`: 401 without a user, 403 without a listed role, no implied roles.

A small app with the real guard and a stand-in for the authentication middleware; the real
middleware is tested against the served app (tests/api/test_auth*.py).
"""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar, get
from litestar.middleware import ASGIMiddleware
from litestar.testing import TestClient
from litestar.types import ASGIApp, Receive, Scope, Send

from core.identity.model import Role
from core.web.errors import EXCEPTION_HANDLERS
from core.web.guards import RoleGuard, requires
from core.web.principal import AuthenticatedUser


class FakeUser(ASGIMiddleware):
    """Sets scope["user"] from `x-test-roles` (absent: nobody signed in) and `x-test-via`."""

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        headers = dict(scope["headers"])
        roles = headers.get(b"x-test-roles")
        scope["user"] = (
            None
            if roles is None
            else AuthenticatedUser(
                id=1,
                username="someone",
                display_name="Someone",
                roles=[r for r in roles.decode().split(",") if r],
                via=headers.get(b"x-test-via", b"session").decode(),  # type: ignore[arg-type]
            )
        )
        await next_app(scope, receive, send)


@get("/pharmacist-only", guards=[requires(Role.pharmacist)])
async def pharmacist_only() -> str:
    return "ok"


@get("/staff", guards=[requires()])
async def staff() -> str:
    return "ok"


@get("/signature", guards=[requires(Role.pharmacist, interactive=True)])
async def signature() -> str:
    return "ok"


@pytest.fixture(scope="module")
def client() -> Any:
    app = Litestar(
        route_handlers=[pharmacist_only, staff, signature],
        middleware=[FakeUser()],
        exception_handlers=EXCEPTION_HANDLERS,
    )
    with TestClient(app) as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("roles", "status"),
    [
        (None, 401),
        ("", 403),
        ("technician", 403),
        ("packer", 403),
        ("admin", 403),  # separation of duties: admin is not a pharmacist
        ("pharmacist", 200),
        ("technician,pharmacist", 200),
    ],
)
def test_pharmacist_only_route(client, roles, status):
    headers = {} if roles is None else {"x-test-roles": roles}

    response = client.get("/pharmacist-only", headers=headers)

    assert response.status_code == status
    if status == 403:
        assert response.json()["detail"] == "This needs the pharmacist role."
        assert response.headers["content-type"] == "application/problem+json"
    if status == 401:
        assert response.json()["code"] == "not_authenticated"


@pytest.mark.parametrize("roles", ["technician", "packer", "pharmacist", "admin"])
def test_requires_without_roles_lets_any_staff_member_in(client, roles):
    assert client.get("/staff", headers={"x-test-roles": roles}).status_code == 200
    assert client.get("/staff").status_code == 401


def test_an_interactive_route_refuses_api_tokens_even_with_the_role(client):
    pharmacist = {"x-test-roles": "pharmacist"}

    assert client.get("/signature", headers=pharmacist).status_code == 200
    refused = client.get("/signature", headers={**pharmacist, "x-test-via": "token"})
    assert refused.status_code == 403
    assert refused.json()["detail"] == (
        "This must be done by a person logged in, not with an API token."
    )
    # The role is checked first: a technician hears about the role, not the token.
    technician = client.get("/signature", headers={"x-test-roles": "technician"})
    assert technician.json()["detail"] == "This needs the pharmacist role."


def test_guards_carry_their_roles_for_the_route_policy_check():
    guard = requires("admin", Role.pharmacist, Role.admin)

    assert isinstance(guard, RoleGuard)
    assert guard.roles == (Role.pharmacist, Role.admin)
    assert repr(guard) == "requires(pharmacist, admin)"
    assert requires().roles == ()
    assert repr(requires(Role.pharmacist, interactive=True)) == (
        "requires(pharmacist, interactive=True)"
    )


def test_an_unknown_role_is_a_programming_error_at_import_time():
    with pytest.raises(ValueError, match="superuser"):
        requires("superuser")
