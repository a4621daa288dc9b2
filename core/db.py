"""The database engine, the connection pool and the unit of work.

Architecture rule 1: the edge (a request handler or a job) opens the transaction with
`transaction()`; services run inside it and never commit. Work that must only happen once the
data is durable (enqueueing a job, notifying a browser) is registered with `on_commit()` and runs
after COMMIT, or never if the transaction rolls back.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from functools import cache
from typing import Any

from piccolo.engine.postgres import PostgresEngine

from core.logging import get_logger
from core.pool import pool_options, select_one

log = get_logger(__name__)

AfterCommit = Callable[[], Awaitable[Any]]
_after_commit: ContextVar[list[AfterCommit] | None] = ContextVar("after_commit", default=None)


class Engine(PostgresEngine):
    """PostgresEngine that does not connect when it is constructed.

    Piccolo's engine checks the server version at import of piccolo_conf, which would make
    `infusion --help` hang on an unreachable server. `/health` and `infusion migrate` check the
    server instead.
    """

    async def check_version(self) -> None:
        return None

    async def prep_database(self) -> None:
        return None


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


async def open_pool(dsn: str, *, max_size: int = 10) -> Engine:
    db = engine()
    if db.pool is not None:
        return db
    configure(dsn)
    # min_size=0: the pool connects on first use, so a process starts while PostgreSQL is
    # down and reports it on /health instead of crashing (asyncpg's default minimum is 10).
    # pool_options(): a release resets the connection's session state (core/pool.py).
    await db.start_connection_pool(min_size=0, max_size=max_size, **pool_options())
    return db


async def close_pool() -> None:
    db = engine()
    if db.pool is not None:
        await db.close_connection_pool()
        db.pool = None


def in_transaction() -> bool:
    return engine().current_transaction.get() is not None


@asynccontextmanager
async def transaction() -> AsyncIterator[None]:
    """Open the unit of work; join the outer one when already inside a transaction."""
    if in_transaction():
        yield
        return
    db = engine()
    tx = db.transaction()
    await tx.__aenter__()  # takes a connection, BEGIN, marks this task as in the transaction
    hooks: list[AfterCommit] = []
    token = _after_commit.set(hooks)
    try:
        yield
        await tx.commit()
    except BaseException:
        if not tx._committed:
            # After a failed COMMIT (deferred constraint, serialisation failure) or a broken
            # connection, ROLLBACK may fail too; the connection is released below either way.
            with contextlib.suppress(Exception):
                await tx.rollback()
        raise
    finally:
        _after_commit.reset(token)
        # Piccolo's own __aexit__ skips these two when COMMIT raises, which leaks the pooled
        # connection and leaves the task "inside" a dead transaction: always do both here.
        db.current_transaction.reset(tx.context)
        await _release(db, tx.connection)
    # Only reached when COMMIT succeeded. A failing hook cannot undo the commit: log it and go
    # on (the outbox sweeper re-enqueues jobs whose hook failed).
    for hook in hooks:
        try:
            await hook()
        except Exception:
            log.exception("after_commit.failed", hook=getattr(hook, "__qualname__", repr(hook)))


async def _release(db: Engine, connection: Any) -> None:
    try:
        if db.pool is not None:
            await db.pool.release(connection)
        else:
            await connection.close()
    except Exception:
        log.exception("db.release_failed")


def on_commit(hook: AfterCommit) -> None:
    hooks = _after_commit.get()
    if hooks is None:
        raise RuntimeError("on_commit() needs an open core.db.transaction()")
    hooks.append(hook)


async def fetch(sql: str, *args: Any) -> list[dict[str, Any]]:
    """Raw SQL through Piccolo's engine, joining the open transaction if there is one.

    Placeholders are `{}` (Piccolo's QueryString), never interpolated values.
    """
    from piccolo.querystring import QueryString

    rows = await engine().run_querystring(QueryString(sql, *args))
    return [dict(row) for row in rows]


async def ping_database() -> None:
    """The health check's `SELECT 1`: through the pool when it is open (released without a
    reset, core/pool.py), else as any query."""
    pool = _engine().pool
    if pool is None:
        await fetch("SELECT 1")
    else:
        await select_one(pool)


@cache
def _engine() -> Engine:
    # piccolo_conf.DB, one object for the process (its pool comes and goes, read each time);
    # looking it up costs more than the SELECT 1's Python.
    return engine()
