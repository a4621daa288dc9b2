"""Timing: an unknown user costs a real argon2 verification (no user-enumeration oracle)."""

from __future__ import annotations

import statistics
import time

from core.identity.passwords import hash_password, verify_password_async

PASSWORD = "correct horse battery staple"


async def test_verifying_for_an_unknown_user_costs_a_real_verification():
    """The timing oracle is closed: no user costs an argon2 verification like a wrong password."""
    real = hash_password(PASSWORD)
    await verify_password_async(None, "warm up")  # the dummy hash is made once per process

    async def median(password_hash: str | None) -> float:
        times = []
        for _ in range(3):
            started = time.perf_counter()
            await verify_password_async(password_hash, "a wrong password")
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    known, unknown = await median(real), await median(None)

    assert unknown > 0.5 * known, (known, unknown)
