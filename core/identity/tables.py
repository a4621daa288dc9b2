"""Staff accounts and integration tokens. Sessions live in Redis, not here."""

from __future__ import annotations

from piccolo.columns import Array, Boolean, ForeignKey, Text, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.table import Table


class User(Table, tablename="app_user"):
    username = Varchar(length=150, unique=True, help_text="Lower case; the login name")
    display_name = Varchar(length=200)
    password_hash = Varchar(length=255, help_text="argon2id")
    roles = Array(Varchar(length=20), help_text="technician, packer, pharmacist, admin")
    is_active = Boolean(default=True)
    created_at = Timestamptz(default=None)  # set by the service from core.clock, never the DB clock
    password_changed_at = Timestamptz(default=None)
    last_login_at = Timestamptz(null=True, default=None)
    must_change_password = Boolean(
        default=False, help_text="Set by an admin's reset: sign-in allows a password change only"
    )
    credentials_changed_at = Timestamptz(
        default=None,
        help_text="Password change, reset or deactivation: sessions and tokens from before it "
        "are void",
    )
    # Provenance for the two-person rule (core.identity.role_grants): whoever made the
    # account, or set its password, knew a password that let them sign in as it.
    created_by = ForeignKey(
        "self",
        on_delete=OnDelete.restrict,
        null=True,
        default=None,
        help_text="The admin who created the account through the API; NULL: the server's "
        "shell, the demo seed, or unknown (made before this was recorded)",
    )
    password_set_by = ForeignKey(
        "self",
        on_delete=OnDelete.restrict,
        null=True,
        default=None,
        help_text="The admin whose reset last set the password; an owner's own change after "
        "it does not clear it (whoever set it could have made that change)",
    )


class ApiToken(Table, tablename="api_token"):
    """A bearer token for an integration; only a keyed hash of it is stored."""

    user = ForeignKey(User, on_delete=OnDelete.restrict, null=False)
    name = Varchar(length=100)
    prefix = Varchar(length=16, help_text="First characters, to recognise a token in lists")
    token_hash = Varchar(length=64, unique=True, help_text="HMAC-SHA256 with SECRET_KEY")
    created_at = Timestamptz(default=None)  # set by the service from core.clock, never the DB clock
    expires_at = Timestamptz(null=True, default=None)
    last_used_at = Timestamptz(null=True, default=None)
    revoked_at = Timestamptz(null=True, default=None)


class RoleGrantRequest(Table, tablename="role_grant_request"):
    """A privileged role (admin, pharmacist) asked for by one admin, waiting for another's
    approval (two-person rule; core.identity.grants)."""

    user = ForeignKey(User, on_delete=OnDelete.restrict, null=False)
    role = Varchar(length=20)
    state = Varchar(length=10, default="pending", help_text="pending, approved or rejected")
    requested_by = ForeignKey(User, on_delete=OnDelete.restrict, null=False)
    requested_at = Timestamptz(default=None)
    reason = Text(default="")
    decided_by = ForeignKey(User, on_delete=OnDelete.restrict, null=True, default=None)
    decided_at = Timestamptz(null=True, default=None)
    decision_reason = Text(default="")
