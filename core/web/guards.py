"""Route guards: every route says who may call it (architecture rule 8, least privilege).

    @get("/things", operation_id="listThings", guards=[requires(Role.pharmacist)])
    @get("/health", operation_id="getHealth", opt={"public": True})

`requires()` with no roles means any signed-in staff member. Roles never imply each other:
an admin does not pass a pharmacist check (separation of duties). `interactive=True` refuses
API tokens: acts that stand for a person's signature (verifying product, approving dispatch)
must be done by that person in a session, not by an integration holding their token.

`tests/api/test_route_policy.py` fails for a route with neither a `requires(...)` guard nor
`opt={"public": True}`, reading them with `role_guards` and `is_public` below.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from core.identity.model import ROLE_ORDER, Role, has_any_role, roles_needed_sentence

NOT_SIGNED_IN = "Log in first, or send an API token (Authorization: Bearer inf_...)."
NOT_INTERACTIVE = "This must be done by a person logged in, not with an API token."


class RoleGuard:
    """A Litestar guard that lets through a signed-in user holding one of `roles`."""

    __slots__ = ("interactive", "roles")

    def __init__(self, roles: tuple[Role, ...], *, interactive: bool = False) -> None:
        self.roles = roles
        self.interactive = interactive

    async def __call__(
        self, connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
    ) -> None:
        # Async on purpose: Litestar runs a sync guard in its thread pool on every request.
        # scope["user"] is set by core.web.authentication; if that middleware did not run, there
        # is no user and the route stays closed.
        user = connection.scope.get("user")
        if user is None:
            raise NotAuthorizedException(NOT_SIGNED_IN)
        if not has_any_role(user.roles, self.roles):
            raise PermissionDeniedException(roles_needed_sentence(self.roles))
        if self.interactive and user.via != "session":
            raise PermissionDeniedException(NOT_INTERACTIVE)

    def __repr__(self) -> str:
        names = [role.value for role in self.roles]
        if self.interactive:
            names.append("interactive=True")
        return f"requires({', '.join(names)})"


def requires(*roles: Role | str, interactive: bool = False) -> RoleGuard:
    """A guard for `roles` (any one of them suffices); none at all means any staff member.
    `interactive=True`: a logged-in person only, never an API token."""
    wanted = {Role(role) for role in roles}
    return RoleGuard(tuple(role for role in ROLE_ORDER if role in wanted), interactive=interactive)


def is_public(handler: BaseRouteHandler) -> bool:
    """Marked `opt={"public": True}`: needs no user, and is still served (anonymously) when
    sign-in cannot be checked (core.web.authentication)."""
    return handler.opt.get("public") is True


def role_guards(handler: BaseRouteHandler) -> list[RoleGuard]:
    """The `requires(...)` guards on a handler and every layer above it."""
    return [guard for guard in handler.resolve_guards() if isinstance(guard, RoleGuard)]
