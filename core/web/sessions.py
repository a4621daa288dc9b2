"""Staff sessions in Redis: a hardened server-side session backend, and sign-in/out helpers.

The session cookie is HttpOnly, SameSite=Lax, Secure behind HTTPS, and its id is replaced at
login (session fixation). Unlike Litestar's stock server-side backend, ours never adopts a
session id the browser made up, and sends no cookie (and writes nothing to Redis) for
visitors without a session. The session remembers the user id and a stamp of the password it
began with; a changed password, a deactivated account or a deleted user ends it on the next
request (core.web.authentication).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.datastructures import Cookie, MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.middleware.session.server_side import (
    ServerSideSessionBackend,
    ServerSideSessionConfig,
)
from litestar.stores.base import Store
from litestar.stores.redis import RedisStore
from litestar.types import Empty, Message, Scope, ScopeSession
from litestar.utils.dataclass import extract_dataclass_items

from core import db
from core.errors import OUTAGE_ERRORS
from core.identity.model import password_stamp
from core.identity.services import record_logout
from core.identity.tables import User
from core.redis import make_redis
from core.settings import Settings
from core.web.principal import AuthenticatedUser

SESSION_COOKIE = "infusion_session"
SESSION_STORE = "sessions"
SESSION_NAMESPACE = "infusion:session"
# Keys in scope["state"] through which login and the session backend talk.
ROTATE_TO = "infusion.session.rotate_to"
LOADED_ID = "infusion.session.loaded_id"
UNAVAILABLE = "infusion.session.unavailable"
# A route handler's opt key: the route never looks at its caller (/health), so neither the
# session middleware nor the authentication middleware runs for it, and there is no user.
NO_CALLER = "no_caller"


class SessionsUnavailable(Exception):
    pass


# ---------------------------------------------------------------- sessions in Redis


class StaffSessionBackend(ServerSideSessionBackend):
    """Litestar's server-side sessions, hardened:

    - the id is only ever one we generated and found in the store, or a fresh one; a cookie
      naming an unknown id is cleared, never adopted (session fixation);
    - `login_session` asks for a new id: the old session is deleted, the data moves;
    - an empty session is not stored and sets no cookie, so anonymous traffic (health checks,
      API tokens) leaves nothing in Redis.
    """

    async def load_from_connection(self, connection: Any) -> dict[str, Any]:
        session_id = connection.cookies.get(self.config.key)
        if session_id and session_id != "null":
            store = self.config.get_store_from_app(connection.scope["app"])
            try:
                if is_passive(connection.scope):
                    # Read without renewing: a page poll is not a person's activity.
                    data = await store.get(session_id)
                else:
                    data = await self.get(session_id, store=store)
            except OUTAGE_ERRORS:
                # Redis is down: no session this time, and nothing is written back either.
                connection.scope["state"][UNAVAILABLE] = True
                return {}
            if data is not None:
                connection.scope["state"][LOADED_ID] = session_id
                return self.deserialize_data(data)
        return {}

    def get_session_id(self, connection: Any) -> str:
        state = connection.scope["state"]
        return state.get(ROTATE_TO) or state.get(LOADED_ID) or self.generate_session_id()

    async def store_in_message(
        self, scope_session: ScopeSession, message: Message, connection: Any
    ) -> None:
        scope = connection.scope
        state = scope["state"]
        if state.get(UNAVAILABLE):
            return
        store = self.config.get_store_from_app(scope["app"])
        headers = MutableScopeHeaders.from_message(message)
        cookie_params = dict(
            extract_dataclass_items(self.config, exclude_none=True, include=Cookie.__dict__.keys())
        )
        loaded_id: str | None = state.get(LOADED_ID)
        sent_cookie = connection.cookies.get(self.config.key)

        if scope_session is Empty or not scope_session:
            if loaded_id:
                await self.delete(loaded_id, store=store)
            if sent_cookie:
                expired = {**cookie_params, "max_age": 0, "expires": 0}
                cleared = Cookie(value="", key=self.config.key, **expired)
                headers.add("Set-Cookie", cleared.to_header(header=""))
            return

        if loaded_id and not state.get(ROTATE_TO) and is_passive(scope):
            # A background refresh (the home page's status poll) is not activity: leave the
            # session and its idle timeout alone, so a console left open still times out.
            return
        session_id = state.get(ROTATE_TO) or loaded_id or self.generate_session_id()
        if loaded_id and loaded_id != session_id:
            await self.delete(loaded_id, store=store)
        await self.set(session_id, self.serialize_data(scope_session, scope), store=store)
        headers.add(
            "Set-Cookie",
            Cookie(value=session_id, key=self.config.key, **cookie_params).to_header(header=""),
        )


def is_passive(scope: Scope) -> bool:
    """Routes with `opt={"passive": True}` are polled by pages, not asked for by a person."""
    handler = scope.get("route_handler")
    return handler is not None and handler.opt.get("passive") is True


@dataclass
class StaffSessionConfig(ServerSideSessionConfig):
    _backend_class = StaffSessionBackend  # type: ignore[assignment]


def session_config(settings: Settings) -> StaffSessionConfig:
    return StaffSessionConfig(
        key=SESSION_COOKIE,
        store=SESSION_STORE,
        # Idle timeout: every answer to a signed-in request writes the session again.
        max_age=settings.session_hours * 3600,
        renew_on_access=True,
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
        path="/",
        scopes={ScopeType.HTTP, ScopeType.WEBSOCKET},
        exclude_opt_key=NO_CALLER,
    )


def session_stores(settings: Settings) -> dict[str, Store]:
    """The Redis store sessions live in (own connection pool, closed with the app)."""
    return {
        SESSION_STORE: RedisStore(
            make_redis(settings.redis_url or ""),
            namespace=SESSION_NAMESPACE,
            handle_client_shutdown=True,
        )
    }


# ---------------------------------------------------------------- helpers for page controllers


async def login_session(request: Request[Any, Any, Any], user: User) -> AuthenticatedUser:
    """Start a session for `user` (already authenticated) under a brand-new session id."""
    request.scope["state"][ROTATE_TO] = secrets.token_hex(32)
    request.set_session(
        {"uid": user.id, "pwd": password_stamp(user.password_changed_at)},
    )
    signed_in = AuthenticatedUser.from_user(user, via="session")
    request.scope["user"] = signed_in
    return signed_in


async def logout_session(request: Request[Any, Any, Any]) -> None:
    """End this browser's session: deleted from Redis, cookie cleared. Safe when signed out."""
    user = request.scope.get("user")
    if isinstance(user, AuthenticatedUser) and user.via == "session":
        async with db.transaction():
            await record_logout(user.id)
    request.clear_session()
    request.scope["user"] = None
