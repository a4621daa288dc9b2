"""Jobs are enqueued after COMMIT only, run exactly once, and survive Redis losing them."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus

from core import db, queue
from core.queue import arq_job_id, enqueue, job, sweep_outbox


@job("tests.record_run")
async def record_run(key: str) -> None:
    await db.fetch("INSERT INTO test_job_run (job_key) VALUES ({})", key)


@job("tests.always_fails", max_attempts=2)
async def always_fails(key: str) -> None:
    raise ValueError(f"refused {key}")


@pytest.fixture(autouse=True)
async def probe_table(clean_state):
    await db.fetch(
        "CREATE TABLE IF NOT EXISTS test_job_run (id serial PRIMARY KEY, job_key text NOT NULL)"
    )
    await db.fetch("TRUNCATE test_job_run")


async def runs() -> list[str]:
    return [r["job_key"] for r in await db.fetch("SELECT job_key FROM test_job_run ORDER BY id")]


async def arq_id(job_id: str) -> str:
    [row] = await db.fetch(
        "SELECT id FROM outbox_job WHERE job_id = {} ORDER BY id DESC LIMIT 1", job_id
    )
    return arq_job_id(row["id"], job_id)


async def outbox() -> list[dict]:
    return await db.fetch(
        "SELECT job_id, function, args::text AS args, enqueued_at IS NOT NULL AS enqueued,"
        " done_at IS NOT NULL AS done, failed_at IS NOT NULL AS failed, attempts, requeues"
        " FROM outbox_job ORDER BY id"
    )


@pytest.fixture
def worker(run_worker):
    async def run():
        return await run_worker(functions=[record_run.arq_function(), always_fails.arq_function()])

    return run


async def test_job_enqueued_in_rolled_back_transaction_never_runs(worker, redis):
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with db.transaction():
            await enqueue(record_run, "a")
            raise Boom

    assert await outbox() == []
    assert await redis.zcard("arq:queue") == 0
    ran = await worker()
    assert ran.jobs_complete == 0
    assert await runs() == []


async def test_job_enqueued_in_committed_transaction_runs_exactly_once(worker, redis):
    async with db.transaction():
        job_id = await enqueue(record_run, "b")
        # Nothing reaches Redis before COMMIT.
        assert await redis.zcard("arq:queue") == 0

    assert job_id == 'tests.record_run:["b"]'
    assert await redis.zcard("arq:queue") == 1
    ran = await worker()
    assert (ran.jobs_complete, ran.jobs_failed) == (1, 0)
    assert await runs() == ["b"]
    assert await outbox() == [
        {
            "job_id": 'tests.record_run:["b"]',
            "function": "tests.record_run",
            "args": '["b"]',
            "enqueued": True,
            "done": True,
            "failed": False,
            "attempts": 1,
            "requeues": 0,
        }
    ]
    # A second worker pass finds nothing; the sweeper leaves a done job alone.
    await worker()
    report = await sweep_outbox(older_than=timedelta(0))
    assert report.checked == 0
    assert await runs() == ["b"]


async def test_enqueueing_the_same_work_twice_is_one_job(worker):
    async with db.transaction():
        await enqueue(record_run, "c")
        await enqueue(record_run, "c")
    async with db.transaction():
        await enqueue(record_run, "c")
    await worker()
    assert await runs() == ["c"]
    assert len(await outbox()) == 1


async def test_job_removed_from_redis_is_requeued_by_sweeper_and_runs_once(worker, redis):
    async with db.transaction():
        job_id = await enqueue(record_run, "d")
    # Redis loses the job before any worker ran it (a restart without persistence).
    run_id = await arq_id(job_id)
    await redis.delete(f"arq:job:{run_id}")
    await redis.zrem("arq:queue", run_id)
    assert await Job(run_id, queue.pool()).status() is JobStatus.not_found
    assert (await worker()).jobs_complete == 0
    assert await runs() == []

    # Younger than the grace period: the after-commit push may still be on its way.
    assert (await sweep_outbox()).requeued == 0
    async with db.transaction():
        report = await sweep_outbox(older_than=timedelta(0))
    assert (report.checked, report.requeued) == (1, 1)
    ran = await worker()
    assert ran.jobs_complete == 1
    assert await runs() == ["d"]
    [row] = await outbox()
    assert (row["done"], row["requeues"]) == (True, 1)
    # Sweeping again finds nothing left to do.
    assert (await sweep_outbox(older_than=timedelta(0))).checked == 0
    await worker()
    assert await runs() == ["d"]


async def test_a_second_delivery_of_a_done_job_does_not_repeat_the_work(worker, redis):
    async with db.transaction():
        job_id = await enqueue(record_run, "e")
    await worker()
    # arq delivers at least once: simulate the redelivery of a job that already ran.
    run_id = await arq_id(job_id)
    await redis.delete(f"arq:result:{run_id}")
    await queue.pool().enqueue_job("tests.record_run", "e", _job_id=run_id)
    ran = await worker()
    assert ran.jobs_complete == 1
    assert await runs() == ["e"]


async def test_a_failing_job_is_tried_again_up_to_its_limit_then_failed(worker):
    async with db.transaction():
        await enqueue(always_fails, "f")
    ran = await worker()
    assert ran.jobs_failed == 1
    [row] = await outbox()
    assert (row["done"], row["failed"], row["attempts"]) == (False, False, 1)
    # Below the limit (2): the sweeper pushes it again.
    report = await sweep_outbox(older_than=timedelta(0))
    assert (report.failed, report.requeued) == (0, 1)
    assert (await worker()).jobs_failed == 1
    [row] = await outbox()
    assert (row["failed"], row["attempts"], row["requeues"]) == (True, 2, 1)
    last_error = (await db.fetch("SELECT last_error FROM outbox_job"))[0]["last_error"]
    assert last_error == "ValueError: refused f"
    # Failed runs are never pushed again.
    assert (await sweep_outbox(older_than=timedelta(0))).checked == 0
    assert await queue.pool().zcard("arq:queue") == 0


async def test_enqueue_refuses_rows_and_calls_outside_a_transaction():
    with pytest.raises(RuntimeError, match=r"inside core\.db\.transaction"):
        await enqueue(record_run, "g")
    async with db.transaction():
        with pytest.raises(TypeError, match="jobs carry ids"):
            await enqueue(record_run, {"id": 1})  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="unknown job"):
            await enqueue("tests.no_such_job", 1)
    assert await outbox() == []


async def test_the_same_work_runs_again_once_the_earlier_run_is_done(worker):
    async with db.transaction():
        await enqueue(record_run, "again")
    await worker()
    async with db.transaction():
        await enqueue(record_run, "again")
        await enqueue(record_run, "again")  # still pending: no second row
    await worker()
    assert await runs() == ["again", "again"]
    assert [r["done"] for r in await outbox()] == [True, True]


async def test_job_ids_keep_look_alike_arguments_apart(worker):
    async with db.transaction():
        first = await enqueue(record_run, "a:b")
        second = await enqueue(record_run, 1)
        third = await enqueue(record_run, "1")
    assert (first, second, third) == (
        'tests.record_run:["a:b"]',
        "tests.record_run:[1]",
        'tests.record_run:["1"]',
    )
    assert len(await outbox()) == 3


async def test_a_job_arq_let_expire_is_pushed_again_and_runs(worker, redis):
    async with db.transaction():
        job_id = await enqueue(record_run, "late")
    run_id = await arq_id(job_id)
    # Replace the queued job with one whose expiry has passed (workers were down too long).
    await redis.delete(f"arq:job:{run_id}")
    await redis.zrem("arq:queue", run_id)
    await queue.pool().enqueue_job(
        "tests.record_run", "late", _job_id=run_id, _expires=timedelta(milliseconds=1)
    )
    await asyncio.sleep(0.05)
    ran = await worker()
    assert (ran.jobs_complete, ran.jobs_failed) == (0, 1)  # arq: "job expired", our code never ran
    assert await runs() == []

    report = await sweep_outbox(older_than=timedelta(0))
    assert (report.requeued, report.failed) == (1, 0)
    await worker()
    assert await runs() == ["late"]
    [row] = await outbox()
    assert (row["done"], row["failed"], row["requeues"]) == (True, False, 1)


async def test_a_stalled_redis_does_not_hold_the_request_after_commit(worker, redis):
    # A real server that accepts connections and never answers.
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    stalled = ArqRedis(host="127.0.0.1", port=port)
    real = queue.pool()
    queue.attach(stalled)
    try:
        started = time.monotonic()
        async with db.transaction():
            job_id = await enqueue(record_run, "stall")
        elapsed = time.monotonic() - started
    finally:
        queue.attach(real)
        await stalled.aclose(close_connection_pool=True)
        server.close()
    assert queue.PUSH_TIMEOUT_S <= elapsed < queue.PUSH_TIMEOUT_S + 1.5
    [row] = await outbox()
    assert (row["job_id"], row["enqueued"]) == (job_id, False)
    # The sweeper pushes what the stalled push gave up on.
    assert (await sweep_outbox(older_than=timedelta(0))).requeued == 1
    await worker()
    assert await runs() == ["stall"]


async def test_the_sweeper_pages_through_a_backlog(worker, redis, monkeypatch):
    monkeypatch.setattr(queue, "SWEEP_BATCH", 2)
    async with db.transaction():
        for key in ("p1", "p2", "p3", "p4", "p5"):
            await enqueue(record_run, key)
    for row in await db.fetch("SELECT id, job_id FROM outbox_job"):
        run_id = arq_job_id(row["id"], row["job_id"])
        await redis.delete(f"arq:job:{run_id}")
        await redis.zrem("arq:queue", run_id)
    report = await sweep_outbox(older_than=timedelta(0))
    assert (report.checked, report.requeued) == (5, 5)
    await worker()
    assert sorted(await runs()) == ["p1", "p2", "p3", "p4", "p5"]


async def test_a_deferred_job_waits_in_redis_and_is_not_swept_before_it_is_due(redis):
    async with db.transaction():
        job_id = await enqueue(record_run, "later", defer_by=timedelta(hours=2))
    report = await sweep_outbox(older_than=timedelta(0))
    assert report.checked == 0
    # arq holds it until its time (a burst worker would wait for it, so none is run here).
    score_ms = await redis.zscore("arq:queue", await arq_id(job_id))
    [row] = await db.fetch("SELECT run_at FROM outbox_job")
    # arq is handed the delay, measured on its own clock: a few ms of drift at most.
    assert abs(score_ms - row["run_at"].timestamp() * 1000) <= 50
    assert await runs() == []
