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

import asyncio
import functools
import json
import traceback
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.constants import result_key_prefix
from arq.cron import CronJob, cron
from arq.jobs import Job, JobStatus
from arq.worker import Function, Retry, func

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
    # arq cron fields (second=, minute=, hour=, run_at_startup=, ...), declared on the job
    # itself so the worker finds every schedule through the contexts' jobs (no central table).
    cron: Mapping[str, Any] | None = None

    def _runner(self) -> Callable[..., Awaitable[Any]]:
        async def run(ctx: dict[str, Any], *ids: Id) -> Any:
            return await _run(self, ctx, ids)

        run.__qualname__ = run.__name__ = self.name
        return run

    def arq_function(self) -> Function:
        return func(self._runner(), name=self.name, timeout=self.timeout)

    def arq_cron(self) -> CronJob:
        """Its cron entry; `unique` stops two workers running the same tick twice."""
        if self.cron is None:
            raise ValueError(f"job {self.name!r} declares no cron schedule")
        return cron(
            self._runner(), name=self.name, timeout=self.timeout, unique=True, **dict(self.cron)
        )


_registry: dict[str, JobDef] = {}


def job(
    name: str, *, timeout: int = 60, cron: Mapping[str, Any] | None = None
) -> Callable[[JobBody], JobDef]:
    """Declare a job, and its cron schedule if it has one. Short timeouts shorten recovery
    after a worker dies (STACK.md, arq)."""

    def register(body: JobBody) -> JobDef:
        if name in _registry and _registry[name].body is not body:
            raise ValueError(f"job name {name!r} is declared twice")
        definition = JobDef(name=name, body=body, timeout=timeout, cron=cron)
        _registry[name] = definition
        return definition

    return register


def default_job_id(name: str, ids: tuple[Id, ...]) -> str:
    # JSON keeps ("a:b",) apart from ("a", "b") and 1 apart from "1".
    return f"{name}:{json.dumps(list(ids), separators=(',', ':'))}" if ids else name


# ---------------------------------------------------------------- the arq pool of this process

_pool: ArqRedis | None = None


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

# arq drops a job that has not started this long after its due time (its default is a day);
# the outbox is the record of what must run, so give Redis a long leash and let the sweeper
# recover anything older.
ARQ_EXPIRES = timedelta(days=30)
# After COMMIT the request is still waiting: a stalled Redis must not hold it. The sweeper
# pushes whatever this gave up on.
PUSH_TIMEOUT_S = 2.0


def _check_ids(ids: tuple[Any, ...]) -> tuple[Id, ...]:
    for value in ids:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise TypeError(f"jobs carry ids (str or int), not {type(value).__name__}")
    return ids


def arq_job_id(row_id: int, job_id: str) -> str:
    """The id arq knows a run by: the work's id plus the outbox row, so the same work can run
    again once an earlier run is done."""
    return f"{job_id}#{row_id}"


def outbox_row_of(arq_id: str) -> int | None:
    _, sep, row = arq_id.rpartition("#")
    return int(row) if sep and row.isdigit() else None


async def enqueue(
    target: JobDef | str, *ids: Id, job_id: str | None = None, defer_by: timedelta | None = None
) -> str:
    """Write the job to the outbox in the open transaction; push it to Redis after COMMIT.

    Returns the job id (`name:[ids as JSON]` unless given). While a job with that id is
    pending, enqueueing it again does nothing; once it is done or failed, it runs again.
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
        " ON CONFLICT (job_id) WHERE done_at IS NULL AND failed_at IS NULL DO NOTHING"
        " RETURNING id",
        job_id,
        name,
        json.dumps(list(ids)),
        now,
        run_at,
    )
    if inserted:
        db.on_commit(functools.partial(_push, inserted[0]["id"], job_id, name, ids, run_at))
    return job_id


async def _push(row_id: int, job_id: str, name: str, ids: tuple[Id, ...], run_at: datetime) -> None:
    """After COMMIT: hand the job to arq and stamp the outbox row (best effort; the sweeper
    covers a failure or a time-out here)."""
    try:
        await asyncio.wait_for(_send(row_id, job_id, name, ids, run_at), PUSH_TIMEOUT_S)
    except TimeoutError:
        log.warning("outbox.push_timeout", job_id=job_id)
        return
    await db.fetch(
        "UPDATE outbox_job SET enqueued_at = {} WHERE id = {} AND enqueued_at IS NULL",
        utcnow(),
        row_id,
    )


async def _send(row_id: int, job_id: str, name: str, ids: Any, run_at: datetime) -> None:
    await pool().enqueue_job(
        name,
        *ids,
        _job_id=arq_job_id(row_id, job_id),
        _defer_until=max(run_at, utcnow()),
        _expires=ARQ_EXPIRES,
    )


# ---------------------------------------------------------------- running


async def _run(definition: JobDef, ctx: dict[str, Any], ids: tuple[Id, ...]) -> Any:
    row_id = outbox_row_of(ctx.get("job_id", ""))
    try:
        async with db.transaction():
            # Lock the outbox row: a second delivery of the same run waits here, then sees
            # done_at and returns without doing the work again.
            rows = (
                await db.fetch("SELECT done_at FROM outbox_job WHERE id = {} FOR UPDATE", row_id)
                if row_id is not None
                else []
            )
            if rows and rows[0]["done_at"] is not None:
                log.info("job.already_done", job=definition.name, row=row_id)
                return None
            result = await definition.body(*ids)
            if rows:
                await db.fetch("UPDATE outbox_job SET done_at = {} WHERE id = {}", utcnow(), row_id)
    except Retry:
        raise  # arq's own "try again later": not a failure
    except Exception as exc:
        log.exception("job.failed", job=definition.name, row=row_id)
        if row_id is not None:
            async with db.transaction():
                await db.fetch(
                    "UPDATE outbox_job SET attempts = attempts + 1, last_error = {} WHERE id = {}",
                    "".join(traceback.format_exception_only(exc)).strip()[:2000],
                    row_id,
                )
        raise
    log.info("job.done", job=definition.name, row=row_id)
    return result


# ---------------------------------------------------------------- the sweeper


@dataclass(frozen=True)
class SweepReport:
    checked: int
    requeued: int
    failed: int
    completed: int


SWEEP_BATCH = 500


async def sweep_outbox(*, older_than: timedelta = timedelta(seconds=30)) -> SweepReport:
    """Re-enqueue outbox jobs that Redis lost; mark those that ran and failed as failed.

    Looks at rows neither done nor failed, created more than `older_than` ago (so a job whose
    after-commit push is still on its way is left alone) and due by now, in pages of
    SWEEP_BATCH, so a backlog cannot hide newer lost jobs.
    """
    now = utcnow()
    redis = pool()
    checked = requeued = failed = completed = 0
    after_id = 0
    while True:
        rows = await db.fetch(
            "SELECT id, job_id, function, args::text AS args, run_at, attempts FROM outbox_job"
            " WHERE done_at IS NULL AND failed_at IS NULL AND created_at <= {} AND run_at <= {}"
            " AND id > {} ORDER BY id LIMIT {}",
            now - older_than,
            now,
            after_id,
            SWEEP_BATCH,
        )
        if not rows:
            break
        after_id = rows[-1]["id"]
        for row in rows:
            checked += 1
            outcome = await _sweep_one(redis, row)
            requeued += outcome == "requeued"
            failed += outcome == "failed"
            completed += outcome == "completed"
    return SweepReport(checked=checked, requeued=requeued, failed=failed, completed=completed)


async def _sweep_one(redis: ArqRedis, row: dict[str, Any]) -> str:
    arq_id = arq_job_id(row["id"], row["job_id"])
    job = Job(arq_id, redis)
    status = await job.status()
    if status is JobStatus.complete:
        info = await job.result_info()
        if info is not None and info.success:
            return "completed"
        if row["attempts"] > 0:
            # Our wrapper ran it and it raised: a person decides (`infusion jobs retry`).
            await db.fetch(
                "UPDATE outbox_job SET failed_at = {} WHERE id = {} AND done_at IS NULL",
                utcnow(),
                row["id"],
            )
            return "failed"
        # arq gave up without running our code (expired in the queue): the work is still owed.
        await redis.delete(result_key_prefix + arq_id)
    elif status is not JobStatus.not_found:
        return "waiting"  # queued, deferred or in progress
    await redis.enqueue_job(
        row["function"],
        *json.loads(row["args"]),
        _job_id=arq_id,
        _defer_until=max(row["run_at"], utcnow()),
        _expires=ARQ_EXPIRES,
    )
    await db.fetch(
        "UPDATE outbox_job SET requeues = requeues + 1, enqueued_at = {} WHERE id = {}",
        utcnow(),
        row["id"],
    )
    log.warning("outbox.requeued", job_id=row["job_id"], row=row["id"])
    return "requeued"


# ---------------------------------------------------------------- people looking at jobs


async def list_jobs(*, failed_only: bool = False, limit: int = 50) -> list[dict[str, Any]]:
    from core.tables import OutboxJob

    query = OutboxJob.select(
        OutboxJob.id,
        OutboxJob.job_id,
        OutboxJob.function,
        OutboxJob.created_at,
        OutboxJob.done_at,
        OutboxJob.failed_at,
        OutboxJob.attempts,
        OutboxJob.requeues,
        OutboxJob.last_error,
    )
    if failed_only:
        query = query.where(OutboxJob.failed_at.is_not_null())
    return await query.order_by(OutboxJob.id, ascending=False).limit(limit)


async def retry_failed(row_id: int, *, actor: str) -> str:
    """Run a failed job again, as a new run of the same work; the failed row stays as history.

    Returns the job id. Raises NotFoundError / ConflictError with a sentence.
    """
    from core.audit.services import record
    from core.errors import ConflictError, NotFoundError

    rows = await db.fetch(
        "SELECT job_id, function, args::text AS args, failed_at FROM outbox_job"
        " WHERE id = {} FOR UPDATE",
        row_id,
    )
    if not rows:
        raise NotFoundError(f"There is no job run {row_id}.")
    row = rows[0]
    if row["failed_at"] is None:
        raise ConflictError(f"Job run {row_id} has not failed; only failed runs can be retried.")
    if row["function"] not in _registry:
        raise ConflictError(f"Job run {row_id} is for {row['function']!r}, which no longer exists.")
    pending = await db.fetch(
        "SELECT id FROM outbox_job WHERE job_id = {} AND done_at IS NULL AND failed_at IS NULL",
        row["job_id"],
    )
    if pending:
        raise ConflictError(f"{row['job_id']} is already waiting to run (run {pending[0]['id']}).")
    job_id = await enqueue(row["function"], *json.loads(row["args"]), job_id=row["job_id"])
    await record(
        actor=actor,
        action="job.retried",
        subject_type="outbox_job",
        subject_id=row_id,
        after={"job_id": job_id},
    )
    return job_id
