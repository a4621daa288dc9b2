"""Failed sign-ins and lockouts as audit events (21 CFR 11.300(d): attempts at unauthorised
use are detected and recorded).

What is recorded: the client address, why the attempt failed and, when the username names an
existing account, that account. Never the password, and never a username that names no
account: people type their password into the username field, so what was typed is recorded
only as a short keyed marker ("unknown:" + 12 hex of an HMAC), which lets an investigator see
that one name was tried 40 times without the trail holding the name. Naming existing accounts
tells no attacker anything: only pharmacists and admins read the trail.

A failed sign-in answers 401 and a lockout 429, and no transaction of the request commits, so
these events are written in a transaction of their own, detached from any the caller has
open. Recording must never turn a refused sign-in into a 500: a failure to record is logged.
A lockout is recorded once per lockout window and (username, address) pair or address, so a
flood of refused attempts cannot flood the trail or queue every audited write behind it.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import hmac
from typing import Any

from redis.asyncio import Redis

from core import db
from core.audit.keys import chain_key
from core.audit.services import record
from core.identity.model import username_or_none
from core.identity.tables import User
from core.identity.throttle import Refusal
from core.logging import get_logger
from core.settings import Settings

log = get_logger(__name__)

LOCKOUT_KEY_PREFIX = "infusion:audit-lockout:"
MARKER_LABEL = b"infusion sign-in marker v1\0"
APPLICATION_NAME = "infusion:audit-sign-in"
FAILED = "user.sign_in_failed"
LOCKED = "user.sign_in_locked"


def unknown_username_marker(typed: str, key: bytes) -> str:
    digest = hmac.new(key, MARKER_LABEL + typed.strip().lower().encode(), hashlib.sha256)
    return "unknown:" + digest.hexdigest()[:12]


def failure_reason(user: User | None, password_matched: bool) -> str:
    if user is None:
        return "unknown_username"
    if not password_matched:
        return "wrong_password"
    return "inactive_account"


async def _subject(typed: str, settings: Settings | None) -> tuple[str, str, dict[str, Any]]:
    name = username_or_none(typed)
    rows = (
        await User.select(User.id, User.username).where(User.username == name).limit(1)
        if name
        else []
    )
    if rows:
        return "user", str(rows[0]["id"]), {"username": rows[0]["username"]}
    return "sign_in", unknown_username_marker(typed, chain_key(settings)), {}


async def record_sign_in_failure(
    username: str,
    user: User | None,
    password_matched: bool,
    client: str,
    settings: Settings | None = None,
) -> None:
    """A wrong username or password, or an inactive account (the caller raises the 401)."""
    if user is not None:
        subject_type, subject_id, named = "user", str(user.id), {"username": user.username}
    else:
        subject_type, subject_id, named = await _subject(username, settings)
    await _record_detached(
        actor="anonymous",
        action=FAILED,
        subject_type=subject_type,
        subject_id=subject_id,
        after={**named, "client": client, "reason": failure_reason(user, password_matched)},
    )


async def record_lockout(
    redis: Redis,
    username: str,
    client: str,
    refusal: Refusal,
    settings: Settings | None = None,
) -> None:
    """A sign-in refused by the throttle, once per window (the caller raises the 429)."""
    wait_seconds, by_address = refusal.wait_seconds, refusal.by_address
    scope = f"address\0{client}" if by_address else f"{username.strip().lower()}\0{client}"
    key = LOCKOUT_KEY_PREFIX + hashlib.sha256(scope.encode()).hexdigest()
    if not await redis.set(key, 1, ex=max(wait_seconds, 1), nx=True):
        return
    if by_address:
        subject_type, subject_id, named = "client", client, {}
    else:
        subject_type, subject_id, named = await _subject(username, settings)
    await _record_detached(
        actor="anonymous",
        action=LOCKED,
        subject_type=subject_type,
        subject_id=subject_id[:100],
        after={
            **named,
            "client": client,
            "by_address": by_address,
            "locked_seconds": wait_seconds,
        },
    )


# Writes started from inside a caller's transaction, still running (kept so they are not
# garbage-collected mid-flight; see `_record_detached`).
_pending: set[asyncio.Task[None]] = set()


async def _record_detached(**event: Any) -> None:
    async def write() -> None:
        try:
            async with db.transaction():
                # Names these short transactions in pg_stat_activity (reverts at COMMIT).
                await db.fetch(f"SET LOCAL application_name = '{APPLICATION_NAME}'")
                await record(**event)
        except Exception:
            log.exception("audit.sign_in_event_not_recorded", action=event["action"])

    # A fresh context with no transaction: this commits even if the caller's rolls back.
    context = contextvars.copy_context()
    context.run(db.engine().current_transaction.set, None)
    # core.db's own unit-of-work mark too (a public "detached" helper there would be nicer).
    context.run(db._unit.set, None)
    task = asyncio.create_task(write(), context=context)
    if not db.in_transaction():
        await task  # the usual case (authenticate runs with no transaction open)
        return
    # Inside a transaction that may already hold the audit lock, waiting here would deadlock
    # (our write queues behind that lock, the lock behind us): let it finish on its own once
    # the caller's transaction ends, either way.
    _pending.add(task)
    task.add_done_callback(_pending.discard)


async def wait_for_pending() -> None:
    """Let writes started inside transactions finish (tests; a clean shutdown)."""
    while _pending:
        await asyncio.gather(*_pending)
