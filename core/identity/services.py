"""Staff identity use cases: accounts, logins, API tokens.

Credentials lifecycle: a password change, an admin's reset and a deactivation each move the
account's `credentials_changed_at` and revoke its API tokens (revoked_at set, for good).
Sessions remember the stamp they began with (core.identity.model.password_stamp), so none
started before survives, and reactivating the account brings back neither. A password set by
someone else (an admin's reset, an account made through the API, the shell by default)
carries `must_change_password`: the owner signs in, and may then only choose a new one.

Rule 1: these run inside the caller's `core.db.transaction()` and never commit. Every state
change writes an audit event; password hashes and token secrets never go into one.

Password checks are the exception: `authenticate` and `verify_password_change` run argon2
(about 0.15 s, queued behind other logins) and must be called with *no* transaction open, so
no pooled database connection waits on a hash; a burst of logins would otherwise starve the
pool and take every other request (and /health) down with it. They read what they need in
one short query and return; the edge then opens its transaction for `record_login` or
`set_password`.

Functions that need settings (the token key, login limits) take `settings=`; the edges pass
theirs, and without it the process settings are read from the environment once.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from redis.asyncio import Redis

from core import db
from core.audit.services import record
from core.clock import utcnow
from core.errors import AuthenticationError, RateLimitedError
from core.identity import role_grants
from core.identity.errors import (
    IdentityPolicyError,
    LastAdminError,
    OwnAccountError,
    TokenNotFoundError,
    UsernameTakenError,
    UserNotFoundError,
)
from core.identity.locks import lock_user
from core.identity.model import (
    Role,
    check_reason,
    normalise_display_name,
    normalise_roles,
    normalise_token_name,
    normalise_username,
    password_stamp,
    split_privileged,
    username_or_none,
)
from core.identity.password_policy import check_new_password
from core.identity.passwords import hash_password_async, needs_rehash, verify_password_async
from core.identity.sign_in_events import record_lockout, record_sign_in_failure
from core.identity.tables import ApiToken, User
from core.identity.throttle import Refusal, Throttle
from core.identity.tokens import new_token, parse_token, token_hash
from core.logging import get_logger
from core.settings import Settings, load_settings

log = get_logger(__name__)

WRONG_CREDENTIALS = "Wrong username or password."
OWN_ROLES = "You cannot change your own roles; another admin must do it."
OWN_ACTIVE_FLAG = "You cannot deactivate your own account; another admin must do it."
RESET_OF_OWN_ACCOUNT = (
    "You cannot reset your own password as an admin; change it with your current password "
    "(POST /api/auth/password)."
)
# last_used_at is bookkeeping, not evidence: write it at most once a minute per token.
TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)


@functools.cache
def _process_settings() -> Settings:
    return load_settings()


def _settings(settings: Settings | None) -> Settings:
    return settings if settings is not None else _process_settings()


def _check_password(
    password: str, *, username: str, settings: Settings | None, allow_demo_password: bool = False
) -> None:
    check_new_password(
        password,
        username=username,
        environment=_settings(settings).environment,
        allow_demo_password=allow_demo_password,
    )


def user_snapshot(user: User) -> dict[str, Any]:
    """What the audit trail records about an account (never the password hash)."""
    return {
        "username": user.username,
        "display_name": user.display_name,
        "roles": list(user.roles),
        "is_active": user.is_active,
    }


def token_snapshot(token: ApiToken) -> dict[str, Any]:
    """What the audit trail records about a token (never the token or its hash)."""
    user = token.user
    return {
        "user_id": user if isinstance(user, int) else user.id,
        "name": token.name,
        "prefix": token.prefix,
        "expires_at": token.expires_at,
    }


# ---------------------------------------------------------------- accounts


async def create_user(
    *,
    username: str,
    display_name: str,
    password: str,
    roles: Iterable[str],
    actor: str,
    requested_by: int | None = None,
    must_change_password: bool = False,
    allow_demo_password: bool = False,
    settings: Settings | None = None,
) -> User:
    """A new account. `requested_by` is the admin creating it through the API: privileged
    roles (admin, pharmacist) then become requests another admin must approve
    (core.identity.role_grants), and the account starts with the other roles only (perhaps
    none). None is the server's shell or the demo seed, which grant every role at once.

    `allow_demo_password` is for the demo seed only (the published password is otherwise
    refused outside development)."""
    name = normalise_username(username)
    display = normalise_display_name(display_name)
    role_list = normalise_roles(roles)
    _check_password(
        password, username=name, settings=settings, allow_demo_password=allow_demo_password
    )
    granted, to_request = (role_list, []) if requested_by is None else split_privileged(role_list)
    if await User.exists().where(User.username == name):
        raise UsernameTakenError(f"The username {name!r} is already taken.")
    password_hash = await hash_password_async(password)
    now = utcnow()
    user = User(
        username=name,
        display_name=display,
        password_hash=password_hash,
        roles=[role.value for role in granted],
        is_active=True,
        created_at=now,
        password_changed_at=now,
        credentials_changed_at=now,
        must_change_password=must_change_password,
        created_by=requested_by,
    )
    # Two creates of one name can both pass the check above; the unique index decides, and
    # ON CONFLICT turns the loser into a 409 instead of an aborted transaction and a 500.
    rows = await (
        User.insert(user).on_conflict(target=User.username, action="DO NOTHING").returning(User.id)
    )
    if not rows:
        raise UsernameTakenError(f"The username {name!r} is already taken.")
    await record(
        actor=actor,
        action="user.created",
        subject_type="user",
        subject_id=user.id,
        after={**user_snapshot(user), "must_change_password": must_change_password},
    )
    if to_request and requested_by is not None:
        await lock_user(user.id)
        for role in to_request:
            await role_grants.open_request(user, role, requested_by=requested_by, actor=actor)
    return user


async def get_user(user_id: int) -> User:
    user = await User.objects().where(User.id == user_id).first()
    if user is None:
        raise UserNotFoundError(f"There is no user with id {user_id}.")
    return user


async def get_user_by_username(username: str) -> User:
    name = username_or_none(username)
    user = await User.objects().where(User.username == name).first() if name else None
    if user is None:
        raise UserNotFoundError(f"There is no user {username.strip().lower()!r}.")
    return user


async def list_users() -> list[User]:
    return await User.objects().order_by(User.username)


async def _check_admins_remain(user: User) -> None:
    """Refuse a change that leaves no active admin: nobody could manage accounts any more
    (the CLI could still create one, but a pharmacy should not find out at 2 a.m.)."""
    if user.is_active and Role.admin.value in user.roles:
        return
    others = (
        await User.count()
        .where(User.id != user.id)
        .where(User.is_active.eq(True))
        .where(User.roles.any(Role.admin.value))
    )
    if others == 0:
        raise LastAdminError("This would leave no active admin; make another user an admin first.")


async def update_user(
    user_id: int,
    *,
    actor: str,
    display_name: str | None = None,
    roles: Iterable[str] | None = None,
    is_active: bool | None = None,
    reason: str = "",
    acting_user_id: int | None = None,
) -> User:
    """Change display name, roles or active flag; None leaves a field as it is.

    `acting_user_id` is the account of the admin making the change (None for the CLI, run by
    an operator on the server). An admin may not change their own roles or active flag:
    separation of duties means a second person grants roles (an admin adding pharmacist to
    their own account could then verify product), and a stolen admin session cannot quietly
    re-role the account it is in. Through the API, adding a privileged role opens a request
    for a second admin (core.identity.role_grants) instead; removing one takes effect at once.

    Deactivation ends the account's sessions and revokes its API tokens for good: turning it
    back on later revives neither.
    """
    check_reason(reason)
    user = await lock_user(user_id)
    before = user_snapshot(user)
    to_request: list[Role] = []
    if display_name is not None:
        user.display_name = normalise_display_name(display_name)
    if roles is not None:
        wanted = normalise_roles(roles)
        if acting_user_id is not None:
            added = [role for role in wanted if role.value not in before["roles"]]
            _, to_request = split_privileged(added)
            wanted = [role for role in wanted if role not in to_request]
        user.roles = [role.value for role in wanted]
    if is_active is not None:
        user.is_active = is_active
    after = user_snapshot(user)
    if after == before and not to_request:
        return user
    if acting_user_id == user.id:
        if after["roles"] != before["roles"]:
            raise OwnAccountError(OWN_ROLES)
        if after["is_active"] != before["is_active"]:
            raise OwnAccountError(OWN_ACTIVE_FLAG)
        if to_request:
            raise OwnAccountError(OWN_ROLES)
    was_admin = before["is_active"] and Role.admin.value in before["roles"]
    if was_admin:
        await _check_admins_remain(user)
    changed = [key for key in after if after[key] != before[key]]
    if changed:
        values = {
            User.display_name: user.display_name,
            User.roles: user.roles,
            User.is_active: user.is_active,
        }
        await User.update(values).where(User.id == user.id)
        action = "user.updated"
        if changed == ["is_active"]:
            action = "user.activated" if user.is_active else "user.deactivated"
        await record(
            actor=actor,
            action=action,
            subject_type="user",
            subject_id=user.id,
            before={key: before[key] for key in changed},
            after={key: after[key] for key in changed},
            reason=reason,
        )
        if before["is_active"] and not user.is_active:
            await _revoke_credentials(user, actor=actor, reason="account deactivated")
    for role in to_request:
        assert acting_user_id is not None  # only the API's admins open requests
        await role_grants.open_request(
            user, role, requested_by=acting_user_id, actor=actor, reason=reason
        )
    return user


async def _revoke_credentials(user: User, *, actor: str, reason: str) -> None:
    """End every session and API token of `user`, for good (the caller holds its row lock).

    Sessions: `credentials_changed_at` moves, and a session is valid only with the stamp it
    began with. Tokens: `revoked_at` is set, so no later change (a reactivation) can bring
    one back; each revocation is audited like an owner's own.
    """
    now = utcnow()
    user.credentials_changed_at = now
    await User.update({User.credentials_changed_at: now}).where(User.id == user.id)
    revoked = await (
        ApiToken.update({ApiToken.revoked_at: now})
        .where(ApiToken.user == user.id)
        .where(ApiToken.revoked_at.is_null())
        .returning(ApiToken.id)
    )
    for row in sorted(revoked, key=lambda r: r["id"]):
        await record(
            actor=actor,
            action="api_token.revoked",
            subject_type="api_token",
            subject_id=row["id"],
            before={"revoked_at": None},
            after={"revoked_at": now},
            reason=reason,
        )


async def set_password(
    user_id: int,
    *,
    password: str,
    actor: str,
    reason: str = "",
    acting_user_id: int | None = None,
    must_change_password: bool = False,
    settings: Settings | None = None,
) -> User:
    """Replace a password: an admin's reset, the CLI, or the owner after
    `verify_password_change`. Ends the user's sessions and revokes their API tokens, for good.

    `must_change_password`: someone other than the owner chose it (an admin's reset, the
    shell), so the owner must choose their own at the next sign-in.

    `acting_user_id` is the admin resetting someone's password (None for the CLI and for the
    owner's own change). An admin cannot reset their own: that would let a borrowed admin
    session take the account over without knowing its password.
    """
    check_reason(reason)
    if acting_user_id == user_id:
        raise OwnAccountError(RESET_OF_OWN_ACCOUNT)
    # Policy and argon2 first, before the accounts lock: other account changes need not queue
    # behind a hash. The username a password is checked against never changes.
    user = await get_user(user_id)
    _check_password(password, username=user.username, settings=settings)
    password_hash = await hash_password_async(password)
    user = await lock_user(user_id)
    user.password_hash = password_hash
    user.password_changed_at = utcnow()
    user.must_change_password = must_change_password
    values = {
        User.password_hash: user.password_hash,
        User.password_changed_at: user.password_changed_at,
        User.must_change_password: must_change_password,
    }
    if acting_user_id is not None:
        # An admin's reset: they know the password, so for the two-person rule the account
        # comes from them. The owner's change that follows does not clear it: whoever set the
        # password could have made that change too (core.identity.role_grants.provenance).
        user.password_set_by = acting_user_id
        values[User.password_set_by] = acting_user_id
    await User.update(values).where(User.id == user.id)
    await record(
        actor=actor,
        action="user.password_set",
        subject_type="user",
        subject_id=user.id,
        after={
            "password_changed_at": user.password_changed_at,
            "must_change_password": must_change_password,
        },
        reason=reason,
    )
    await _revoke_credentials(user, actor=actor, reason="password changed")
    return user


# ---------------------------------------------------------------- logins


def _login_throttle(settings: Settings | None) -> Throttle:
    config = _settings(settings)
    return Throttle(config.login_max_failures, config.login_lockout_minutes * 60)


def _rate_limited(refusal: Refusal) -> RateLimitedError:
    minutes = max(1, -(-refusal.wait_seconds // 60))
    source = " from this address" if refusal.by_address else ""
    return RateLimitedError(
        f"Too many failed logins{source}; try again in "
        f"{minutes} minute{'s' if minutes > 1 else ''}.",
        retry_after=refusal.wait_seconds,
    )


def _refuse_inside_transaction(function: str) -> None:
    if db.in_transaction():
        raise RuntimeError(
            f"{function} verifies a password: call it before opening core.db.transaction(), "
            "so no pooled connection waits on argon2"
        )


async def verify_password_change(
    redis: Redis,
    *,
    user_id: int,
    current_password: str,
    new_password: str,
    client: str,
    settings: Settings | None = None,
) -> None:
    """Before a staff member changes their own password (with no transaction open): they must
    prove the current one, and the new one must pass the policy. Guesses at the current one
    count against the same login limit, so a borrowed session cannot be used to find the
    password, and each wrong one is audited (`user.password_change_failed`). The edge then
    calls `set_password` in its transaction."""
    _refuse_inside_transaction("verify_password_change()")
    user = await get_user(user_id)
    throttle = _login_throttle(settings)
    refusal = await throttle.attempt(redis, user.username, client)
    if refusal is not None:
        raise _rate_limited(refusal)
    if not await verify_password_async(user.password_hash, current_password):
        # An attempt at unauthorised use like a failed sign-in (21 CFR 11.300(d)): a borrowed
        # session guessing its owner's password. Its own transaction (none is open here), as
        # the request's answer is a refusal; never the password.
        log.warning("auth.password_change_failed", user_id=user.id, client=client)
        async with db.transaction():
            await record(
                actor=f"user:{user.id}",
                action="user.password_change_failed",
                subject_type="user",
                subject_id=user.id,
                after={"client": client},
                reason="wrong current password",
            )
        raise IdentityPolicyError("The current password is not correct.")
    await throttle.succeeded(redis, user.username, client)
    if new_password == current_password:
        raise IdentityPolicyError("The new password must differ from the current one.")
    _check_password(new_password, username=user.username, settings=settings)


@dataclass(frozen=True)
class VerifiedLogin:
    """Credentials proven by `authenticate`, not yet recorded (see `record_login`)."""

    user: User
    client: str
    # The password hashed with today's parameters, when the stored hash used older ones.
    upgraded_hash: str | None = None


async def authenticate(
    redis: Redis, *, username: str, password: str, client: str, settings: Settings | None = None
) -> VerifiedLogin:
    """Check credentials, with no transaction open; the edge then records the login with
    `record_login` in its transaction.

    AuthenticationError carries one message for every reason (unknown user, wrong password,
    inactive account): the answer must not tell an attacker which usernames exist. Unknown
    users cost a dummy argon2 verification, so the response time does not tell either.

    The attempt is counted before the password is verified (core.identity.throttle): past the
    limit, a login is refused without verifying, even with the right password.
    """
    _refuse_inside_transaction("authenticate()")
    throttle = _login_throttle(settings)
    refusal = await throttle.attempt(redis, username, client)
    if refusal is not None:
        log.warning("auth.login_refused_locked", client=client, by_address=refusal.by_address)
        await record_lockout(redis, username, client, refusal, settings)
        raise _rate_limited(refusal)

    name = username_or_none(username)
    # One short read: the pooled connection goes back before argon2 starts.
    user = await User.objects().where(User.username == name).first() if name else None
    matches = await verify_password_async(user.password_hash if user else None, password)
    if user is None or not matches or not user.is_active:
        log.warning("auth.login_failed", user_id=user.id if user else None, client=client)
        await record_sign_in_failure(username, user, matches, client, settings)
        raise AuthenticationError(WRONG_CREDENTIALS)

    await throttle.succeeded(redis, username, client)
    # Parameters were raised since this hash was made: upgrade it while we have the password.
    upgraded = await hash_password_async(password) if needs_rehash(user.password_hash) else None
    return VerifiedLogin(user=user, client=client, upgraded_hash=upgraded)


async def record_login(login: VerifiedLogin) -> User:
    """Stamp last_login_at, store an upgraded hash, and write the audit event (inside the
    edge's transaction: short, no argon2 here)."""
    user = login.user
    now = utcnow()
    await User.update({User.last_login_at: now}).where(User.id == user.id)
    if login.upgraded_hash is not None:
        # Only over the hash that was verified: if the password was changed in the meantime,
        # the upgrade must not bring the old one back. password_changed_at stays, so
        # sessions go on.
        await (
            User.update({User.password_hash: login.upgraded_hash})
            .where(User.id == user.id)
            .where(User.password_hash == user.password_hash)
        )
    user.last_login_at = now
    await record(
        actor=f"user:{user.id}",
        action="user.logged_in",
        subject_type="user",
        subject_id=user.id,
        after={"client": login.client},
    )
    return user


async def record_logout(user_id: int) -> None:
    await record(
        actor=f"user:{user_id}", action="user.logged_out", subject_type="user", subject_id=user_id
    )


async def user_for_session(user_id: int, stamp: int) -> User | None:
    """The user a session belongs to, if it is still good: the account is active and its
    credentials (password, reset, deactivation) have not changed since the session began."""
    user = await User.objects().where(User.id == user_id).first()
    if user is None or not user.is_active:
        return None
    if password_stamp(user.credentials_changed_at) != stamp:
        return None
    return user


# ---------------------------------------------------------------- API tokens


async def issue_token(
    user_id: int,
    *,
    name: str,
    actor: str,
    expires_at: datetime | None = None,
    settings: Settings | None = None,
) -> tuple[ApiToken, str]:
    """A new token for `user_id`; the plaintext is returned here once and never again."""
    config = _settings(settings)
    token_name = normalise_token_name(name)
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise IdentityPolicyError("A token's expiry needs a time zone (e.g. ...Z).")
        if expires_at <= utcnow():
            raise IdentityPolicyError("A token's expiry must be in the future.")
    user = await get_user(user_id)
    if not user.is_active:
        raise IdentityPolicyError("An inactive user cannot be given an API token.")
    if user.must_change_password:
        raise IdentityPolicyError("Choose a new password before making API tokens.")
    plaintext, prefix = new_token()
    token = ApiToken(
        user=user.id,
        name=token_name,
        prefix=prefix,
        token_hash=token_hash(plaintext, config.secret_key),
        created_at=utcnow(),
        expires_at=expires_at,
    )
    await token.save()
    await record(
        actor=actor,
        action="api_token.issued",
        subject_type="api_token",
        subject_id=token.id,
        after=token_snapshot(token),
    )
    return token, plaintext


async def resolve_token(
    plaintext: str, *, settings: Settings | None = None
) -> tuple[ApiToken, User] | None:
    """The token and its user, or None when unknown, revoked, expired or the user inactive."""
    if parse_token(plaintext) is None:
        return None
    config = _settings(settings)
    token = (
        await ApiToken.objects()
        .where(ApiToken.token_hash == token_hash(plaintext, config.secret_key))
        .first()
    )
    now = utcnow()
    if token is None or token.revoked_at is not None:
        return None
    if token.expires_at is not None and token.expires_at <= now:
        return None
    user = await User.objects().where(User.id == token.user).first()
    if user is None or not user.is_active:
        return None
    if token.created_at < user.credentials_changed_at:
        # Belt and braces beside revoked_at: a token from before a password change, reset or
        # deactivation never works again, even one issued in a race with that change.
        return None
    if token.last_used_at is None or now - token.last_used_at >= TOKEN_TOUCH_INTERVAL:
        await ApiToken.update({ApiToken.last_used_at: now}).where(ApiToken.id == token.id)
        token.last_used_at = now
    return token, user


async def list_tokens(user_id: int) -> list[ApiToken]:
    return await ApiToken.objects().where(ApiToken.user == user_id).order_by(ApiToken.id)


async def revoke_token(
    token_id: int, *, actor: str, owner_id: int | None = None, reason: str = ""
) -> ApiToken:
    """Revoke a token (idempotent). With `owner_id`, only that user's token: someone else's
    token is reported as not found, not as forbidden, so ids of others' tokens stay opaque."""
    check_reason(reason)
    query = ApiToken.objects().where(ApiToken.id == token_id)
    if owner_id is not None:
        query = query.where(ApiToken.user == owner_id)
    token = await query.lock_rows("UPDATE").first()
    if token is None:
        raise TokenNotFoundError(f"There is no API token with id {token_id}.")
    if token.revoked_at is not None:
        return token
    token.revoked_at = utcnow()
    await ApiToken.update({ApiToken.revoked_at: token.revoked_at}).where(ApiToken.id == token.id)
    await record(
        actor=actor,
        action="api_token.revoked",
        subject_type="api_token",
        subject_id=token.id,
        before={"revoked_at": None},
        after={"revoked_at": token.revoked_at},
        reason=reason,
    )
    return token
