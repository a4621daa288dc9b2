"""Who is calling: API tokens and server-side sessions, and the `/api/auth` routes.

Every request passes the authentication middleware, which sets `request.user` to an
`AuthenticatedUser` or to None. It never refuses a request itself: guards do that
(`api.guards.requires`), and public routes (health, the login form) need no user.

- `Authorization: Bearer inf_…` is read first. A bearer header that does not name a live
  token leaves the request anonymous; it does not fall back to a cookie.
- Otherwise the session cookie names a session kept in Redis (many API processes share it).
  The session remembers the user id and a stamp of the password it began with; a changed
  password, a deactivated account or a deleted user ends it on the next request.

The session cookie is HttpOnly, SameSite=Lax, Secure behind HTTPS, and its id is replaced at
login (session fixation). Unlike Litestar's stock server-side backend, ours never adopts a
session id the browser made up, and sends no cookie (and writes nothing to Redis) for
visitors without a session.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
import structlog
from litestar import Controller, Request, delete, get, post
from litestar.datastructures import Cookie, MutableScopeHeaders, State
from litestar.datastructures.headers import Headers
from litestar.enums import ScopeType
from litestar.exceptions import (
    NotAuthorizedException,
)
from litestar.middleware import ASGIMiddleware
from litestar.middleware.session.server_side import (
    ServerSideSessionBackend,
    ServerSideSessionConfig,
)
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT
from litestar.stores.base import Store
from litestar.stores.redis import RedisStore
from litestar.types import ASGIApp, Empty, Message, Receive, Scope, ScopeSession, Send
from litestar.utils.dataclass import extract_dataclass_items

from api.guards import NOT_SIGNED_IN, is_public, requires
from api.inputs import SerialId, refuse_control_characters, require_json
from core import db
from core.errors import OUTAGE_ERRORS, OutageError
from core.identity.model import password_stamp
from core.identity.services import (
    authenticate,
    issue_token,
    list_tokens,
    record_login,
    record_logout,
    resolve_token,
    revoke_token,
    set_password,
    user_for_session,
    verify_password_change,
)
from core.identity.tables import ApiToken, User
from core.logging import get_logger
from core.settings import Settings

log = get_logger(__name__)

SESSION_COOKIE = "infusion_session"
SESSION_STORE = "sessions"
SESSION_NAMESPACE = "infusion:session"
# Keys in scope["state"] through which login and the session backend talk.
_ROTATE_TO = "infusion.session.rotate_to"
_LOADED_ID = "infusion.session.loaded_id"
_UNAVAILABLE = "infusion.session.unavailable"


class _SessionsUnavailable(Exception):
    pass


# ---------------------------------------------------------------- who is calling


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
                if _is_passive(connection.scope):
                    # Read without renewing: a page poll is not a person's activity.
                    data = await store.get(session_id)
                else:
                    data = await self.get(session_id, store=store)
            except OUTAGE_ERRORS:
                # Redis is down: no session this time, and nothing is written back either.
                connection.scope["state"][_UNAVAILABLE] = True
                return {}
            if data is not None:
                connection.scope["state"][_LOADED_ID] = session_id
                return self.deserialize_data(data)
        return {}

    def get_session_id(self, connection: Any) -> str:
        state = connection.scope["state"]
        return state.get(_ROTATE_TO) or state.get(_LOADED_ID) or self.generate_session_id()

    async def store_in_message(
        self, scope_session: ScopeSession, message: Message, connection: Any
    ) -> None:
        scope = connection.scope
        state = scope["state"]
        if state.get(_UNAVAILABLE):
            return
        store = self.config.get_store_from_app(scope["app"])
        headers = MutableScopeHeaders.from_message(message)
        cookie_params = dict(
            extract_dataclass_items(self.config, exclude_none=True, include=Cookie.__dict__.keys())
        )
        loaded_id: str | None = state.get(_LOADED_ID)
        sent_cookie = connection.cookies.get(self.config.key)

        if scope_session is Empty or not scope_session:
            if loaded_id:
                await self.delete(loaded_id, store=store)
            if sent_cookie:
                expired = {**cookie_params, "max_age": 0, "expires": 0}
                cleared = Cookie(value="", key=self.config.key, **expired)
                headers.add("Set-Cookie", cleared.to_header(header=""))
            return

        if loaded_id and not state.get(_ROTATE_TO) and _is_passive(scope):
            # A background refresh (the home page's status poll) is not activity: leave the
            # session and its idle timeout alone, so a console left open still times out.
            return
        session_id = state.get(_ROTATE_TO) or loaded_id or self.generate_session_id()
        if loaded_id and loaded_id != session_id:
            await self.delete(loaded_id, store=store)
        await self.set(session_id, self.serialize_data(scope_session, scope), store=store)
        headers.add(
            "Set-Cookie",
            Cookie(value=session_id, key=self.config.key, **cookie_params).to_header(header=""),
        )


def _is_passive(scope: Scope) -> bool:
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
    )


def session_stores(settings: Settings) -> dict[str, Store]:
    """The Redis store sessions live in (own connection pool, closed with the app)."""
    from api.app import make_redis

    return {
        SESSION_STORE: RedisStore(
            make_redis(settings.redis_url or ""),
            namespace=SESSION_NAMESPACE,
            handle_client_shutdown=True,
        )
    }


# ---------------------------------------------------------------- the middleware


class AuthenticationMiddleware(ASGIMiddleware):
    """Sets scope["user"] (AuthenticatedUser or None); must run inside the session middleware."""

    scopes = (ScopeType.HTTP, ScopeType.WEBSOCKET)

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        try:
            # opt={"anonymous": True} (/health): never looks the caller up, so it costs no query.
            anonymous = scope["route_handler"].opt.get("anonymous") is True
            user = None if anonymous else await self._identify(scope)
        except (*OUTAGE_ERRORS, _SessionsUnavailable) as exc:
            # A server not answering rather than a bug: public routes go on without a user
            # (so /health can say what is down), guarded ones answer 503.
            log.warning("auth.unavailable", error_type=type(exc).__name__)
            if not is_public(scope["route_handler"]):
                raise OutageError(
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
        if scope["state"].get(_UNAVAILABLE):
            raise _SessionsUnavailable
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


# ---------------------------------------------------------------- helpers for page controllers


async def login_session(request: Request[Any, Any, Any], user: User) -> AuthenticatedUser:
    """Start a session for `user` (already authenticated) under a brand-new session id."""
    request.scope["state"][_ROTATE_TO] = secrets.token_hex(32)
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


# ---------------------------------------------------------------- schemas

Password = Annotated[str, msgspec.Meta(max_length=1024)]


class LoginIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    username: Annotated[str, msgspec.Meta(max_length=1024)]
    password: Password


class PasswordChangeIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    current_password: Password
    new_password: Password


class TokenIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(max_length=1024)]
    expires_at: datetime | None = None

    def __post_init__(self) -> None:
        refuse_control_characters(name=self.name)


class TokenOut(msgspec.Struct, kw_only=True):
    id: int
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def from_row(cls, token: ApiToken) -> TokenOut:
        return cls(
            id=token.id,
            name=token.name,
            prefix=token.prefix,
            created_at=token.created_at,
            expires_at=token.expires_at,
            last_used_at=token.last_used_at,
            revoked_at=token.revoked_at,
        )


class TokenCreated(msgspec.Struct, kw_only=True):
    """The new token. `token` is shown this once: only a keyed hash of it is kept."""

    id: int
    name: str
    prefix: str
    token: str
    created_at: datetime
    expires_at: datetime | None


# ---------------------------------------------------------------- routes


def _me(request: Request[Any, Any, Any]) -> AuthenticatedUser:
    user = request.scope.get("user")
    if not isinstance(user, AuthenticatedUser):  # only if a route forgot requires()
        raise NotAuthorizedException(NOT_SIGNED_IN)
    return user


class AuthController(Controller):
    path = "/api/auth"
    tags = ["auth"]

    @post(
        "/login",
        operation_id="login",
        summary="Log in with username and password; sets the session cookie",
        description="401 with the same body whether the username or the password was wrong; "
        "429 with Retry-After after too many attempts without success from one address for "
        "one username, or from one address for any usernames; 415 unless the body is sent as "
        "application/json.",
        opt={"public": True},
        # JSON only: a cross-site <form enctype="text/plain"> must not log a browser in
        # (login CSRF; api.inputs explains).
        before_request=require_json,
        status_code=HTTP_200_OK,
    )
    async def login(
        self, request: Request[Any, Any, Any], state: State, data: JSONBody[LoginIn]
    ) -> AuthenticatedUser:
        # argon2 runs before the transaction: a login holds no database connection while it
        # waits for a hash, so a burst of logins cannot starve the pool.
        verified = await authenticate(
            state.redis,
            username=data.username,
            password=data.password,
            client=client_address(request),
            settings=state.settings,
        )
        async with db.transaction():
            user = await record_login(verified)
        return await login_session(request, user)

    @post(
        "/logout",
        operation_id="logout",
        summary="End this session (deleted server-side); safe to call when logged out",
        opt={"public": True},
        status_code=HTTP_204_NO_CONTENT,
    )
    async def logout(self, request: Request[Any, Any, Any]) -> None:
        # No body, so no require_json: the session cookie is SameSite=Lax, so a post from
        # another site carries no session to end.
        await logout_session(request)

    @get("/me", operation_id="getMe", summary="Who is calling", guards=[requires()])
    async def me(self, request: Request[Any, Any, Any]) -> AuthenticatedUser:
        return _me(request)

    @post(
        "/password",
        operation_id="changeMyPassword",
        summary="Change your own password (ends your other sessions)",
        guards=[requires(interactive=True)],
        before_request=require_json,
        status_code=HTTP_204_NO_CONTENT,
    )
    async def change_password(
        self, request: Request[Any, Any, Any], state: State, data: JSONBody[PasswordChangeIn]
    ) -> None:
        me = _me(request)
        await verify_password_change(
            state.redis,
            user_id=me.id,
            current_password=data.current_password,
            new_password=data.new_password,
            client=client_address(request),
            settings=state.settings,
        )
        async with db.transaction():
            user = await set_password(me.id, password=data.new_password, actor=me.actor)
        # This session goes on under a new id and the new password stamp; the others end.
        await login_session(request, user)

    @get(
        "/tokens",
        operation_id="listMyTokens",
        summary="Your API tokens (never the tokens themselves)",
        guards=[requires()],
    )
    async def list_my_tokens(self, request: Request[Any, Any, Any]) -> list[TokenOut]:
        return [TokenOut.from_row(token) for token in await list_tokens(_me(request).id)]

    @post(
        "/tokens",
        operation_id="createToken",
        summary="Create an API token for yourself; the token is in this answer only",
        # A token cannot mint more tokens: a leaked one must not outlive its own revocation.
        guards=[requires(interactive=True)],
        before_request=require_json,
        status_code=HTTP_201_CREATED,
    )
    async def create_token(
        self, request: Request[Any, Any, Any], state: State, data: JSONBody[TokenIn]
    ) -> TokenCreated:
        me = _me(request)
        async with db.transaction():
            token, plaintext = await issue_token(
                me.id,
                name=data.name,
                actor=me.actor,
                expires_at=data.expires_at,
                settings=state.settings,
            )
        return TokenCreated(
            id=token.id,
            name=token.name,
            prefix=token.prefix,
            token=plaintext,
            created_at=token.created_at,
            expires_at=token.expires_at,
        )

    @delete(
        "/tokens/{token_id:int}",
        operation_id="revokeToken",
        summary="Revoke one of your API tokens (idempotent)",
        guards=[requires()],
        status_code=HTTP_204_NO_CONTENT,
    )
    async def revoke_my_token(self, request: Request[Any, Any, Any], token_id: SerialId) -> None:
        me = _me(request)
        async with db.transaction():
            await revoke_token(token_id, actor=me.actor, owner_id=me.id)
