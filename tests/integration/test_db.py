"""The unit of work: after-commit hooks, nesting, and no leaked connection when COMMIT fails."""

from __future__ import annotations

import asyncpg
import pytest

from core import db


@pytest.fixture
async def deferred_table(clean_state):
    # A deferred unique constraint fails at COMMIT, not at INSERT: the hardest exit path.
    await db.fetch(
        "CREATE TABLE IF NOT EXISTS test_deferred (k int,"
        " CONSTRAINT test_deferred_k UNIQUE (k) DEFERRABLE INITIALLY DEFERRED)"
    )
    await db.fetch("TRUNCATE test_deferred")


async def test_after_commit_hooks_run_after_commit_only():
    ran: list[str] = []

    async def hook() -> None:
        # Runs outside the transaction, once the data is visible to everyone.
        assert not db.in_transaction()
        ran.append("committed")

    async with db.transaction():
        db.on_commit(hook)
        assert ran == []
    assert ran == ["committed"]

    with pytest.raises(KeyError):
        async with db.transaction():
            db.on_commit(hook)
            raise KeyError("rolled back")
    assert ran == ["committed"]


async def test_a_failing_hook_does_not_undo_or_break_the_commit(deferred_table):
    async def broken() -> None:
        raise RuntimeError("redis is down")

    async with db.transaction():
        await db.fetch("INSERT INTO test_deferred VALUES (1)")
        db.on_commit(broken)
    assert await db.fetch("SELECT k FROM test_deferred") == [{"k": 1}]


async def test_nested_transactions_join_the_outer_one(deferred_table):
    with pytest.raises(ValueError, match="outer fails"):
        async with db.transaction():
            async with db.transaction():
                await db.fetch("INSERT INTO test_deferred VALUES (2)")
            raise ValueError("outer fails")
    assert await db.fetch("SELECT k FROM test_deferred") == []


async def test_a_failed_commit_releases_its_connection_every_time(deferred_table):
    ran: list[str] = []

    async def hook() -> None:
        ran.append("x")

    pool_size = db.engine().pool.get_max_size()
    for _ in range(pool_size + 2):
        with pytest.raises(asyncpg.UniqueViolationError):
            async with db.transaction():
                await db.fetch("INSERT INTO test_deferred VALUES (3), (3)")
                db.on_commit(hook)
        assert not db.in_transaction()
    # Had each failure leaked its connection, the pool would be empty and this would hang.
    assert await db.fetch("SELECT count(*) AS n FROM test_deferred") == [{"n": 0}]
    assert ran == []
    async with db.transaction():
        await db.fetch("INSERT INTO test_deferred VALUES (4)")
    assert await db.fetch("SELECT k FROM test_deferred") == [{"k": 4}]


async def test_on_commit_needs_a_transaction():
    async def hook() -> None: ...

    with pytest.raises(RuntimeError, match="needs an open"):
        db.on_commit(hook)


async def test_no_column_of_ours_takes_its_time_from_the_database_clock():
    # Architecture rule 7: times come from core.clock (injectable in tests), never from the
    # database's now(). Piccolo's own bookkeeping table is not ours.
    rows = await db.fetch(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = 'public' AND table_name <> 'migration'"
        " AND (column_default ILIKE '%now()%' OR column_default ILIKE '%current_timestamp%'"
        " OR column_default ILIKE '%clock_timestamp%')"
    )
    assert rows == []
