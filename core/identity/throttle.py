"""Attempt counters in Redis for secrets people type: sign-in (one per (username, client
address), one per address) and e-signatures (one per signer; core.identity.signatures).

Redis, not process memory: many API processes serve logins and all must see one count.

An attempt is counted *before* its password is verified, in one MULTI with the check, so a
burst of parallel guesses cannot slip past the limit while earlier ones are still being
verified: within a window, only the first `max_attempts` attempts for a pair are verified at
all; the rest are refused without verifying, even with the right password. The window opens
at the first attempt and lasts `window_seconds`. A success deletes the pair's counter.
Counting per pair means an attacker elsewhere cannot lock a pharmacist out of their own
workstation.

The per-address counter ignores the username, so one address cannot try one common password
against every account (password spraying): it allows `CLIENT_FACTOR` times as many attempts
per window. A success gives its own attempt back (it was not a guess), so a busy shared
workstation is not locked by people signing in, and logging into a known account cannot wipe
the address's record of failures.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from redis.asyncio import Redis

KEY_PREFIX = "infusion:login-failures:"
CLIENT_KEY_PREFIX = "infusion:login-failures-client:"
SIGNATURE_KEY_PREFIX = "infusion:signature-failures:"
# The per-address cap, as a multiple of the per-user limit (a module constant rather than a
# setting for now: 10 times INFUSION_LOGIN_MAX_FAILURES within the same lockout window).
CLIENT_FACTOR = 10


@dataclass(frozen=True)
class Refusal:
    """Why an attempt was refused, and for how long."""

    wait_seconds: int
    by_address: bool


@dataclass(frozen=True)
class Throttle:
    max_attempts: int
    window_seconds: int
    prefix: str = KEY_PREFIX
    # None: no per-address counter (a signature's signer is already known; one counter
    # per person is what matters).
    client_prefix: str | None = CLIENT_KEY_PREFIX

    @property
    def max_client_attempts(self) -> int:
        return self.max_attempts * CLIENT_FACTOR

    def key(self, username: str, client: str) -> str:
        # Hashed: what people type as a username (sometimes their password) stays out of Redis.
        digest = hashlib.sha256(f"{username.strip().lower()}\0{client}".encode()).hexdigest()
        return self.prefix + digest

    def client_key(self, client: str) -> str | None:
        if self.client_prefix is None:
            return None
        return self.client_prefix + hashlib.sha256(client.encode()).hexdigest()

    async def attempt(self, redis: Redis, username: str, client: str) -> Refusal | None:
        """Count one attempt for (username, client) and for client; None when it may go on to
        the password check, else how long to wait."""
        key, client_key = self.key(username, client), self.client_key(client)
        async with redis.pipeline(transaction=True) as pipe:
            # SET NX EX opens the window at the first attempt; INCR keeps the TTL. (EXPIRE NX
            # would do it in one step but needs Redis 7; the embedded Redis is 6.2.)
            for each in (key, client_key):
                if each is not None:
                    pipe.set(each, 0, ex=self.window_seconds, nx=True)
                    pipe.incr(each)
                    pipe.ttl(each)
            results = await pipe.execute()
        _, count, ttl = results[:3]
        if client_key is not None:
            _, client_count, client_ttl = results[3:]
            if int(client_count) > self.max_client_attempts:
                return Refusal(wait_seconds=max(int(client_ttl), 1), by_address=True)
        if int(count) > self.max_attempts:
            return Refusal(wait_seconds=max(int(ttl), 1), by_address=False)
        return None

    async def succeeded(self, redis: Redis, username: str, client: str) -> None:
        """The password was right: forget the pair's attempts, give the address this one back."""
        client_key = self.client_key(client)
        if client_key is None:
            await redis.delete(self.key(username, client))
            return
        async with redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.key(username, client))
            pipe.decr(client_key)
            pipe.ttl(client_key)
            *_, client_ttl = await pipe.execute()
        if int(client_ttl) == -1:
            # The window ended between the attempt and now, and DECR made a key that never
            # expires: drop it rather than leave it forever.
            await redis.delete(client_key)
