"""Password hashing: argon2id through argon2-cffi, off the event loop, with bounded memory.

argon2id with argon2-cffi's defaults (RFC 9106 "low memory" profile: 64 MiB, 3 passes, 4
lanes) costs about 0.15 s and 64 MiB per hash here. That is the point for an attacker holding
the table, and a hazard for us: a burst of logins would block the event loop and could
exhaust memory. So hashing runs in a small dedicated thread pool (argon2-cffi releases the GIL)
whose size caps the memory in use, and excess logins wait their turn.
"""

from __future__ import annotations

import asyncio
import functools
import os
import secrets
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()
_pool = ThreadPoolExecutor(
    max_workers=max(2, min(4, os.cpu_count() or 2)), thread_name_prefix="argon2"
)


def hash_password(password: str) -> str:
    """An argon2id PHC string (`$argon2id$v=19$m=…`), salted."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when `password` matches. Never raises for a wrong password or a malformed hash.

    The comparison inside argon2 is constant-time; the cost is the same for every wrong
    password because the whole hash is always computed.
    """
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with other parameters than today's (rehash at next login)."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


@functools.cache
def dummy_hash() -> str:
    """A hash of a random secret nobody knows, with today's parameters.

    Logging in as a user that does not exist verifies against it, so the answer takes as long
    as for a real user with a wrong password: the response time does not tell which usernames
    exist.
    """
    return hash_password(secrets.token_urlsafe(32))


async def hash_password_async(password: str) -> str:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_pool, hash_password, password)


async def verify_password_async(password_hash: str | None, password: str) -> bool:
    """Verify off the event loop; `None` (no such user) verifies against the dummy hash and
    is always False."""
    loop = asyncio.get_running_loop()
    if password_hash is None:
        await loop.run_in_executor(_pool, _verify_dummy, password)
        return False
    return await loop.run_in_executor(_pool, verify_password, password_hash, password)


def _verify_dummy(password: str) -> None:
    # In the worker thread: the first call also computes the dummy hash, off the event loop.
    verify_password(dummy_hash(), password)
