"""Jobs: enqueued only after COMMIT, backed by an outbox, run idempotently (rules 2 and 3).

    @job("fulfilment.plan_packout")
    async def plan_packout(shipment_id: int) -> None: ...

    async with db.transaction():
        ...change rows...
        await enqueue(plan_packout, shipment.id)     # outbox row now, Redis after COMMIT

A job carries ids only and has a deterministic job id (`name:[ids as JSON]` unless given), so
enqueueing the same work twice before it starts is a no-op; work enqueued while a run of it is
running gets a run of its own, which waits for the running one. arq delivers at least once;
the wrapper counts the attempt in its own short transaction before the body, returns quietly
when the work was already done, and marks it done in the same transaction as the work itself.

The job contract (docs/architecture.md, "Jobs"):
- every attempt counts, whatever ends it: an exception, a time-out or cancellation
  (`CancelledError` is not an `Exception`), a worker killed mid-run, arq refusing to run it
  (no worker serves its name, arq's own retry cap); after `max_attempts` (per job, default 5)
  the run is failed with its last (redacted) error and waits for a person;
- attempts below the limit are pushed again by the sweeper (about once a minute);
- jobs that talk to the outside world are declared `steps=True` and use `core.steps`: the
  wrapper holds no transaction around their body.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import traceback
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.constants import result_key_prefix, retry_key_prefix
from arq.cron import CronJob, cron
from arq.jobs import Job, JobStatus
from arq.worker import Function, JobExecutionFailed, Retry, func

from core import db
from core.clock import utcnow, wall_delay
from core.cron import LocalCronJob
from core.logging import get_logger, redact_text

log = get_logger(__name__)

Id = str | int
JobBody = Callable[..., Awaitable[Any]]

DEFAULT_MAX_ATTEMPTS = 5
# Room in arq's retry counter for waits behind an earlier run of the same work (each wait is
# a Retry of at most 30 s: about 16 hours). The attempt limit is ours (outbox_job.attempts),
# so arq's counter must never be what ends a run that is only waiting its turn.
WAIT_TRIES = 2000


@dataclass(frozen=True)
class JobDef:
    """A declared job: its arq function name and the coroutine arq calls with (ctx, *ids)."""

    name: str
    body: JobBody
    timeout: int
    # arq cron fields (second=, minute=, hour=, run_at_startup=, ...), declared on the job
    # itself so the worker finds every schedule through the contexts' jobs (no central table).
    # The fields mean the pharmacy's wall clock (core.cron).
    cron: Mapping[str, Any] | None = None
    # Attempts of one run before it is failed for a person to look at.
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    # True for a body that talks to the outside world in steps (core.steps): the wrapper then
    # opens no transaction around it.
    steps: bool = False

    def _runner(self) -> Callable[..., Awaitable[Any]]:
        async def run(ctx: dict[str, Any], *ids: Id) -> Any:
            return await _run(self, ctx, ids)

        run.__qualname__ = run.__name__ = self.name
        return run

    def arq_function(self) -> Function:
        # arq's own cap sits above ours: waits behind an earlier run of the same work (Retry)
        # use arq tries without being attempts. Reaching it anyway counts as an attempt.
        return func(
            self._runner(),
            name=self.name,
            timeout=self.timeout,
            max_tries=self.max_attempts + WAIT_TRIES,
        )

    def arq_cron(self) -> CronJob:
        """Its cron entry; `unique` stops two workers running the same tick twice; the fields
        are matched on the pharmacy's wall clock whatever the worker machine's zone."""
        if self.cron is None:
            raise ValueError(f"job {self.name!r} declares no cron schedule")
        # arq's cron default of one try would refuse a run of this job from the outbox the
        # moment it waits behind an earlier run (Retry); give it the same room as arq_function.
        fields = {"max_tries": self.max_attempts + WAIT_TRIES, **dict(self.cron)}
        base = cron(self._runner(), name=self.name, timeout=self.timeout, unique=True, **fields)
        return LocalCronJob(**{name: getattr(base, name) for name in base.__dataclass_fields__})


_registry: dict[str, JobDef] = {}


def job(
    name: str,
    *,
    timeout: int = 60,
    cron: Mapping[str, Any] | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    steps: bool = False,
) -> Callable[[JobBody], JobDef]:
    """Declare a job, its cron schedule if it has one, its attempt limit, and whether it talks
    to the outside world in steps. Short timeouts shorten recovery after a worker dies
    (STACK.md, arq)."""
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")

    def register(body: JobBody) -> JobDef:
        if name in _registry and _registry[name].body is not body:
            raise ValueError(f"job name {name!r} is declared twice")
        definition = JobDef(
            name=name,
            body=body,
            timeout=timeout,
            cron=cron,
            max_attempts=max_attempts,
            steps=steps,
        )
        _registry[name] = definition
        return definition

    return register


def registered_jobs() -> Mapping[str, JobDef]:
    """Every job declared in this process so far, by name (read-only).

    A process that enqueues or retries by name (the worker, `infusion jobs retry`) must first
    import every context's jobs, the same set the worker serves.
    """
    return MappingProxyType(_registry)


def attempt_limit(name: str) -> int:
    """The attempt limit of a job; the default for a name this process does not know."""
    definition = _registry.get(name)
    return definition.max_attempts if definition else DEFAULT_MAX_ATTEMPTS


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

    Returns the job id (`name:[ids as JSON]` unless given). While a run with that id has not
    started, enqueueing it again does nothing; once a run has started (or is done or failed),
    it runs again, after the earlier run.
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
    # Joining a pending run takes its row lock (DO UPDATE, not DO NOTHING) until this
    # transaction ends: the run's start (_begin, FOR UPDATE) waits for our COMMIT, so its body
    # sees what we wrote. If the run starts first, the row leaves the partial index and this
    # insert makes a new run, which runs after it.
    upserted = await db.fetch(
        "INSERT INTO outbox_job (job_id, function, args, created_at, run_at, attempts, requeues,"
        " last_error) VALUES ({}, {}, {}::jsonb, {}, {}, 0, 0, '')"
        " ON CONFLICT (job_id) WHERE started_at IS NULL AND done_at IS NULL AND failed_at IS NULL"
        " DO UPDATE SET job_id = EXCLUDED.job_id"
        " RETURNING id, (xmax = 0) AS inserted",
        job_id,
        name,
        json.dumps(list(ids)),
        now,
        run_at,
    )
    if upserted[0]["inserted"]:
        db.on_commit(functools.partial(_push, upserted[0]["id"], job_id, name, ids, run_at))
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
        _defer_by=wall_delay(run_at),
        _expires=ARQ_EXPIRES,
    )


# ---------------------------------------------------------------- running

# How long a time-out or cancellation may take to write its attempt down before giving up
# (the attempt was counted when it began; only its error text would be missing).
RECORD_FAILURE_TIMEOUT_S = 5.0


class JobAttemptFailed(RuntimeError):
    """What arq sees when a body raised: the redacted error text only, so neither arq's log
    nor its stored result quotes values from the database."""


def describe_error(exc: BaseException, definition: JobDef) -> str:
    """The redacted one-line-per-cause text kept in `last_error`."""
    if isinstance(exc, asyncio.CancelledError):
        return f"cancelled: ran past its {definition.timeout} s time-out, or the worker stopped"
    return redact_text("".join(traceback.format_exception_only(exc)).strip())[:2000]


_current_job: ContextVar[str | None] = ContextVar("current_job", default=None)


def current_job() -> str | None:
    """The name of the job this task is running (None outside a job)."""
    return _current_job.get()


async def _run(definition: JobDef, ctx: dict[str, Any], ids: tuple[Id, ...]) -> Any:
    # arq runs each job in a task of its own, so this is never seen by another job.
    _current_job.set(definition.name)
    row_id = outbox_row_of(ctx.get("job_id", ""))
    if row_id is None:
        # A cron tick (or a job pushed by hand): no outbox row to count attempts on.
        result = await _body(definition, ids, None)
        log.info("job.done", job=definition.name, row=None)
        return result
    if not await _begin(definition, row_id, ctx.get("job_try", 1)):
        return None
    try:
        result = await _body(definition, ids, row_id)
    except Retry:
        raise  # arq's "try again later"; the attempt was counted when it began
    except asyncio.CancelledError as exc:
        if _outage_cancel:
            # Our worker lost Redis and dropped its jobs (core.worker_runtime): the job did
            # not fail, so the attempt is given back; the sweeper pushes the run again.
            log.warning("job.interrupted_by_outage", job=definition.name, row=row_id)
            await _record_safely(definition, row_id, _attempt_interrupted(row_id))
            raise
        await _failed(definition, row_id, describe_error(exc, definition))
        raise
    except Exception as exc:
        error = describe_error(exc, definition)
        await _failed(definition, row_id, error, exc_info=True)
        raise JobAttemptFailed(error) from None
    log.info("job.done", job=definition.name, row=row_id)
    return result


async def _failed(definition: JobDef, row_id: int, error: str, *, exc_info: bool = False) -> None:
    # The traceback goes to the log too; the log's processors redact it like `error`.
    log.error("job.attempt_failed", job=definition.name, row=row_id, error=error, exc_info=exc_info)
    await _record_safely(definition, row_id, _attempt_failed(definition, row_id, error))


async def _record_safely(definition: JobDef, row_id: int, recording: Awaitable[None]) -> None:
    try:
        await asyncio.wait_for(recording, RECORD_FAILURE_TIMEOUT_S)
    except Exception:
        log.exception("job.attempt_not_recorded", job=definition.name, row=row_id)


async def _attempt_interrupted(row_id: int) -> None:
    async with db.transaction():
        await db.fetch(
            "UPDATE outbox_job SET attempts = GREATEST(attempts - 1, 0),"
            " last_error = 'interrupted: the worker lost Redis'"
            " WHERE id = {} AND done_at IS NULL AND failed_at IS NULL",
            row_id,
        )


# Set while this process's worker drops its running jobs because Redis went away.
_outage_cancel = False


@contextlib.contextmanager
def cancelling_for_outage() -> Iterator[None]:
    """Around cancelling a worker's jobs after losing Redis: those cancellations are not
    attempts (a short outage must not use up a job's attempt limit)."""
    global _outage_cancel
    _outage_cancel = True
    try:
        yield
    finally:
        _outage_cancel = False


async def _begin(definition: JobDef, row_id: int, job_try: int) -> bool:
    """Count the attempt in its own committed transaction, before the body runs, so a time-out,
    a cancellation or a killed worker still counts. False: do not run (done, failed, over the
    limit); raises Retry while an earlier run of the same work is unfinished."""
    async with db.transaction():
        rows = await db.fetch(
            "SELECT job_id, attempts, done_at, failed_at FROM outbox_job WHERE id = {} FOR UPDATE",
            row_id,
        )
        if not rows or rows[0]["done_at"] is not None or rows[0]["failed_at"] is not None:
            log.info("job.already_finished", job=definition.name, row=row_id)
            return False
        row = rows[0]
        earlier = await db.fetch(
            "SELECT id FROM outbox_job WHERE job_id = {} AND id < {} AND done_at IS NULL"
            " AND failed_at IS NULL ORDER BY id LIMIT 1",
            row["job_id"],
            row_id,
        )
        if earlier:
            # Work enqueued while an earlier run was running runs after it, not beside it.
            log.info("job.waits_for_earlier_run", job=definition.name, row=row_id)
            raise Retry(defer=min(2 ** max(job_try - 1, 0), 30))
        if row["attempts"] >= definition.max_attempts:
            # A worker killed mid-run, again and again: arq redelivers, the limit ends it.
            await db.fetch(
                "UPDATE outbox_job SET failed_at = {}, last_error = {} WHERE id = {}",
                utcnow(),
                f"gave up after {row['attempts']} attempts, the last one unfinished",
                row_id,
            )
            log.error("job.failed", job=definition.name, row=row_id, attempts=row["attempts"])
            return False
        await db.fetch(
            "UPDATE outbox_job SET attempts = attempts + 1, started_at = COALESCE(started_at, {})"
            " WHERE id = {}",
            utcnow(),
            row_id,
        )
    return True


async def _body(definition: JobDef, ids: tuple[Id, ...], row_id: int | None) -> Any:
    if definition.steps:
        # Step jobs commit their own steps (core.steps); only "done" is written here.
        result = await definition.body(*ids)
        if row_id is not None:
            async with db.transaction():
                await _mark_done(row_id)
        return result

    async def work() -> Any:
        # Lock the outbox row: a second delivery of the same run waits here, then sees
        # done_at and returns without doing the work again.
        if row_id is not None:
            rows = await db.fetch("SELECT done_at FROM outbox_job WHERE id = {} FOR UPDATE", row_id)
            if rows and rows[0]["done_at"] is not None:
                log.info("job.already_done", job=definition.name, row=row_id)
                return None
        result = await definition.body(*ids)
        if row_id is not None:
            await _mark_done(row_id)
        return result

    # The job wrapper is an edge: a serialisation failure or a deadlock (40001, 40P01) runs
    # the whole unit of work again, a few times, before it counts as a failed attempt.
    return await db.run_in_transaction(work)


async def _mark_done(row_id: int) -> None:
    await db.fetch(
        "UPDATE outbox_job SET done_at = {} WHERE id = {} AND done_at IS NULL", utcnow(), row_id
    )


async def _attempt_failed(definition: JobDef, row_id: int, error: str) -> None:
    async with db.transaction():
        rows = await db.fetch(
            "UPDATE outbox_job SET last_error = {},"
            " failed_at = CASE WHEN attempts >= {} THEN {}::timestamptz END"
            " WHERE id = {} AND done_at IS NULL AND failed_at IS NULL"
            " RETURNING failed_at IS NOT NULL AS failed, attempts",
            error,
            definition.max_attempts,
            utcnow(),
            row_id,
        )
    if rows and rows[0]["failed"]:
        log.error("job.failed", job=definition.name, row=row_id, attempts=rows[0]["attempts"])


# ---------------------------------------------------------------- the sweeper


@dataclass(frozen=True)
class SweepReport:
    checked: int
    requeued: int
    failed: int
    completed: int


SWEEP_BATCH = 500


async def sweep_outbox(*, older_than: timedelta = timedelta(seconds=30)) -> SweepReport:
    """Push again outbox runs that Redis lost or whose attempt ended below the limit; count
    arq's own refusals (no worker serves the name, its retry cap) as attempts.

    Looks at rows neither done nor failed, created more than `older_than` ago (so a job whose
    after-commit push is still on its way is left alone) and due by now, in pages of
    SWEEP_BATCH, so a backlog cannot hide newer lost jobs. Reading a page holds no lock; each
    row's change commits on its own, after that row's Redis calls.
    """
    now = utcnow()
    redis = pool()
    checked = requeued = failed = completed = 0
    after_id = 0
    while True:
        rows = await db.fetch(
            "SELECT id, job_id, function, args::text AS args, run_at FROM outbox_job"
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
        refusal = info.result if info is not None else None
        # arq refusing to run our code (no worker serves the name, its retry cap) is an
        # attempt too, or the run would be pushed again for ever.
        refused = isinstance(refusal, JobExecutionFailed) and str(refusal) != "job expired"
        if refused and await _count_refusal(row, redact_text(f"arq: {refusal}")):
            return "failed"
        # Otherwise our code ran and its attempt was counted (time-out, exception), or arq
        # let it expire unrun: the work is still owed, and arq's retry count starts again.
        # The page was read a moment ago: a run that a worker has since finished or failed
        # is left alone.
        if not await _still_owed(row["id"]):
            return "completed"
        await redis.delete(result_key_prefix + arq_id, retry_key_prefix + arq_id)
    elif status is not JobStatus.not_found:
        return "waiting"  # queued, deferred or in progress
    else:
        if not await _still_owed(row["id"]):
            return "completed"
        await redis.delete(retry_key_prefix + arq_id)
    await redis.enqueue_job(
        row["function"],
        *json.loads(row["args"]),
        _job_id=arq_id,
        _defer_by=wall_delay(row["run_at"]),
        _expires=ARQ_EXPIRES,
    )
    async with db.transaction():
        await db.fetch(
            "UPDATE outbox_job SET requeues = requeues + 1, enqueued_at = {} WHERE id = {}",
            utcnow(),
            row["id"],
        )
    log.warning("outbox.requeued", job_id=row["job_id"], row=row["id"])
    return "requeued"


async def _still_owed(row_id: int) -> bool:
    rows = await db.fetch(
        "SELECT 1 FROM outbox_job WHERE id = {} AND done_at IS NULL AND failed_at IS NULL", row_id
    )
    return bool(rows)


async def _count_refusal(row: dict[str, Any], error: str) -> bool:
    """Count arq's refusal as an attempt; True when that reached the job's limit."""
    async with db.transaction():
        updated = await db.fetch(
            "UPDATE outbox_job SET attempts = attempts + 1, last_error = {},"
            " failed_at = CASE WHEN attempts + 1 >= {} THEN {}::timestamptz END"
            " WHERE id = {} AND done_at IS NULL AND failed_at IS NULL"
            " RETURNING failed_at IS NOT NULL AS failed",
            error,
            attempt_limit(row["function"]),
            utcnow(),
            row["id"],
        )
    if updated and updated[0]["failed"]:
        log.error("job.failed", job_id=row["job_id"], row=row["id"], error=error)
        return True
    return False


# ---------------------------------------------------------------- people looking at jobs


async def list_jobs(*, failed_only: bool = False, limit: int = 50) -> list[dict[str, Any]]:
    from core.tables import OutboxJob

    query = OutboxJob.select(
        OutboxJob.id,
        OutboxJob.job_id,
        OutboxJob.function,
        OutboxJob.created_at,
        OutboxJob.started_at,
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
    if row["function"] not in registered_jobs():
        # The caller loads every context's jobs first (the worker's set); a name missing then
        # is a job that was removed from the code.
        raise ConflictError(f"Job run {row_id} is for {row['function']!r}, which no longer exists.")
    pending = await db.fetch(
        "SELECT id FROM outbox_job WHERE job_id = {} AND started_at IS NULL"
        " AND done_at IS NULL AND failed_at IS NULL",
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
