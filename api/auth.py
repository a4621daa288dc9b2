"""The `/api/auth` routes: sign in and out, who am I, my password, my API tokens.

Who is calling is worked out before these run, by core.web.authentication; sessions live in
core.web.sessions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.datastructures import State
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from core import db
from core.identity.services import (
    authenticate,
    issue_token,
    list_tokens,
    record_login,
    revoke_token,
    set_password,
    verify_password_change,
)
from core.identity.tables import ApiToken
from core.web.guards import requires
from core.web.inputs import PlainText, SerialId, refuse_control_characters, require_json
from core.web.principal import AuthenticatedUser, client_address, signed_in
from core.web.sessions import login_session, logout_session

# ---------------------------------------------------------------- schemas

Password = Annotated[str, msgspec.Meta(max_length=1024)]


class LoginIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    username: Annotated[str, msgspec.Meta(max_length=1024)]
    password: Password


class PasswordChangeIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    current_password: Password
    new_password: Password


class TokenIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[PlainText, msgspec.Meta(max_length=1024)]
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
        # 401 and the sign-in throttle's 429 come from the services, which the OpenAPI
        # document cannot see (core.web.openapi).
        opt={"public": True, "problems": (401, 429)},
        # JSON only: a cross-site <form enctype="text/plain"> must not log a browser in
        # (login CSRF; core.web.inputs explains).
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
        return signed_in(request)

    @post(
        "/password",
        operation_id="changeMyPassword",
        summary="Change your own password (ends your other sessions)",
        guards=[requires(interactive=True)],
        before_request=require_json,
        status_code=HTTP_204_NO_CONTENT,
        opt={"problems": (429,)},  # the same throttle as login (core.web.openapi)
    )
    async def change_password(
        self, request: Request[Any, Any, Any], state: State, data: JSONBody[PasswordChangeIn]
    ) -> None:
        me = signed_in(request)
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
        return [TokenOut.from_row(token) for token in await list_tokens(signed_in(request).id)]

    @post(
        "/tokens",
        operation_id="createToken",
        summary="Create an API token for yourself; the token is in this answer only",
        # A token cannot mint more tokens: a leaked one must not outlive its own revocation.
        guards=[requires(interactive=True)],
        before_request=require_json,
        status_code=HTTP_201_CREATED,
        opt={"secret": True},  # Cache-Control: no-store (api.middleware)
    )
    async def create_token(
        self, request: Request[Any, Any, Any], state: State, data: JSONBody[TokenIn]
    ) -> TokenCreated:
        me = signed_in(request)
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
        me = signed_in(request)
        async with db.transaction():
            await revoke_token(token_id, actor=me.actor, owner_id=me.id)
