"""`/api/users`: staff accounts, for signed-in admins only. Never returns password hashes.

API tokens are refused here (`interactive=True`): a token leaked from an integration must not
be able to mint accounts (an admin + pharmacist account would defeat separation of duties),
and such an account could then sign in and mint fresh tokens that outlive the leaked one.
An admin cannot change their own roles or active flag, nor reset their own password here
(core.identity.services): those need a second admin, or the current password.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, patch, post, put
from litestar.params import JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from core import db
from core.identity.model import Role
from core.identity.services import create_user, get_user, list_users, set_password, update_user
from core.identity.tables import User
from core.web.guards import requires
from core.web.inputs import PlainText, SerialId, refuse_control_characters, require_json
from core.web.principal import AuthenticatedUser

Text = Annotated[str, msgspec.Meta(max_length=1024)]
# Refused with control characters (`refuse_control_characters`); PlainText documents it.
Label = Annotated[PlainText, msgspec.Meta(max_length=1024)]
Reason = Annotated[PlainText, msgspec.Meta(max_length=1000)]


class UserOut(msgspec.Struct, kw_only=True):
    id: int
    username: str
    display_name: str
    roles: list[Role]
    is_active: bool
    created_at: datetime
    password_changed_at: datetime
    last_login_at: datetime | None

    @classmethod
    def from_row(cls, user: User) -> UserOut:
        return cls(
            id=user.id,
            username=user.username,
            display_name=user.display_name,
            roles=[Role(role) for role in user.roles],
            is_active=user.is_active,
            created_at=user.created_at,
            password_changed_at=user.password_changed_at,
            last_login_at=user.last_login_at,
        )


class UserCreateIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    username: Text
    display_name: Label
    password: Text
    roles: list[Role]

    def __post_init__(self) -> None:
        refuse_control_characters(display_name=self.display_name)


class UserPatchIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Only the fields present change."""

    display_name: Label | msgspec.UnsetType = msgspec.UNSET
    roles: list[Role] | msgspec.UnsetType = msgspec.UNSET
    is_active: bool | msgspec.UnsetType = msgspec.UNSET
    reason: Reason = ""

    def __post_init__(self) -> None:
        refuse_control_characters(display_name=self.display_name, reason=self.reason)


class PasswordSetIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    password: Text
    reason: Reason = ""

    def __post_init__(self) -> None:
        refuse_control_characters(reason=self.reason)


def _me(request: Request[Any, Any, Any]) -> AuthenticatedUser:
    return request.scope["user"]


def _given(value: Any) -> Any:
    return None if value is msgspec.UNSET else value


class UsersController(Controller):
    path = "/api/users"
    tags = ["users"]
    # Account management only; an admin is not thereby a pharmacist (core.web.guards). In person
    # only, never with an API token (see the module docstring).
    guards = [requires(Role.admin, interactive=True)]

    @get(operation_id="listUsers", summary="Every staff account, by username")
    async def list_all(self) -> list[UserOut]:
        return [UserOut.from_row(user) for user in await list_users()]

    @post(
        operation_id="createUser",
        summary="Create a staff account",
        description="409 when the username is taken; 422 naming the rule a username, "
        "password (12+ characters, not the username) or role list breaks.",
        status_code=HTTP_201_CREATED,
        # The session cookie authorises this: JSON only, so no form on another site can post
        # it (core.web.inputs).
        before_request=require_json,
    )
    async def create(
        self, request: Request[Any, Any, Any], data: JSONBody[UserCreateIn]
    ) -> UserOut:
        async with db.transaction():
            user = await create_user(
                username=data.username,
                display_name=data.display_name,
                password=data.password,
                roles=data.roles,
                actor=_me(request).actor,
            )
        return UserOut.from_row(user)

    @get("/{user_id:int}", operation_id="getUser", summary="One staff account")
    async def show(self, user_id: SerialId) -> UserOut:
        return UserOut.from_row(await get_user(user_id))

    @patch(
        "/{user_id:int}",
        operation_id="updateUser",
        summary="Change a staff account's display name, roles or active flag",
        description="422 when the change would leave no active admin; 403 when an admin "
        "changes their own roles or active flag (another admin must).",
    )
    async def update(
        self, request: Request[Any, Any, Any], user_id: SerialId, data: JSONBody[UserPatchIn]
    ) -> UserOut:
        me = _me(request)
        async with db.transaction():
            user = await update_user(
                user_id,
                actor=me.actor,
                display_name=_given(data.display_name),
                roles=_given(data.roles),
                is_active=_given(data.is_active),
                reason=data.reason,
                acting_user_id=me.id,
            )
        return UserOut.from_row(user)

    @put(
        "/{user_id:int}/password",
        operation_id="setUserPassword",
        summary="Set a staff member's password (ends their sessions)",
        description="403 for your own account: change it with POST /api/auth/password, "
        "which asks for the current one.",
        status_code=HTTP_204_NO_CONTENT,
    )
    async def reset_password(
        self, request: Request[Any, Any, Any], user_id: SerialId, data: JSONBody[PasswordSetIn]
    ) -> None:
        me = _me(request)
        async with db.transaction():
            await set_password(
                user_id,
                password=data.password,
                actor=me.actor,
                reason=data.reason,
                acting_user_id=me.id,
            )
