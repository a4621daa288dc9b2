"""Staff identity use cases: accounts, logins, API tokens.

Rule 1: these run inside the caller's `core.db.transaction()` and never commit. Every state
change writes an audit event; password hashes and token secrets never go into one.

Functions that need settings (the token key, login limits) take `settings=`; the edges pass
theirs, and without it the process settings are read from the environment once.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from redis.asyncio import Redis

from core import db
from core.audit.services import record
from core.clock import utcnow
from core.errors import AuthenticationError, RateLimitedError
from core.identity.errors import (
    IdentityPolicyError,
    LastAdminError,
    TokenNotFoundError,
    UsernameTakenError,
    UserNotFoundError,
)
from core.identity.model import (
    Role,
    check_password,
    normalise_display_name,
    normalise_roles,
    normalise_token_name,
    normalise_username,
    password_stamp,
    username_or_none,
)
from core.identity.passwords import hash_password_async, needs_rehash, verify_password_async
from core.identity.tables import ApiToken, User
from core.identity.throttle import Throttle
from core.identity.tokens import new_token, parse_token, token_hash
from core.logging import get_logger
from core.settings import Settings, load_settings

log = get_logger(__name__)

WRONG_CREDENTIALS = "Wrong username or password."
# Serialises changes to accounts so "is there still an active admin?" cannot be raced by two
# admins demoting each other at once. Account changes are rare; the wait is nothing.
ACCOUNTS_LOCK_KEY = 7_349_101
# last_used_at is bookkeeping, not evidence: write it at most once a minute per token.
TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)


@functools.cache
def _process_settings() -> Settings:
    return load_settings()


def _settings(settings: Settings | None) -> Settings:
    return settings if settings is not None else _process_settings()


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
    *, username: str, display_name: str, password: str, roles: Iterable[str], actor: str
) -> User:
    name = normalise_username(username)
    display = normalise_display_name(display_name)
    role_list = normalise_roles(roles)
    check_password(password, username=name)
    if await User.exists().where(User.username == name):
        raise UsernameTakenError(f"The username {name!r} is already taken.")
    password_hash = await hash_password_async(password)
    now = utcnow()
    user = User(
        username=name,
        display_name=display,
        password_hash=password_hash,
        roles=[role.value for role in role_list],
        is_active=True,
        created_at=now,
        password_changed_at=now,
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
        after=user_snapshot(user),
    )
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


async def _lock_user(user_id: int) -> User:
    await db.fetch("SELECT pg_advisory_xact_lock({})", ACCOUNTS_LOCK_KEY)
    user = await User.objects().where(User.id == user_id).lock_rows("UPDATE").first()
    if user is None:
        raise UserNotFoundError(f"There is no user with id {user_id}.")
    return user


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
) -> User:
    """Change display name, roles or active flag; None leaves a field as it is."""
    user = await _lock_user(user_id)
    before = user_snapshot(user)
    if display_name is not None:
        user.display_name = normalise_display_name(display_name)
    if roles is not None:
        user.roles = [role.value for role in normalise_roles(roles)]
    if is_active is not None:
        user.is_active = is_active
    after = user_snapshot(user)
    if after == before:
        return user
    was_admin = before["is_active"] and Role.admin.value in before["roles"]
    if was_admin:
        await _check_admins_remain(user)
    values = {
        User.display_name: user.display_name,
        User.roles: user.roles,
        User.is_active: user.is_active,
    }
    await User.update(values).where(User.id == user.id)
    changed = [key for key in after if after[key] != before[key]]
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
    return user


async def set_password(user_id: int, *, password: str, actor: str, reason: str = "") -> User:
    """Replace a password (an admin's reset, or the CLI). Ends the user's sessions: each one
    remembers the password it was started with."""
    user = await _lock_user(user_id)
    check_password(password, username=user.username)
    user.password_hash = await hash_password_async(password)
    user.password_changed_at = utcnow()
    await User.update(
        {User.password_hash: user.password_hash, User.password_changed_at: user.password_changed_at}
    ).where(User.id == user.id)
    await record(
        actor=actor,
        action="user.password_set",
        subject_type="user",
        subject_id=user.id,
        after={"password_changed_at": user.password_changed_at},
        reason=reason,
    )
    return user


async def change_own_password(
    redis: Redis,
    *,
    user_id: int,
    current_password: str,
    new_password: str,
    client: str,
    settings: Settings | None = None,
) -> User:
    """A staff member changes their password, proving they know the current one. Guesses at
    the current one count against the same login limit, so a borrowed session cannot be used
    to find the password."""
    config = _settings(settings)
    user = await get_user(user_id)
    throttle = Throttle(config.login_max_failures, config.login_lockout_minutes * 60)
    key = throttle.key(user.username, client)
    wait = await throttle.locked_for(redis, key)
    if wait:
        raise _rate_limited(wait)
    if not await verify_password_async(user.password_hash, current_password):
        await throttle.failed(redis, key)
        raise IdentityPolicyError("The current password is not correct.")
    if new_password == current_password:
        raise IdentityPolicyError("The new password must differ from the current one.")
    await throttle.succeeded(redis, key)
    return await set_password(user.id, password=new_password, actor=f"user:{user.id}")


# ---------------------------------------------------------------- logins


def _rate_limited(wait_seconds: int) -> RateLimitedError:
    minutes = max(1, -(-wait_seconds // 60))
    return RateLimitedError(
        f"Too many failed logins; try again in {minutes} minute{'s' if minutes > 1 else ''}.",
        retry_after=wait_seconds,
    )


async def authenticate(
    redis: Redis, *, username: str, password: str, client: str, settings: Settings | None = None
) -> User:
    """The user for these credentials, or AuthenticationError with one message for every
    reason (unknown user, wrong password, inactive account): the answer must not tell an
    attacker which usernames exist. Unknown users cost a dummy argon2 verification, so the
    response time does not tell either."""
    config = _settings(settings)
    throttle = Throttle(config.login_max_failures, config.login_lockout_minutes * 60)
    key = throttle.key(username, client)
    wait = await throttle.locked_for(redis, key)
    if wait:
        log.warning("auth.login_refused_locked", client=client)
        raise _rate_limited(wait)

    name = username_or_none(username)
    user = await User.objects().where(User.username == name).first() if name else None
    matches = await verify_password_async(user.password_hash if user else None, password)
    if user is None or not matches or not user.is_active:
        failures = await throttle.failed(redis, key)
        log.warning(
            "auth.login_failed",
            user_id=user.id if user else None,
            client=client,
            failures=failures,
        )
        raise AuthenticationError(WRONG_CREDENTIALS)

    await throttle.succeeded(redis, key)
    now = utcnow()
    values: dict[Any, Any] = {User.last_login_at: now}
    if needs_rehash(user.password_hash):
        # Parameters were raised since this hash was made: upgrade it while we have the
        # password. password_changed_at stays, so sessions go on.
        user.password_hash = await hash_password_async(password)
        values[User.password_hash] = user.password_hash
    await User.update(values).where(User.id == user.id)
    user.last_login_at = now
    await record(
        actor=f"user:{user.id}",
        action="user.logged_in",
        subject_type="user",
        subject_id=user.id,
        after={"client": client},
    )
    return user


async def record_logout(user_id: int) -> None:
    await record(
        actor=f"user:{user_id}", action="user.logged_out", subject_type="user", subject_id=user_id
    )


async def user_for_session(user_id: int, stamp: int) -> User | None:
    """The user a session belongs to, if it is still good: the account is active and its
    password has not changed since the session began."""
    user = await User.objects().where(User.id == user_id).first()
    if user is None or not user.is_active:
        return None
    if password_stamp(user.password_changed_at) != stamp:
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
    if token.last_used_at is None or now - token.last_used_at >= TOKEN_TOUCH_INTERVAL:
        await ApiToken.update({ApiToken.last_used_at: now}).where(ApiToken.id == token.id)
        token.last_used_at = now
    return token, user


async def user_for_token(plaintext: str, *, settings: Settings | None = None) -> User | None:
    found = await resolve_token(plaintext, settings=settings)
    return found[1] if found else None


async def list_tokens(user_id: int) -> list[ApiToken]:
    return await ApiToken.objects().where(ApiToken.user == user_id).order_by(ApiToken.id)


async def revoke_token(
    token_id: int, *, actor: str, owner_id: int | None = None, reason: str = ""
) -> ApiToken:
    """Revoke a token (idempotent). With `owner_id`, only that user's token: someone else's
    token is reported as not found, not as forbidden, so ids of others' tokens stay opaque."""
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
