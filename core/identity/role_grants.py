"""The two-person rule for privileged roles (admin, pharmacist).

One admin asks (`request_role`, or by creating an account or setting roles through the API),
another admin approves (`approve_request`) or either rejects (`reject_request`). Until then
the account does not hold the role. Without this, one admin could create an account with
admin + pharmacist, sign in as it and grant the same to themself: separation of duties
(product verified by a pharmacist who did not do the work) would rest on one person.

Who may decide: any active admin other than the requester and other than the person the role
is for, whose account is independent of the requester's (`check_independent`). The requester
may withdraw (reject) their own request. Every step is audited. The demo
seed and `infusion users create` on the server's shell grant roles at once: whoever runs
commands on the server already holds the database, and the first admin has to come from
somewhere.

Like every service: inside the caller's transaction, never commits.
"""

from __future__ import annotations

from collections.abc import Iterable

from core.audit.services import record
from core.clock import utcnow
from core.identity.errors import (
    ApproverNotIndependentError,
    GrantRequestDecidedError,
    GrantRequestNotFoundError,
    IdentityPolicyError,
    OwnAccountError,
    OwnGrantRequestError,
)
from core.identity.locks import lock_accounts, lock_user
from core.identity.model import PRIVILEGED_ROLES, ROLE_ORDER, Role, check_reason
from core.identity.tables import RoleGrantRequest, User

PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"
STATES = (PENDING, APPROVED, REJECTED)
OWN_REQUEST = "You asked for this role; another admin must approve it (two-person rule)."
OWN_GRANT = "You cannot approve a role for your own account; another admin must."
REQUEST_FOR_SELF = "You cannot ask for roles for your own account; another admin must."
APPROVER_FROM_REQUESTER = (
    "You cannot approve this: the admin who asked created your account, set its password or "
    "asked for its admin role (directly or through an account they made), so they could be "
    "acting as you; a different admin must approve."
)
REQUESTER_FROM_APPROVER = (
    "You cannot approve this: you created the requester's account, set its password or asked "
    "for its admin role (directly or through an account you made), so the request could be "
    "your own; a different admin must approve."
)


def request_snapshot(request: RoleGrantRequest) -> dict[str, object]:
    return {
        "user_id": _id(request.user),
        "role": request.role,
        "state": request.state,
        "requested_by": _id(request.requested_by),
        "decided_by": _id(request.decided_by) if request.decided_by is not None else None,
    }


def _id(value: object) -> int:
    return value if isinstance(value, int) else value.id  # type: ignore[attr-defined]


async def open_request(
    user: User, role: Role, *, requested_by: int, actor: str, reason: str = ""
) -> RoleGrantRequest:
    """Record that `requested_by` asks for `role` for `user`. The caller holds the accounts
    lock. Asking again for a role already pending returns that request (nothing new)."""
    if role not in PRIVILEGED_ROLES:
        raise IdentityPolicyError(
            f"The {role.value} role needs no approval; set it on the account directly."
        )
    if requested_by == user.id:
        raise OwnAccountError(REQUEST_FOR_SELF)
    if role.value in user.roles:
        raise IdentityPolicyError(f"{user.username} already has the {role.value} role.")
    if not user.is_active:
        raise IdentityPolicyError("An inactive account cannot be given roles.")
    pending = (
        await RoleGrantRequest.objects()
        .where(RoleGrantRequest.user == user.id)
        .where(RoleGrantRequest.role == role.value)
        .where(RoleGrantRequest.state == PENDING)
        .first()
    )
    if pending is not None:
        return pending
    request = RoleGrantRequest(
        user=user.id,
        role=role.value,
        state=PENDING,
        requested_by=requested_by,
        requested_at=utcnow(),
        reason=reason,
    )
    await request.save()
    await record(
        actor=actor,
        action="role_grant.requested",
        subject_type="role_grant_request",
        subject_id=request.id,
        after=request_snapshot(request),
        reason=reason,
    )
    return request


async def request_role(
    user_id: int, role: Role | str, *, requested_by: int, actor: str, reason: str = ""
) -> RoleGrantRequest:
    check_reason(reason)
    wanted = _role(role)
    user = await lock_user(user_id)
    return await open_request(user, wanted, requested_by=requested_by, actor=actor, reason=reason)


async def get_request(request_id: int) -> RoleGrantRequest:
    request = await RoleGrantRequest.objects().where(RoleGrantRequest.id == request_id).first()
    if request is None:
        raise GrantRequestNotFoundError(f"There is no role request with id {request_id}.")
    return request


async def list_requests(state: str | None = PENDING) -> list[RoleGrantRequest]:
    """Requests in `state` (all with None), oldest first."""
    query = RoleGrantRequest.objects().order_by(RoleGrantRequest.id)
    if state is not None:
        if state not in STATES:
            raise IdentityPolicyError(f"A role request's state is one of {', '.join(STATES)}.")
        query = query.where(RoleGrantRequest.state == state)
    return await query


async def pending_roles(user_ids: Iterable[int]) -> dict[int, list[str]]:
    """Per user, the privileged roles waiting for approval (one query for any number)."""
    ids = list(user_ids)
    if not ids:
        return {}
    rows = (
        await RoleGrantRequest.select(RoleGrantRequest.user, RoleGrantRequest.role)
        .where(RoleGrantRequest.user.is_in(ids))
        .where(RoleGrantRequest.state == PENDING)
    )
    found: dict[int, set[str]] = {}
    for row in rows:
        found.setdefault(row["user"], set()).add(row["role"])
    return {
        user_id: [role.value for role in ROLE_ORDER if role.value in roles]
        for user_id, roles in found.items()
    }


async def provenance(user_id: int) -> set[int]:
    """The accounts `user_id`'s account comes from, followed back as far as they go: who
    created it through the API (`created_by`), who last reset its password
    (`password_set_by`), who asked for its admin role (approved requests). Each of them knew
    a password to sign in as it, or put it in charge, so each may be acting through it.

    One query per generation; a cycle ends the walk. NULL (the shell, the demo seed, an
    account made before this was recorded) has no parent: the shell is the rule's exception.
    """
    found: set[int] = set()
    frontier = {user_id}
    while frontier:
        accounts = await User.select(User.created_by, User.password_set_by).where(
            User.id.is_in(list(frontier))
        )
        granters = (
            await RoleGrantRequest.select(RoleGrantRequest.requested_by)
            .where(RoleGrantRequest.user.is_in(list(frontier)))
            .where(RoleGrantRequest.role == Role.admin.value)
            .where(RoleGrantRequest.state == APPROVED)
        )
        parents = {row[key] for row in accounts for key in ("created_by", "password_set_by")}
        parents |= {row["requested_by"] for row in granters}
        frontier = {parent for parent in parents if parent is not None} - found - {user_id}
        found |= frontier
    return found


async def check_independent(*, requested_by: int, decided_by: int) -> None:
    """Refuse an approval when requester and approver may be one person: either account
    comes, directly or down a chain, from the other (`provenance`). Without this, admin A
    makes an account with admin + pharmacist, a second admin approves the admin grant, A
    signs in with the password A set, and that account approves everything A asks for."""
    if requested_by in await provenance(decided_by):
        raise ApproverNotIndependentError(APPROVER_FROM_REQUESTER)
    if decided_by in await provenance(requested_by):
        raise ApproverNotIndependentError(REQUESTER_FROM_APPROVER)


async def _lock_pending(request_id: int) -> RoleGrantRequest:
    await lock_accounts()
    request = (
        await RoleGrantRequest.objects()
        .where(RoleGrantRequest.id == request_id)
        .lock_rows("UPDATE")
        .first()
    )
    if request is None:
        raise GrantRequestNotFoundError(f"There is no role request with id {request_id}.")
    if request.state != PENDING:
        raise GrantRequestDecidedError(f"This role request was {request.state} already.")
    return request


async def _decide(
    request: RoleGrantRequest, state: str, *, decided_by: int, actor: str, reason: str
) -> None:
    before = request_snapshot(request)
    request.state = state
    request.decided_by = decided_by
    request.decided_at = utcnow()
    request.decision_reason = reason
    await RoleGrantRequest.update(
        {
            RoleGrantRequest.state: state,
            RoleGrantRequest.decided_by: decided_by,
            RoleGrantRequest.decided_at: request.decided_at,
            RoleGrantRequest.decision_reason: reason,
        }
    ).where(RoleGrantRequest.id == request.id)
    await record(
        actor=actor,
        action=f"role_grant.{state}",
        subject_type="role_grant_request",
        subject_id=request.id,
        before={"state": before["state"]},
        after={"state": state, "decided_by": decided_by},
        reason=reason,
    )


async def approve_request(
    request_id: int, *, decided_by: int, actor: str, reason: str = ""
) -> RoleGrantRequest:
    """A second admin approves: the account gets the role, and both steps are audited."""
    check_reason(reason)
    request = await _lock_pending(request_id)
    if _id(request.requested_by) == decided_by:
        raise OwnGrantRequestError(OWN_REQUEST)
    if _id(request.user) == decided_by:
        raise OwnAccountError(OWN_GRANT)
    await check_independent(requested_by=_id(request.requested_by), decided_by=decided_by)
    user = await User.objects().where(User.id == _id(request.user)).lock_rows("UPDATE").first()
    if user is None or not user.is_active:
        raise IdentityPolicyError(
            "The account is inactive: reject this request, or reactivate the account first."
        )
    await _decide(request, APPROVED, decided_by=decided_by, actor=actor, reason=reason)
    before = list(user.roles)
    wanted = {*user.roles, request.role}
    user.roles = [role.value for role in ROLE_ORDER if role.value in wanted]
    await User.update({User.roles: user.roles}).where(User.id == user.id)
    await record(
        actor=actor,
        action="user.role_granted",
        subject_type="user",
        subject_id=user.id,
        before={"roles": before},
        after={"roles": list(user.roles), "role_request": request.id},
        reason=reason,
    )
    return request


async def reject_request(
    request_id: int, *, decided_by: int, actor: str, reason: str = ""
) -> RoleGrantRequest:
    """Another admin refuses the request, or its requester withdraws it."""
    check_reason(reason)
    request = await _lock_pending(request_id)
    await _decide(request, REJECTED, decided_by=decided_by, actor=actor, reason=reason)
    return request


def _role(role: Role | str) -> Role:
    try:
        return Role(str(role).strip().lower())
    except ValueError:
        raise IdentityPolicyError(
            f"Unknown role {str(role)!r}; the roles are {', '.join(ROLE_ORDER)}."
        ) from None
