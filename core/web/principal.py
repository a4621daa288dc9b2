"""Who is calling: the staff member behind a request, and the address they call from.

The authentication middleware (core.web.authentication) puts an `AuthenticatedUser` or None
in `request.user`; guards (core.web.guards) decide who may go on.
"""

from __future__ import annotations

import ipaddress
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
    """The caller's IP address, for the login throttle and the audit trail; else "unknown".

    Behind a proxy named in INFUSION_TRUSTED_PROXIES this is the browser's address from
    X-Forwarded-For (uvicorn, api/server.py), otherwise the peer's. Only a valid IP address
    is returned, in its normal form: whatever a proxy passed on (`<img src=x onerror=…>`)
    never reaches the audit trail or a throttle key.
    """
    host = request.client.host if request.client else ""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return "unknown"


def signed_in(request: Request[Any, Any, Any]) -> AuthenticatedUser:
    """The caller of a guarded route; 401 only if a route forgot its `requires()` guard."""
    user = request.scope.get("user")
    if not isinstance(user, AuthenticatedUser):
        raise NotAuthorizedException(NOT_SIGNED_IN)
    return user
