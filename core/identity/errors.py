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


class PasswordChangeRequiredError(PermissionDeniedError):
    """An admin set this account's password: until its owner chooses a new one, the session
    may change the password and nothing else (403)."""

    code = "password_change_required"


class GrantRequestNotFoundError(NotFoundError):
    code = "role_request_not_found"


class OwnGrantRequestError(PermissionDeniedError):
    """Two-person rule: whoever asked for a privileged role cannot also approve it (403)."""

    code = "own_role_request"


class ApproverNotIndependentError(PermissionDeniedError):
    """Two-person rule: the approver's account comes from the requester, or the requester's
    from the approver (created, password set, admin role asked for), so the two may be one
    person (403)."""

    code = "approver_not_independent"


class GrantRequestDecidedError(ConflictError):
    """The request was approved or rejected already (409)."""

    code = "role_request_decided"


class SignatureNeedsPersonError(PermissionDeniedError):
    """An e-signature is a person's act: an API token can never sign (403)."""

    code = "signature_needs_person"
