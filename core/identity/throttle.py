"""Failed-login counters in Redis, one per (username, client address).

Redis, not process memory: many API processes serve logins and all must see one count.
After `max_failures` failures within the window, that pair is refused for the whole lockout,
even with the right password, so guessing cannot continue at full speed. Counting per pair
means an attacker elsewhere cannot lock a pharmacist out of their own workstation.
A success resets the pair's counter.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from redis.asyncio import Redis

KEY_PREFIX = "infusion:login-failures:"


@dataclass(frozen=True)
class Throttle:
    max_failures: int
    lockout_seconds: int

    @staticmethod
    def key(username: str, client: str) -> str:
        # Hashed: what people type as a username (sometimes their password) stays out of Redis.
        digest = hashlib.sha256(f"{username.strip().lower()}\0{client}".encode()).hexdigest()
        return KEY_PREFIX + digest

    async def locked_for(self, redis: Redis, key: str) -> int:
        """Seconds until this pair may try again; 0 when it may try now."""
        async with redis.pipeline(transaction=True) as pipe:
            pipe.get(key)
            pipe.ttl(key)
            count, ttl = await pipe.execute()
        if count is None or int(count) < self.max_failures:
            return 0
        return max(int(ttl), 1)

    async def failed(self, redis: Redis, key: str) -> int:
        """Count one failure; returns the count. The window opens at the first failure; the
        failure that reaches the limit starts a full lockout."""
        async with redis.pipeline(transaction=True) as pipe:
            # SET NX EX opens the window at the first failure; INCR keeps the TTL. (EXPIRE NX
            # would do the same in one step but needs Redis 7; the embedded Redis is 6.2.)
            pipe.set(key, 0, ex=self.lockout_seconds, nx=True)
            pipe.incr(key)
            _, count = await pipe.execute()
        if int(count) >= self.max_failures:
            await redis.expire(key, self.lockout_seconds)
        return int(count)

    async def succeeded(self, redis: Redis, key: str) -> None:
        await redis.delete(key)
