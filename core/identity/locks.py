"""The one lock account changes take, so rules across accounts cannot be raced.

"Is there still an active admin?" and "is this grant approved by someone other than its
requester?" read several rows; two admins acting at once must not both pass. Account changes
are rare, so one transaction-scoped advisory lock serialises them all; the wait is nothing.
Always taken before row locks on accounts (fixed lock order).
"""

from __future__ import annotations

from core import db
from core.identity.errors import UserNotFoundError
from core.identity.tables import User

ACCOUNTS_LOCK_KEY = 7_349_101


async def lock_accounts() -> None:
    await db.fetch("SELECT pg_advisory_xact_lock({})", ACCOUNTS_LOCK_KEY)


async def lock_user(user_id: int) -> User:
    """The accounts lock, then the user's row FOR UPDATE."""
    await lock_accounts()
    user = await User.objects().where(User.id == user_id).lock_rows("UPDATE").first()
    if user is None:
        raise UserNotFoundError(f"There is no user with id {user_id}.")
    return user
