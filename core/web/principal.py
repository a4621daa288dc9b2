"""Who is calling: the staff member behind a request, and the address they call from.

The authentication middleware (core.web.authentication) puts an `AuthenticatedUser` or None
in `request.user`; guards (core.web.guards) decide who may go on.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from litestar import Request
from litestar.exceptions import NotAuthorizedException

from core.identity.tables import User
from core.web.guards import NOT_SIGNED_IN


class AuthenticatedUser(msgspec.Struct, kw_only=True):
    """The staff member behind a request (what `request.user` holds)."""

    id: int
    username: str
    display_name: str
    roles: list[str]
    via: Literal["session", "token"]
    token_id: int | None = None

    @classmethod
    def from_user(
        cls, user: User, *, via: Literal["session", "token"], token_id: int | None = None
    ) -> AuthenticatedUser:
        return cls(
            id=user.id,
            username=user.username,
            display_name=user.display_name,
            roles=list(user.roles),
            via=via,
            token_id=token_id,
        )

    @property
    def actor(self) -> str:
        """Who the audit trail names: the person, or the integration's token."""
        return f"token:{self.token_id}" if self.via == "token" else f"user:{self.id}"


def client_address(request: Request[Any, Any, Any]) -> str:
    # uvicorn runs with proxy_headers: behind a trusted proxy this is the browser's address.
    return request.client.host if request.client else "unknown"


def signed_in(request: Request[Any, Any, Any]) -> AuthenticatedUser:
    """The caller of a guarded route; 401 only if a route forgot its `requires()` guard."""
    user = request.scope.get("user")
    if not isinstance(user, AuthenticatedUser):
        raise NotAuthorizedException(NOT_SIGNED_IN)
    return user
