"""`/api/users`: staff accounts, for signed-in admins only. Never returns password hashes.

API tokens are refused here (`interactive=True`): a token leaked from an integration must not
be able to mint accounts (an admin + pharmacist account would defeat separation of duties),
and such an account could then sign in and mint fresh tokens that outlive the leaked one.
An admin cannot change their own roles or active flag, nor reset their own password here
(core.identity.services): those need a second admin, or the current password.

Two-person rule (core.identity.role_grants): creating an account or setting roles with admin
or pharmacist opens a request per privileged role; the account holds that role only once
another admin, independent of the requester (core.identity.role_grants.check_independent),
approves it under `/api/users/role-requests`. A password set here (a new
account's, or a reset) must be changed by its owner at the next sign-in.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, delete, get, patch, post, put
from litestar.datastructures import State
from litestar.params import JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from api.auth import TokenOut
from core import db
from core.identity import role_grants
from core.identity.model import Role
from core.identity.services import (
    create_user,
    get_user,
    list_tokens,
    list_users,
    revoke_token,
    set_password,
    update_user,
)
from core.identity.tables import RoleGrantRequest, User
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
    # Privileged roles asked for and waiting for a second admin's approval (not held yet).
    pending_roles: list[Role]
    is_active: bool
    must_change_password: bool
    created_at: datetime
    password_changed_at: datetime
    last_login_at: datetime | None

    @classmethod
    def from_row(cls, user: User, pending: list[str] | None = None) -> UserOut:
        return cls(
            id=user.id,
            username=user.username,
            display_name=user.display_name,
            roles=[Role(role) for role in user.roles],
            pending_roles=[Role(role) for role in pending or []],
            is_active=user.is_active,
            must_change_password=user.must_change_password,
            created_at=user.created_at,
            password_changed_at=user.password_changed_at,
            last_login_at=user.last_login_at,
        )


async def _user_out(user: User) -> UserOut:
    pending = await role_grants.pending_roles([user.id])
    return UserOut.from_row(user, pending.get(user.id))


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


class RoleRequestIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    role: Literal["admin", "pharmacist"]  # the roles that need a second admin
    reason: Reason = ""

    def __post_init__(self) -> None:
        refuse_control_characters(reason=self.reason)


class DecisionIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    reason: Reason = ""

    def __post_init__(self) -> None:
        refuse_control_characters(reason=self.reason)


class RoleRequestOut(msgspec.Struct, kw_only=True):
    id: int
    user_id: int
    role: Role
    state: Literal["pending", "approved", "rejected"]
    requested_by: int
    requested_at: datetime
    reason: str
    decided_by: int | None
    decided_at: datetime | None
    decision_reason: str

    @classmethod
    def from_row(cls, row: RoleGrantRequest) -> RoleRequestOut:
        snapshot = role_grants.request_snapshot(row)
        return cls(
            id=row.id,
            user_id=snapshot["user_id"],  # type: ignore[arg-type]
            role=Role(row.role),
            state=row.state,  # type: ignore[arg-type]
            requested_by=snapshot["requested_by"],  # type: ignore[arg-type]
            requested_at=row.requested_at,
            reason=row.reason,
            decided_by=snapshot["decided_by"],  # type: ignore[arg-type]
            decided_at=row.decided_at,
            decision_reason=row.decision_reason,
        )


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
        users = await list_users()
        pending = await role_grants.pending_roles(user.id for user in users)
        return [UserOut.from_row(user, pending.get(user.id)) for user in users]

    @post(
        operation_id="createUser",
        summary="Create a staff account",
        description="409 when the username is taken; 422 naming the rule a username, "
        "password (12+ characters, no control characters, not common or breached, not the "
        "username) or role list breaks. admin and pharmacist are not granted here: each "
        "becomes a pending role request another admin must approve (pending_roles). The "
        "owner must change the password at the first sign-in.",
        status_code=HTTP_201_CREATED,
        # The session cookie authorises this: JSON only, so no form on another site can post
        # it (core.web.inputs).
        before_request=require_json,
    )
    async def create(
        self, request: Request[Any, Any, Any], state: State, data: JSONBody[UserCreateIn]
    ) -> UserOut:
        me = _me(request)
        async with db.transaction():
            user = await create_user(
                username=data.username,
                display_name=data.display_name,
                password=data.password,
                roles=data.roles,
                actor=me.actor,
                requested_by=me.id,
                must_change_password=True,
                settings=state.settings,
            )
            return await _user_out(user)

    @get(
        "/role-requests",
        operation_id="listRoleRequests",
        summary="Requests for privileged roles (two-person rule); pending ones by default",
    )
    async def list_role_requests(
        self,
        # `state` is the name Litestar reserves for the app state; the query is still ?state=
        wanted: Annotated[
            Literal["pending", "approved", "rejected", "all"], QueryParameter(name="state")
        ] = "pending",
    ) -> list[RoleRequestOut]:
        rows = await role_grants.list_requests(None if wanted == "all" else wanted)
        return [RoleRequestOut.from_row(row) for row in rows]

    @post(
        "/role-requests/{request_id:int}/approve",
        operation_id="approveRoleRequest",
        summary="Approve another admin's request: the account gets the role",
        description="403 own_role_request for the admin who asked, own_account for the "
        "person the role is for, and approver_not_independent when the approver's account "
        "comes from the requester's or the other way round (created it, reset its password "
        "or asked for its admin role); 409 when already decided; 422 when the account is "
        "inactive.",
        before_request=require_json,
        status_code=HTTP_200_OK,
    )
    async def approve_role_request(
        self, request: Request[Any, Any, Any], request_id: SerialId, data: JSONBody[DecisionIn]
    ) -> RoleRequestOut:
        me = _me(request)
        async with db.transaction():
            row = await role_grants.approve_request(
                request_id, decided_by=me.id, actor=me.actor, reason=data.reason
            )
        return RoleRequestOut.from_row(row)

    @post(
        "/role-requests/{request_id:int}/reject",
        operation_id="rejectRoleRequest",
        summary="Reject a role request (or withdraw your own)",
        description="409 when already decided.",
        before_request=require_json,
        status_code=HTTP_200_OK,
    )
    async def reject_role_request(
        self, request: Request[Any, Any, Any], request_id: SerialId, data: JSONBody[DecisionIn]
    ) -> RoleRequestOut:
        me = _me(request)
        async with db.transaction():
            row = await role_grants.reject_request(
                request_id, decided_by=me.id, actor=me.actor, reason=data.reason
            )
        return RoleRequestOut.from_row(row)

    @get("/{user_id:int}", operation_id="getUser", summary="One staff account")
    async def show(self, user_id: SerialId) -> UserOut:
        return await _user_out(await get_user(user_id))

    @patch(
        "/{user_id:int}",
        operation_id="updateUser",
        summary="Change a staff account's display name, roles or active flag",
        description="422 when the change would leave no active admin; 403 when an admin "
        "changes their own roles or active flag (another admin must). Adding admin or "
        "pharmacist opens a role request instead (pending_roles); removing a role is at "
        "once. Deactivating ends the account's sessions and revokes its API tokens for good.",
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
            return await _user_out(user)

    @post(
        "/{user_id:int}/role-requests",
        operation_id="requestRole",
        summary="Ask for admin or pharmacist for an account; another admin must approve",
        description="403 for your own account; 422 when the account already has the role or "
        "is inactive. Asking again for a role already pending returns that request.",
        before_request=require_json,
        status_code=HTTP_201_CREATED,
    )
    async def request_role(
        self, request: Request[Any, Any, Any], user_id: SerialId, data: JSONBody[RoleRequestIn]
    ) -> RoleRequestOut:
        me = _me(request)
        async with db.transaction():
            row = await role_grants.request_role(
                user_id, data.role, requested_by=me.id, actor=me.actor, reason=data.reason
            )
        return RoleRequestOut.from_row(row)

    @put(
        "/{user_id:int}/password",
        operation_id="setUserPassword",
        summary="Set a staff member's password (ends their sessions, revokes their tokens)",
        description="403 for your own account: change it with POST /api/auth/password, "
        "which asks for the current one. The owner must change it at the next sign-in.",
        status_code=HTTP_204_NO_CONTENT,
    )
    async def reset_password(
        self,
        request: Request[Any, Any, Any],
        state: State,
        user_id: SerialId,
        data: JSONBody[PasswordSetIn],
    ) -> None:
        me = _me(request)
        async with db.transaction():
            await set_password(
                user_id,
                password=data.password,
                actor=me.actor,
                reason=data.reason,
                acting_user_id=me.id,
                must_change_password=True,
                settings=state.settings,
            )

    @get(
        "/{user_id:int}/tokens",
        operation_id="listUserTokens",
        summary="A staff member's API tokens (never the tokens themselves)",
    )
    async def list_user_tokens(self, user_id: SerialId) -> list[TokenOut]:
        await get_user(user_id)  # 404 for an unknown user, not an empty list
        return [TokenOut.from_row(token) for token in await list_tokens(user_id)]

    @delete(
        "/{user_id:int}/tokens/{token_id:int}",
        operation_id="revokeUserToken",
        summary="Revoke a staff member's API token (idempotent)",
        description="404 when the token is not that user's.",
        status_code=HTTP_204_NO_CONTENT,
    )
    async def revoke_user_token(
        self,
        request: Request[Any, Any, Any],
        user_id: SerialId,
        token_id: SerialId,
        reason: Annotated[str, QueryParameter(name="reason", max_length=1000)] = "",
    ) -> None:
        me = _me(request)
        async with db.transaction():
            await revoke_token(token_id, actor=me.actor, owner_id=user_id, reason=reason)
