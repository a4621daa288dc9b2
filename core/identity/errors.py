"""Refusals of the identity rules, each with a stable code and an HTTP status."""

from __future__ import annotations

from core.errors import ConflictError, DomainError, NotFoundError, PermissionDeniedError


class IdentityPolicyError(DomainError):
    """A username, password, display name or role list breaks the rules (422)."""

    code = "identity_policy"


class UsernameTakenError(ConflictError):
    code = "username_taken"


class LastAdminError(DomainError):
    """The change would leave nobody able to manage staff accounts."""

    code = "last_admin"


class OwnAccountError(PermissionDeniedError):
    """An admin tried to change their own roles, active flag or password through the admin
    routes: separation of duties needs a second admin for those (403)."""

    code = "own_account"


class UserNotFoundError(NotFoundError):
    code = "user_not_found"


class TokenNotFoundError(NotFoundError):
    code = "token_not_found"
