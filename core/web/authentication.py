"""The authentication middleware: sets `request.user` for every request.

It never refuses a request itself: guards do that (core.web.guards), and public routes
(health, the login form) need no user.

- `Authorization: Bearer inf_…` is read first. A bearer header that does not name a live
  token leaves the request anonymous; it does not fall back to a cookie.
- Otherwise the session cookie names a session kept in Redis (core.web.sessions).
"""

from __future__ import annotations

from typing import Any

import structlog
from litestar.datastructures.headers import Headers
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from core import db
from core.errors import ServiceUnavailableError, is_outage
from core.identity.services import resolve_token, user_for_session
from core.logging import get_logger
from core.settings import Settings
from core.web.guards import is_public
from core.web.principal import AuthenticatedUser
from core.web.sessions import NO_CALLER, UNAVAILABLE, SessionsUnavailable, session_config

log = get_logger(__name__)


class AuthenticationMiddleware(ASGIMiddleware):
    """Sets scope["user"] (AuthenticatedUser or None); must run inside the session middleware."""

    scopes = (ScopeType.HTTP, ScopeType.WEBSOCKET)
    exclude_opt_key = NO_CALLER

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        try:
            user = await self._identify(scope)
        except Exception as exc:
            if not (isinstance(exc, SessionsUnavailable) or is_outage(exc)):
                raise
            # A server not answering rather than a bug: public routes go on without a user
            # (so /health can say what is down), guarded ones answer the one 503 shape.
            log.warning("auth.unavailable", error_type=type(exc).__name__)
            if not is_public(scope["route_handler"]):
                raise ServiceUnavailableError(
                    "Sign-in cannot be checked right now: the database or Redis is not answering."
                ) from None
            user = None
        scope["user"] = user
        scope["auth"] = user.via if user is not None else None
        if user is not None:
            # Log lines of this request (the access log too) name who made it; ids only.
            structlog.contextvars.bind_contextvars(actor=user.actor)
        await next_app(scope, receive, send)

    async def _identify(self, scope: Scope) -> AuthenticatedUser | None:
        authorization = Headers.from_scope(scope).get("authorization")
        if authorization:
            scheme, _, credentials = authorization.partition(" ")
            if scheme.lower() == "bearer":
                return await self._from_token(credentials.strip())
        return await self._from_session(scope)

    async def _from_token(self, plaintext: str) -> AuthenticatedUser | None:
        # The edge owns the transaction: resolving stamps the token's last_used_at.
        async with db.transaction():
            found = await resolve_token(plaintext, settings=self.settings)
        if found is None:
            return None
        token, user = found
        return AuthenticatedUser.from_user(user, via="token", token_id=token.id)

    async def _from_session(self, scope: Scope) -> AuthenticatedUser | None:
        if scope["state"].get(UNAVAILABLE):
            raise SessionsUnavailable
        session = scope.get("session")
        if not isinstance(session, dict) or "uid" not in session:
            return None
        try:
            user_id, stamp = int(session["uid"]), int(session["pwd"])
        except (KeyError, TypeError, ValueError):
            user = None
        else:
            user = await user_for_session(user_id, stamp)
        if user is None:
            # Deactivated, password changed, or never valid: forget it here and in Redis.
            scope["session"] = {}
            return None
        return AuthenticatedUser.from_user(user, via="session")


def auth_middleware(settings: Settings) -> list[Any]:
    """The app-level middleware, outermost first: sessions, then who is calling."""
    return [session_config(settings).middleware, AuthenticationMiddleware(settings)]
