"""A pooled connection carries no session state to its next user (core/pool.py).

The health check's `SELECT 1` is released without the reset round trip; every other use is
reset, temporary tables included. Checked on the product's own pool (core.db.open_pool) and
observed from PostgreSQL itself (pg_stat_activity shows each backend's last statement).
"""

from __future__ import annotations

import asyncpg
import pytest

from core import db
from core.db import ping_database
from core.pool import pool_options

# asyncpg's reset on release (PostgreSQL 15 has every capability it checks), then ours.
FULL_RESET = "SELECT pg_advisory_unlock_all();\nCLOSE ALL;\nUNLISTEN *;\nRESET ALL;\nDISCARD TEMP;"


async def _next_use_of(pool: asyncpg.Pool, pid: int) -> asyncpg.pool.PoolConnectionProxy:
    """Acquire until the pool hands out backend `pid` again (its queue is first in, first out)."""
    held = []
    try:
        for _ in range(pool.get_max_size() + 1):
            connection = await pool.acquire()
            if await connection.fetchval("SELECT pg_backend_pid()") == pid:
                return connection
            held.append(connection)
        raise AssertionError(f"the pool never handed out backend {pid} again")
    finally:
        for connection in held:
            await pool.release(connection)


async def test_a_released_connection_carries_no_session_state_to_the_next_user():
    pool = db.engine().pool
    async with pool.acquire() as connection:
        pid = await connection.fetchval("SELECT pg_backend_pid()")
        default_timeout = await connection.fetchval("SHOW statement_timeout")
        await connection.execute("SET statement_timeout = '4321ms'")
        await connection.execute("SET application_name = 'leaky'")
        assert await connection.fetchval("SELECT pg_try_advisory_lock(4242)") is True
        await connection.execute("CREATE TEMP TABLE leaked_rows (k int)")
        await connection.execute("INSERT INTO leaked_rows VALUES (1)")
        await connection.execute("LISTEN leaked_channel")
        async with connection.transaction():
            # WITH HOLD: the cursor outlives its transaction, until CLOSE ALL.
            await connection.execute("DECLARE leaked_cursor CURSOR WITH HOLD FOR SELECT 1")
    next_user = await _next_use_of(pool, pid)
    try:
        assert await next_user.fetchval("SHOW statement_timeout") == default_timeout
        assert await next_user.fetchval("SHOW application_name") == ""
        assert (
            await next_user.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = $1", pid
            )
            == 0
        )
        assert await next_user.fetchval("SELECT to_regclass('pg_temp.leaked_rows')") is None
        assert await next_user.fetch("SELECT pg_listening_channels()") == []
        # (pg_cursors lists this query's own unnamed portal too.)
        assert await next_user.fetch("SELECT name FROM pg_cursors WHERE name <> ''") == []
    finally:
        await pool.release(next_user)


async def _last_statement(pid: int) -> str:
    rows = await db.fetch("SELECT query FROM pg_stat_activity WHERE pid = {}", pid)
    return rows[0]["query"]


@pytest.fixture
async def one_connection_pool(database):
    # The product's pool options on a pool of one, so every use gets the same backend.
    pool = await asyncpg.create_pool(
        dsn=database.database_url, min_size=1, max_size=1, **pool_options()
    )
    yield pool
    await pool.close()


async def select_one(pool: asyncpg.Pool) -> None:
    """What core.db.ping_database does on the product's pool, on a pool of one connection."""
    async with pool.acquire() as connection:
        await connection.fetchval("SELECT 1")
        connection.mark_state_unchanged()


async def test_the_health_check_skips_the_reset_and_the_next_use_is_reset(one_connection_pool):
    pool = one_connection_pool
    async with pool.acquire() as connection:
        pid = await connection.fetchval("SELECT pg_backend_pid()")
    # An ordinary use ends with the full reset, temporary tables included.
    assert await _last_statement(pid) == FULL_RESET

    await select_one(pool)
    assert await _last_statement(pid) == "SELECT 1"

    # The skip is for that one release only: the next use, whatever it does, is reset.
    async with pool.acquire() as connection:
        await connection.execute("SET statement_timeout = '4321ms'")
    assert await _last_statement(pid) == FULL_RESET
    async with pool.acquire() as connection:
        assert await connection.fetchval("SHOW statement_timeout") != "4321ms"


async def test_a_failed_health_query_is_reset(one_connection_pool):
    pool = one_connection_pool
    async with pool.acquire() as connection:
        pid = await connection.fetchval("SELECT pg_backend_pid()")
        await connection.execute("SET statement_timeout = '4321ms'")
    with pytest.raises(asyncpg.PostgresError):
        async with pool.acquire() as connection:
            await connection.execute("SET application_name = 'after a failure'")
            await connection.fetchval("SELECT 1/0")
            connection.mark_state_unchanged()  # never reached
    assert await _last_statement(pid) == FULL_RESET
    async with pool.acquire() as connection:
        assert await connection.fetchval("SHOW application_name") == ""


async def test_the_product_pool_uses_these_connections_and_the_health_check_answers():
    async with db.engine().pool.acquire() as connection:
        assert connection.get_reset_query() == FULL_RESET
    assert await ping_database() is None
