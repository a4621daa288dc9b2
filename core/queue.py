"""Jobs: enqueued only after COMMIT, backed by an outbox, run idempotently (rules 2 and 3).

    @job("fulfilment.plan_packout")
    async def plan_packout(shipment_id: int) -> None: ...

    async with db.transaction():
        ...change rows...
        await enqueue(plan_packout, shipment.id)     # outbox row now, Redis after COMMIT

A job carries ids only and has a deterministic job id (`function:arg:arg` unless given), so
enqueueing the same work twice is a no-op. arq delivers at least once; the wrapper locks the
outbox row and returns quietly when the work was already done, and marks it done in the same
transaction as the work itself.
"""

from __future__ import annotations

import functools
import json
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.cron import CronJob, cron
from arq.jobs import Job, JobStatus
from arq.worker import Function, func

from core import db
from core.clock import utcnow
from core.logging import get_logger

log = get_logger(__name__)

Id = str | int
JobBody = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class JobDef:
    """A declared job: its arq function name and the coroutine arq calls with (ctx, *ids)."""

    name: str
    body: JobBody
    timeout: int

    def _runner(self) -> Callable[..., Awaitable[Any]]:
        async def run(ctx: dict[str, Any], *ids: Id) -> Any:
            return await _run(self, ctx, ids)

        run.__qualname__ = run.__name__ = self.name
        return run

    def arq_function(self) -> Function:
        return func(self._runner(), name=self.name, timeout=self.timeout)

    def arq_cron(self, **schedule: Any) -> CronJob:
        """A cron entry; `unique` stops two workers running the same tick twice."""
        return cron(self._runner(), name=self.name, timeout=self.timeout, unique=True, **schedule)


_registry: dict[str, JobDef] = {}


def job(name: str, *, timeout: int = 60) -> Callable[[JobBody], JobDef]:
    """Declare a job. Short timeouts shorten recovery after a worker dies (STACK.md, arq)."""

    def register(body: JobBody) -> JobDef:
        if name in _registry and _registry[name].body is not body:
            raise ValueError(f"job name {name!r} is declared twice")
        definition = JobDef(name=name, body=body, timeout=timeout)
        _registry[name] = definition
        return definition

    return register


def registered_jobs() -> dict[str, JobDef]:
    return dict(_registry)


def default_job_id(name: str, ids: tuple[Id, ...]) -> str:
    return ":".join([name, *(str(i) for i in ids)])


# ---------------------------------------------------------------- the arq pool of this process

_pool: ArqRedis | None = None
DEFAULT_QUEUE: Final = "arq:queue"


def redis_settings(url: str) -> RedisSettings:
    return RedisSettings.from_dsn(url)


async def connect(url: str) -> ArqRedis:
    global _pool
    if _pool is None:
        _pool = await create_pool(redis_settings(url))
    return _pool


def attach(pool: ArqRedis) -> None:
    """Use an existing pool (the worker's own connection)."""
    global _pool
    _pool = pool


async def disconnect() -> None:
    global _pool
    if _pool is not None:
        await _pool.aclose()
        _pool = None


def pool() -> ArqRedis:
    if _pool is None:
        raise RuntimeError("core.queue.connect() has not been called in this process")
    return _pool


# ---------------------------------------------------------------- enqueue


def _check_ids(ids: tuple[Any, ...]) -> tuple[Id, ...]:
    for value in ids:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise TypeError(f"jobs carry ids (str or int), not {type(value).__name__}")
    return ids


async def enqueue(
    target: JobDef | str, *ids: Id, job_id: str | None = None, defer_by: timedelta | None = None
) -> str:
    """Write the job to the outbox in the open transaction; push it to Redis after COMMIT.

    Returns the job id. Enqueueing a job id that is already in the outbox does nothing.
    """
    name = target.name if isinstance(target, JobDef) else target
    if name not in _registry:
        raise ValueError(f"unknown job {name!r}")
    if not db.in_transaction():
        raise RuntimeError("enqueue() must run inside core.db.transaction()")
    _check_ids(ids)
    job_id = job_id or default_job_id(name, ids)
    now = utcnow()
    run_at = now + (defer_by or timedelta(0))
    inserted = await db.fetch(
        "INSERT INTO outbox_job (job_id, function, args, created_at, run_at, attempts, requeues,"
        " last_error) VALUES ({}, {}, {}::jsonb, {}, {}, 0, 0, '')"
        " ON CONFLICT (job_id) DO NOTHING RETURNING id",
        job_id,
        name,
        json.dumps(list(ids)),
        now,
        run_at,
    )
    if inserted:
        db.on_commit(functools.partial(_push, job_id, name, ids, run_at))
    return job_id


async def _push(job_id: str, name: str, ids: tuple[Id, ...], run_at: datetime) -> None:
    """After COMMIT: hand the job to arq and stamp the outbox row (best effort; the sweeper
    covers a failure here)."""
    await pool().enqueue_job(name, *ids, _job_id=job_id, _defer_until=run_at)
    await db.fetch(
        "UPDATE outbox_job SET enqueued_at = {} WHERE job_id = {} AND enqueued_at IS NULL",
        utcnow(),
        job_id,
    )


# ---------------------------------------------------------------- running


async def _run(definition: JobDef, ctx: dict[str, Any], ids: tuple[Id, ...]) -> Any:
    job_id = ctx.get("job_id", "")
    try:
        async with db.transaction():
            # Lock the outbox row: a second delivery of the same job waits here, then sees
            # done_at and returns without doing the work again.
            rows = await db.fetch(
                "SELECT done_at FROM outbox_job WHERE job_id = {} FOR UPDATE", job_id
            )
            if rows and rows[0]["done_at"] is not None:
                log.info("job.already_done", job=definition.name, job_id=job_id)
                return None
            result = await definition.body(*ids)
            if rows:
                await db.fetch(
                    "UPDATE outbox_job SET done_at = {} WHERE job_id = {}", utcnow(), job_id
                )
    except Exception as exc:
        log.exception("job.failed", job=definition.name, job_id=job_id)
        async with db.transaction():
            await db.fetch(
                "UPDATE outbox_job SET attempts = attempts + 1, last_error = {} WHERE job_id = {}",
                "".join(traceback.format_exception_only(exc)).strip()[:2000],
                job_id,
            )
        raise
    log.info("job.done", job=definition.name, job_id=job_id)
    return result


# ---------------------------------------------------------------- the sweeper


@dataclass(frozen=True)
class SweepReport:
    checked: int
    requeued: int
    failed: int
    completed: int


async def sweep_outbox(
    *, older_than: timedelta = timedelta(seconds=30), limit: int = 500
) -> SweepReport:
    """Re-enqueue outbox jobs that Redis lost; mark those arq gave up on as failed.

    Only rows older than `older_than` are looked at, so a job whose after-commit push is still
    on its way is not pushed twice (a second push with the same job id is refused by arq anyway).
    """
    cutoff = utcnow() - older_than
    rows = await db.fetch(
        "SELECT job_id, function, args, run_at FROM outbox_job"
        " WHERE done_at IS NULL AND failed_at IS NULL AND created_at <= {}"
        " ORDER BY id LIMIT {}",
        cutoff,
        limit,
    )
    redis = pool()
    requeued = failed = completed = 0
    for row in rows:
        job_id = row["job_id"]
        status = await Job(job_id, redis).status()
        if status is JobStatus.not_found:
            args = json.loads(row["args"]) if isinstance(row["args"], str) else row["args"]
            await redis.enqueue_job(
                row["function"], *args, _job_id=job_id, _defer_until=row["run_at"]
            )
            await db.fetch(
                "UPDATE outbox_job SET requeues = requeues + 1, enqueued_at = {} WHERE job_id = {}",
                utcnow(),
                job_id,
            )
            log.warning("outbox.requeued", job_id=job_id)
            requeued += 1
        elif status is JobStatus.complete:
            info = await Job(job_id, redis).result_info()
            if info is not None and not info.success:
                await db.fetch(
                    "UPDATE outbox_job SET failed_at = {} WHERE job_id = {} AND done_at IS NULL",
                    utcnow(),
                    job_id,
                )
                failed += 1
            else:
                completed += 1
    return SweepReport(checked=len(rows), requeued=requeued, failed=failed, completed=completed)
