"""The unit of work: savepoints, isolation and retries, audit events written just before COMMIT,
bounded waits, and no connection kept by a cancelled or failed BEGIN."""

from __future__ import annotations

import asyncio
import contextvars
import time

import asyncpg
import pytest

from core import db
from core.audit.services import AUDIT_LOCK_KEY, record, verify_chain
from core.errors import ConflictError, DatabaseUnavailableError


@pytest.fixture
async def table(clean_state):
    await db.fetch("CREATE TABLE IF NOT EXISTS test_uow (k int PRIMARY KEY, v int)")
    await db.fetch("TRUNCATE test_uow")


async def keys() -> list[int]:
    return [r["k"] for r in await db.fetch("SELECT k FROM test_uow ORDER BY k")]


def pool_is_idle() -> bool:
    pool = db.engine().pool
    return pool.get_idle_size() == pool.get_size()


async def event(subject_id: int) -> object:
    return await record(actor="user:1", action="t.done", subject_type="t", subject_id=subject_id)


# ---------------------------------------------------------------- connections


async def test_a_cancelled_transaction_never_keeps_its_connection(table):
    # Cancelled after 0, 1, 2… turns of the loop, the task is stopped while it acquires, while
    # BEGIN is on the wire, inside the block or during COMMIT: every time the connection must
    # come back, and the task must not be left "inside" a transaction.
    async def one() -> None:
        async with db.transaction():
            await db.fetch("INSERT INTO test_uow VALUES (1, 1) ON CONFLICT DO NOTHING")

    for turns in range(40):
        task = asyncio.create_task(one())
        for _ in range(turns):
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert not db.in_transaction()
    assert pool_is_idle()
    async with db.transaction():
        await db.fetch("INSERT INTO test_uow VALUES (2, 2)")
    assert 2 in await keys()


async def test_a_dropped_connection_is_unavailable_and_the_pool_recovers(table):
    # What a PostgreSQL restart does to idle pooled connections.
    await asyncio.gather(*(db.fetch("SELECT pg_sleep(0.05)") for _ in range(3)))
    await db.fetch(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )

    async def attempt(i: int) -> bool:
        try:
            async with db.transaction():
                await db.fetch("INSERT INTO test_uow VALUES ({}, 0)", i)
        except DatabaseUnavailableError:
            return False
        return True

    # Each attempt in a fresh context, as each request is.
    done = [await asyncio.create_task(attempt(i), context=contextvars.Context()) for i in range(5)]
    assert pool_is_idle()
    assert await keys() == [i for i, ok in enumerate(done) if ok]
    assert done[-1] is True


async def test_a_statement_past_the_command_timeout_fails_fast_and_frees_the_connection(table):
    async def one_request() -> None:
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailableError) as caught:
            async with db.transaction():
                await db.fetch("INSERT INTO test_uow VALUES (1, 1)")
                await db.fetch("SELECT pg_sleep(10)")
        elapsed = time.monotonic() - started
        assert db.COMMAND_TIMEOUT_S <= elapsed < db.COMMAND_TIMEOUT_S + 0.5
        assert isinstance(caught.value.__cause__, TimeoutError)
        assert pool_is_idle()
        # The same task (one request) now fails at once instead of waiting a second time.
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailableError):
            await db.fetch("SELECT 1")
        assert time.monotonic() - started < 0.1

    # Each in a fresh context, as uvicorn runs each request: one request's failure does not
    # make the next one fail.
    await asyncio.create_task(one_request(), context=contextvars.Context())
    assert await asyncio.create_task(keys(), context=contextvars.Context()) == []


# ---------------------------------------------------------------- savepoints


async def test_a_savepoint_undoes_only_its_own_block(table):
    ran: list[str] = []

    async def outer_hook() -> None:
        ran.append("outer")

    async def inner_hook() -> None:
        ran.append("inner")

    async with db.transaction():
        await db.fetch("INSERT INTO test_uow VALUES (1, 1)")
        db.on_commit(outer_hook)
        await event(1)
        with pytest.raises(ValueError, match="inner fails"):
            async with db.transaction(savepoint=True):
                await db.fetch("INSERT INTO test_uow VALUES (2, 2)")
                db.on_commit(inner_hook)
                await event(2)
                raise ValueError("inner fails")
        async with db.transaction(savepoint=True):
            await db.fetch("INSERT INTO test_uow VALUES (3, 3)")
            await event(3)
    assert await keys() == [1, 3]
    assert ran == ["outer"]
    rows = await db.fetch("SELECT seq, subject_id FROM audit_event ORDER BY seq")
    assert rows == [{"seq": 1, "subject_id": "1"}, {"seq": 2, "subject_id": "3"}]
    assert (await verify_chain()).ok


async def test_a_database_error_inside_a_savepoint_leaves_the_transaction_usable(table):
    async with db.transaction():
        await db.fetch("INSERT INTO test_uow VALUES (1, 1)")
        with pytest.raises(asyncpg.UniqueViolationError):
            async with db.transaction(savepoint=True):
                await db.fetch("INSERT INTO test_uow VALUES (1, 2)")
        await db.fetch("INSERT INTO test_uow VALUES (2, 2)")
    assert await keys() == [1, 2]


async def test_without_a_savepoint_a_nested_error_aborts_the_whole_transaction(table):
    with pytest.raises(asyncpg.InFailedSQLTransactionError):
        async with db.transaction():
            await db.fetch("INSERT INTO test_uow VALUES (1, 1)")
            with pytest.raises(asyncpg.UniqueViolationError):
                async with db.transaction():
                    await db.fetch("INSERT INTO test_uow VALUES (1, 2)")
            await db.fetch("INSERT INTO test_uow VALUES (2, 2)")
    assert await keys() == []
    assert pool_is_idle()


# ---------------------------------------------------------------- isolation and retries


async def test_isolation_applies_to_the_transaction_and_nested_blocks_cannot_change_it(table):
    async with db.transaction(isolation="serializable"):
        [row] = await db.fetch("SHOW transaction_isolation")
        assert row == {"transaction_isolation": "serializable"}
        async with db.transaction(isolation="serializable", savepoint=True):
            pass
        with pytest.raises(RuntimeError, match="cannot change the isolation level"):
            async with db.transaction(isolation="repeatable_read"):
                pass
    async with db.transaction():
        assert await db.fetch("SHOW transaction_isolation") == [
            {"transaction_isolation": "read committed"}
        ]


async def write_skew(retries: int) -> tuple[list[int], list[BaseException | None]]:
    """Two serializable transactions that each read what the other writes: PostgreSQL
    aborts one of them with 40001."""
    both_read = asyncio.Barrier(2)
    attempts: list[int] = []

    def work(mine: int, theirs: int):
        async def run() -> int:
            attempts.append(mine)
            rows = await db.fetch("SELECT count(*) AS n FROM test_uow WHERE k = {}", theirs)
            if len(attempts) <= 2:
                await both_read.wait()
            await db.fetch("INSERT INTO test_uow VALUES ({}, {})", mine, rows[0]["n"])
            return mine

        return run

    results = await asyncio.gather(
        db.run_in_transaction(work(1, 2), isolation="serializable", retries=retries),
        db.run_in_transaction(work(2, 1), isolation="serializable", retries=retries),
        return_exceptions=True,
    )
    return attempts, [r if isinstance(r, BaseException) else None for r in results]


async def test_a_serialisation_failure_is_retried_until_it_commits(table):
    attempts, errors = await write_skew(retries=3)
    assert errors == [None, None]
    assert sorted(attempts) in ([1, 1, 2], [1, 2, 2])
    # The retried one ran after the other committed, so it saw that row.
    rows = await db.fetch("SELECT k, v FROM test_uow ORDER BY k")
    assert sorted(r["v"] for r in rows) == [0, 1]


async def test_when_retries_run_out_the_caller_gets_a_conflict(table):
    attempts, errors = await write_skew(retries=0)
    assert sorted(attempts) == [1, 2]
    failed = [e for e in errors if e is not None]
    assert len(failed) == 1
    assert isinstance(failed[0], ConflictError)
    assert failed[0].status == 409
    assert str(failed[0]) == (
        "This change collided with others made at the same moment; try again."
    )
    assert failed[0].__cause__.sqlstate == "40001"
    assert len(await keys()) == 1


async def test_a_deadlock_is_retried(table):
    await db.fetch("INSERT INTO test_uow VALUES (1, 0), (2, 0)")
    both_locked = asyncio.Barrier(2)
    attempts: list[int] = []

    def work(first: int, second: int):
        async def run() -> None:
            attempts.append(first)
            await db.fetch("UPDATE test_uow SET v = v + 1 WHERE k = {}", first)
            if len(attempts) <= 2:
                await both_locked.wait()
            await db.fetch("UPDATE test_uow SET v = v + 1 WHERE k = {}", second)

        return run

    await asyncio.gather(db.run_in_transaction(work(1, 2)), db.run_in_transaction(work(2, 1)))
    assert len(attempts) == 3
    assert await db.fetch("SELECT k, v FROM test_uow ORDER BY k") == [
        {"k": 1, "v": 2},
        {"k": 2, "v": 2},
    ]


async def test_other_errors_are_not_retried_and_nesting_is_refused(table):
    attempts: list[int] = []

    async def duplicate() -> None:
        attempts.append(1)
        await db.fetch("INSERT INTO test_uow VALUES (1, 1), (1, 1)")

    with pytest.raises(asyncpg.UniqueViolationError):
        await db.run_in_transaction(duplicate)
    assert attempts == [1]
    async with db.transaction():
        with pytest.raises(RuntimeError, match="call it outside one"):
            await db.run_in_transaction(duplicate)


# ---------------------------------------------------------------- audit events


async def test_audit_events_are_numbered_when_written_just_before_commit(table):
    async with db.transaction():
        first = await event(1)
        second = await event(2)
        assert (first.seq, second.seq) == (None, None)
        # Nothing is written, and no audit lock is taken, until COMMIT.
        assert await db.fetch("SELECT count(*) AS n FROM audit_event") == [{"n": 0}]
        locks = await db.fetch(
            "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND objid = {}"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            AUDIT_LOCK_KEY,
        )
        assert locks == [{"n": 0}]
    assert (first.seq, second.seq) == (1, 2)
    assert (await verify_chain()).ok


async def test_the_audit_lock_is_not_held_across_a_transactions_work(table):
    # A long transaction (a job) that records an event early must not hold up another
    # transaction's audit write: the lock is only taken just before COMMIT.
    in_work = asyncio.Event()
    release = asyncio.Event()

    async def slow_job() -> None:
        async with db.transaction():
            await event(1)
            in_work.set()
            await release.wait()

    job = asyncio.create_task(slow_job())
    await in_work.wait()
    # The job's work ends after 1.5 s whatever happens (with the lock taken at record(), the
    # write below would wait for it).
    asyncio.get_running_loop().call_later(1.5, release.set)
    started = time.monotonic()
    async with db.transaction():
        await event(2)
    quick = time.monotonic() - started
    await job
    assert quick < 0.5
    rows = await db.fetch("SELECT seq, subject_id FROM audit_event ORDER BY seq")
    assert rows == [{"seq": 1, "subject_id": "2"}, {"seq": 2, "subject_id": "1"}]
    assert (await verify_chain()).ok


async def test_an_unstorable_payload_fails_at_record_not_at_commit(table):
    async with db.transaction():
        await db.fetch("INSERT INTO test_uow VALUES (1, 1)")
        with pytest.raises(asyncpg.UntranslatableCharacterError):
            async with db.transaction(savepoint=True):
                await record(
                    actor="user:1",
                    action="t.done",
                    subject_type="t",
                    subject_id=1,
                    after={"note": "nul \x00 here"},
                )
    assert await keys() == [1]
    assert await db.fetch("SELECT count(*) AS n FROM audit_event") == [{"n": 0}]


async def test_pending_needs_a_transaction():
    async def flush(items: list[object]) -> None: ...

    with pytest.raises(RuntimeError, match="needs an open"):
        db.pending("x", flush)
