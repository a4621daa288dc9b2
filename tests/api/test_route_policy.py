"""Every route of the real app declares who may call it, and every documented one its id.

Architecture rule 8 (least privilege) as a machine check: a handler needs a `requires(...)`
guard (core.web.guards.RoleGuard, on the handler or any layer above it) or `opt={"public": True}`;
handlers in the OpenAPI schema need an explicit, unique `operation_id`. Routes added later by
anyone are walked too. Litestar's own handlers (automatic OPTIONS, the /schema pages) are
exempt: they serve no data of ours.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Litestar, get

from api.app import create_app
from core.identity.model import Role
from core.web.guards import is_public, requires, role_guards


def _is_framework_handler(handler: Any) -> bool:
    return handler.fn.__module__.startswith("litestar.")


def policy_violations(app: Litestar) -> list[str]:
    problems: list[str] = []
    operation_ids: dict[str, str] = {}
    for route in app.routes:
        for handler in route.route_handlers:
            if _is_framework_handler(handler):
                continue
            methods = ",".join(sorted(getattr(handler, "http_methods", None) or ["WS"]))
            where = f"{methods} {route.path} ({handler.handler_id})"
            public = is_public(handler)
            guards = role_guards(handler)
            if not public and not guards:
                problems.append(f"{where}: neither requires(...) nor opt={{'public': True}}")
            if public and guards:
                problems.append(f"{where}: both public and guarded by {guards}")
            if getattr(handler, "resolve_include_in_schema", lambda: False)():
                operation_id = handler.operation_id
                if not isinstance(operation_id, str) or not operation_id:
                    problems.append(f"{where}: no explicit operation_id")
                elif operation_id in operation_ids:
                    problems.append(
                        f"{where}: operation_id {operation_id!r} also used by "
                        f"{operation_ids[operation_id]}"
                    )
                else:
                    operation_ids[operation_id] = where
    return problems


def test_every_route_of_the_app_declares_its_roles_and_operation_id(test_settings):
    app = create_app(test_settings)

    assert policy_violations(app) == []


def test_the_identity_routes_are_guarded_as_intended(test_settings):
    app = create_app(test_settings)
    declared = {}
    for route in app.routes:
        for handler in route.route_handlers:
            if route.path.startswith(("/api/auth", "/api/users")) and not _is_framework_handler(
                handler
            ):
                declared[handler.operation_id] = (
                    "public" if is_public(handler) else [repr(g) for g in role_guards(handler)]
                )

    assert declared == {
        "login": "public",
        "logout": "public",
        "getMe": ["requires()"],
        "changeMyPassword": ["requires(interactive=True)"],
        "listMyTokens": ["requires()"],
        "createToken": ["requires(interactive=True)"],
        "revokeToken": ["requires()"],
        "listUsers": ["requires(admin, interactive=True)"],
        "createUser": ["requires(admin, interactive=True)"],
        "getUser": ["requires(admin, interactive=True)"],
        "updateUser": ["requires(admin, interactive=True)"],
        "setUserPassword": ["requires(admin, interactive=True)"],
    }


def test_the_check_catches_an_unguarded_route_and_a_missing_operation_id():
    class Careless(Controller):
        path = "/careless"

        @get("/open", operation_id="carelessOpen")
        async def open_(self) -> str:
            return "oops"

        @get("/anonymous", guards=[requires(Role.packer)])
        async def anonymous(self) -> str:
            return "no id"

        @get("/confused", operation_id="confused", guards=[requires()], opt={"public": True})
        async def confused(self) -> str:
            return "both"

        @get("/hidden", include_in_schema=False, operation_id=None)
        async def hidden(self) -> str:
            return "not in the schema, still needs a guard"

    problems = policy_violations(Litestar(route_handlers=[Careless]))

    assert len(problems) == 4, problems
    assert any("/careless/open" in p and "neither" in p for p in problems)
    assert any("/careless/anonymous" in p and "operation_id" in p for p in problems)
    assert any("/careless/confused" in p and "both public and guarded" in p for p in problems)
    assert any("/careless/hidden" in p and "neither" in p for p in problems)
