"""The database engine, the connection pool and the unit of work.

Architecture rule 1: the edge (a request handler or a job) opens the transaction with
`transaction()` (or `run_in_transaction()`, which retries serialisation failures); services run
inside it and never commit. Work that must only happen once the data is durable (enqueueing a
job, notifying a browser) is registered with `on_commit()` and runs after COMMIT, or never if
the transaction rolls back. Writes that must happen last, just before COMMIT (the audit trail's
chained rows, whose lock must be held for milliseconds only), go into a `pending()` buffer.

Every wait on PostgreSQL is bounded (pool acquire, connect, each command): a frozen or
unreachable server makes a request fail within seconds with `DatabaseUnavailableError` (the
edge answers 503) instead of holding it for the whole outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal, TypeVar

import asyncpg
from piccolo.engine.postgres import PostgresEngine

from core.errors import ConflictError, DatabaseUnavailableError
from core.logging import get_logger
from core.pool import pool_options

log = get_logger(__name__)

T = TypeVar("T")
AfterCommit = Callable[[], Awaitable[Any]]
Flush = Callable[[list[Any]], Awaitable[None]]
Isolation = Literal["read_committed", "repeatable_read", "serializable"]

# A request must answer within 3 s while PostgreSQL is frozen or unreachable. Each wait below
# fails on its own within 2 s, and a request meets at most one of them before it fails (the
# connection is then dropped, not reset), so the 503 leaves in about 2 s.
CONNECT_TIMEOUT_S = 2.0  # TCP connect plus the startup handshake of a new connection
ACQUIRE_TIMEOUT_S = 2.0  # waiting for a pooled connection, including connecting one
COMMAND_TIMEOUT_S = 2.0  # one statement; web queries take milliseconds
# Jobs and one-shot commands (imports, reports, audit verification) run longer statements on
# purpose; nobody waits on them in a browser, and each job has its own time limit.
BATCH_COMMAND_TIMEOUT_S = 60.0
RELEASE_TIMEOUT_S = 2.0  # the reset a connection gets when it goes back to the pool
# Once a wait has failed, the same task (one request, one job) fails at once for this long
# instead of waiting again: a request that meets the outage twice (the sign-in check of a
# public route, then the route itself) still answers within one timeout.
FAIL_FAST_S = 5.0

# PostgreSQL aborted the transaction because of a concurrent one; running it again is safe.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected
RETRY_BACKOFF_S = 0.02

# The server did not answer in time or dropped the connection (as opposed to refusing the
# statement for what it is).
_NOT_ANSWERING: tuple[type[BaseException], ...] = (
    TimeoutError,
    asyncpg.QueryCanceledError,  # 57014: statement_timeout below, or an operator's cancel
    OSError,
    asyncpg.PostgresConnectionError,  # includes 08003 "connection does not exist"
    asyncpg.CannotConnectNowError,  # 57P03: starting up or shutting down
    asyncpg.AdminShutdownError,  # 57P01: the server was stopped under us
)

UNAVAILABLE = "The database is not answering; try again in a moment."


class Engine(PostgresEngine):
    """PostgresEngine that does not connect when it is constructed, and bounds every wait.

    Piccolo's engine checks the server version at import of piccolo_conf, which would make
    `infusion --help` hang on an unreachable server. `/health` and `infusion migrate` check the
    server instead. Piccolo acquires from the pool without a timeout and resets a connection
    after a failed command, both of which wait forever on a frozen server: `_run_in_pool` is
    replaced, and every query maps a connection failure to `DatabaseUnavailableError`.
    """

    async def check_version(self) -> None:
        return None

    async def prep_database(self) -> None:
        return None

    async def acquire(self) -> Any:
        if self.pool is None:
            raise RuntimeError("the connection pool is not open (core.db.open_pool)")
        failed_at = _failed_at.get()
        if failed_at is not None and time.monotonic() - failed_at < FAIL_FAST_S:
            raise DatabaseUnavailableError(UNAVAILABLE)
        with _unavailable_on_failure():
            return await self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S)

    async def give_back(self, connection: Any, failure: BaseException | None = None) -> None:
        """Return a connection to the pool; drop it instead when its state is unknown.

        After a timeout, a broken connection or a cancelled task the connection may still be
        waiting on the server: resetting it would wait too, so it is terminated (no I/O) and
        the pool opens a fresh one next time.
        """
        if failure is not None and _is_broken(failure):
            connection.terminate()
        try:
            if self.pool is not None:
                await self.pool.release(connection, timeout=RELEASE_TIMEOUT_S)
            else:
                await connection.close(timeout=RELEASE_TIMEOUT_S)
        except _NOT_ANSWERING as exc:
            # asyncpg has terminated the connection already; the pool recovers by itself.
            log.warning("db.release_failed", error_type=type(exc).__name__)
        except Exception:
            log.exception("db.release_failed")

    async def _run_in_pool(self, query: str, args: Any = None) -> Any:
        connection = await self.acquire()
        try:
            response = await connection.fetch(query, *(args or []))
        except BaseException as exc:
            await self.give_back(connection, exc)
            raise
        await self.give_back(connection)
        return response

    async def run_querystring(self, querystring: Any, in_pool: bool = True) -> Any:
        with _unavailable_on_failure():
            return await super().run_querystring(querystring, in_pool=in_pool)

    async def run_ddl(self, ddl: str, in_pool: bool = True) -> Any:
        with _unavailable_on_failure():
            return await super().run_ddl(ddl, in_pool=in_pool)


def _is_broken(failure: BaseException) -> bool:
    return isinstance(failure, (DatabaseUnavailableError, asyncio.CancelledError, *_NOT_ANSWERING))


@contextlib.contextmanager
def _unavailable_on_failure() -> Iterator[None]:
    try:
        yield
    except DatabaseUnavailableError:
        raise
    except _NOT_ANSWERING as exc:
        _failed_at.set(time.monotonic())
        raise DatabaseUnavailableError(UNAVAILABLE) from exc


# When this task last met a database outage (a per-task context value: each request and each
# job runs in its own task, so one request's failure never makes another fail).
_failed_at: ContextVar[float | None] = ContextVar("db_failed_at", default=None)


def make_engine(dsn: str | None) -> Engine:
    return Engine(config={"dsn": dsn} if dsn else {})


def engine() -> Engine:
    from piccolo.engine.finder import engine_finder

    found = engine_finder()
    if not isinstance(found, Engine):
        raise RuntimeError("piccolo_conf.DB must be a core.db.Engine")
    return found


def configure(dsn: str) -> Engine:
    """Point the engine at `dsn` (before the pool starts); the DSN is known only at start-up."""
    db = engine()
    if db.pool is not None:
        raise RuntimeError("configure() must run before the connection pool starts")
    db.config = {"dsn": dsn}
    return db


async def open_pool(
    dsn: str, *, max_size: int = 10, command_timeout: float = COMMAND_TIMEOUT_S
) -> Engine:
    """Start the pool. `command_timeout` bounds each statement (raise it for batch work)."""
    db = engine()
    if db.pool is not None:
        return db
    configure(dsn)
    # min_size=0: the pool connects on first use, so a process starts while PostgreSQL is
    # down and reports it on /health instead of crashing (asyncpg's default minimum is 10).
    # pool_options(): a release resets the connection's session state (core/pool.py). The
    # timeouts go to the pool only, not to db.config: migrations open their own connections
    # and may run long statements.
    await db.start_connection_pool(
        min_size=0,
        max_size=max_size,
        timeout=CONNECT_TIMEOUT_S,
        command_timeout=command_timeout,
        # A statement the client gave up on keeps running on the server (holding its locks)
        # once its connection is dropped; the server stops it shortly after the client did.
        server_settings={"statement_timeout": str(int((command_timeout + 0.5) * 1000))},
        **pool_options(),
    )
    return db


async def close_pool() -> None:
    db = engine()
    if db.pool is not None:
        await db.close_connection_pool()
        db.pool = None


def in_transaction() -> bool:
    return engine().current_transaction.get() is not None


# ---------------------------------------------------------------- the unit of work


@dataclass
class _Unit:
    """What one top-level transaction collects: hooks after COMMIT, buffers flushed before."""

    connection: Any
    isolation: Isolation | None
    hooks: list[AfterCommit] = field(default_factory=list)
    buffers: dict[str, tuple[list[Any], Flush]] = field(default_factory=dict)

    def mark(self) -> tuple[int, dict[str, int]]:
        return len(self.hooks), {key: len(items) for key, (items, _) in self.buffers.items()}

    def rewind(self, mark: tuple[int, dict[str, int]]) -> None:
        """Forget what a rolled-back savepoint registered: its writes are gone, so are these."""
        hooks, lengths = mark
        del self.hooks[hooks:]
        for key, (items, _) in self.buffers.items():
            del items[lengths.get(key, 0) :]

    async def flush(self) -> None:
        for items, flush in self.buffers.values():
            if items:
                await flush(list(items))


_unit: ContextVar[_Unit | None] = ContextVar("unit_of_work", default=None)


@asynccontextmanager
async def transaction(
    *, savepoint: bool = False, isolation: Isolation | None = None
) -> AsyncIterator[None]:
    """Open the unit of work; a nested block joins the outer one.

    `savepoint=True` on a nested block runs it under a SAVEPOINT: an exception leaving the
    block undoes only its writes (and forgets its `on_commit` hooks and `pending` items), and
    the outer transaction can go on. `isolation` applies to the top-level block; a nested block
    may only repeat the outer level.
    """
    unit = _unit.get()
    if unit is not None:
        if isolation is not None and isolation != (unit.isolation or "read_committed"):
            raise RuntimeError(
                f"a nested transaction cannot change the isolation level to {isolation}"
            )
        if savepoint:
            async with _savepoint(unit):
                yield
        else:
            yield
        return
    if in_transaction():
        # A transaction opened with Piccolo's own engine.transaction() (migrations): join it.
        yield
        return
    async with _top_level(isolation):
        yield


@asynccontextmanager
async def _top_level(isolation: Isolation | None) -> AsyncIterator[None]:
    db = engine()
    connection = await db.acquire()
    xact = connection.transaction(isolation=isolation)
    try:
        with _unavailable_on_failure():
            await xact.start()  # BEGIN
    except BaseException as exc:  # a failed or cancelled BEGIN must not keep the connection
        await db.give_back(connection, exc)
        raise
    # Piccolo's transaction object, so every Piccolo query of this task runs on this connection.
    piccolo_tx = db.transaction()
    piccolo_tx.connection = connection
    piccolo_tx.transaction = xact
    piccolo_tx.context = db.current_transaction.set(piccolo_tx)
    unit = _Unit(connection=connection, isolation=isolation)
    unit_token = _unit.set(unit)
    failure: BaseException | None = None
    try:
        yield
        with _unavailable_on_failure():
            await unit.flush()
            await xact.commit()
    except BaseException as exc:
        failure = exc
        await _rollback(connection, xact, exc)
        raise
    finally:
        _unit.reset(unit_token)
        db.current_transaction.reset(piccolo_tx.context)
        await db.give_back(connection, failure)
    # Only reached when COMMIT succeeded. A failing hook cannot undo the commit: log it and go
    # on (the outbox sweeper re-enqueues jobs whose hook failed).
    for hook in unit.hooks:
        try:
            await hook()
        except Exception:
            log.exception("after_commit.failed", hook=getattr(hook, "__qualname__", repr(hook)))


async def _rollback(connection: Any, xact: Any, failure: BaseException) -> None:
    if _is_broken(failure):
        return  # the connection is dropped instead: the server rolls back when it notices
    if connection.is_in_transaction():  # not after a failed COMMIT, which ended it already
        try:
            await xact.rollback()
        except Exception as exc:  # the connection went away meanwhile; it is dropped below
            log.warning("db.rollback_failed", error_type=type(exc).__name__)


@asynccontextmanager
async def _savepoint(unit: _Unit) -> AsyncIterator[None]:
    # asyncpg nests a transaction started inside another as SAVEPOINT / RELEASE / ROLLBACK TO.
    nested = unit.connection.transaction()
    with _unavailable_on_failure():
        await nested.start()
    mark = unit.mark()
    try:
        yield
    except BaseException as exc:
        if not _is_broken(exc):
            with _unavailable_on_failure():
                await nested.rollback()
            unit.rewind(mark)
        raise
    with _unavailable_on_failure():
        await nested.commit()


def _open_unit(what: str) -> _Unit:
    unit = _unit.get()
    if unit is None:
        raise RuntimeError(f"{what} needs an open core.db.transaction()")
    return unit


def on_commit(hook: AfterCommit) -> None:
    _open_unit("on_commit()").hooks.append(hook)


def pending(key: str, flush: Flush) -> list[Any]:
    """The open unit's buffer named `key`; `flush(items)` writes them just before COMMIT.

    For writes that must come last in the transaction, such as rows behind a global lock that
    should be held for milliseconds rather than for the whole transaction. Buffers flush in
    the order they were first asked for; a rolled-back savepoint drops the items it added.
    """
    unit = _open_unit("pending()")
    if key not in unit.buffers:
        unit.buffers[key] = ([], flush)
    return unit.buffers[key][0]


async def run_in_transaction(
    work: Callable[[], Awaitable[T]],
    *,
    isolation: Isolation | None = None,
    retries: int = 3,
) -> T:
    """Run `work()` in its own unit of work at the edge; run it again, up to `retries` more
    times after a short jittered pause, when PostgreSQL aborts it for a serialisation failure
    (40001) or a deadlock (40P01).

    `work` must be safe to repeat: it runs from the start each time, and its on_commit hooks
    and pending items only count for the attempt that commits. After the last attempt the
    caller gets a 409 ConflictError with a sentence.
    """
    if _unit.get() is not None or in_transaction():
        raise RuntimeError("run_in_transaction() opens the unit of work: call it outside one")
    attempt = 0
    while True:
        try:
            async with transaction(isolation=isolation):
                return await work()
        except asyncpg.PostgresError as exc:
            if exc.sqlstate not in RETRYABLE_SQLSTATES:
                raise
            if attempt >= retries:
                raise ConflictError(
                    "This change collided with others made at the same moment; try again."
                ) from exc
            attempt += 1
            log.info("db.retry", sqlstate=exc.sqlstate, attempt=attempt)
            await asyncio.sleep(random.uniform(0.5, 1.5) * RETRY_BACKOFF_S * 2**attempt)


async def fetch(sql: str, *args: Any) -> list[dict[str, Any]]:
    """Raw SQL through Piccolo's engine, joining the open transaction if there is one.

    Placeholders are `{}` (Piccolo's QueryString), never interpolated values.
    """
    from piccolo.querystring import QueryString

    rows = await engine().run_querystring(QueryString(sql, *args))
    return [dict(row) for row in rows]


async def ping_database() -> None:
    """The health check's `SELECT 1`, bounded like every query; through the pool when it is
    open, released without a reset (nothing else ran on the connection, core/pool.py)."""
    db = _engine()
    if db.pool is None:
        await fetch("SELECT 1")
        return
    connection = await db.acquire()
    try:
        with _unavailable_on_failure():
            await connection.fetchval("SELECT 1")
    except BaseException as exc:
        await db.give_back(connection, exc)
        raise
    mark = getattr(connection, "mark_state_unchanged", None)
    if mark is not None:  # a pool opened without pool_options() has plain connections
        mark()
    await db.give_back(connection)


@cache
def _engine() -> Engine:
    # piccolo_conf.DB, one object for the process (its pool comes and goes, read each time);
    # looking it up costs more than the SELECT 1's Python.
    return engine()
