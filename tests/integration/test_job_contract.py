"""The job contract on real PostgreSQL, Redis and arq workers: every attempt counts, a run
ends failed at its limit and is never pushed again, work enqueued during a run runs again
after it, a step job killed between its claim and its record calls outside exactly once, and
exception text never quotes stored values."""

from __future__ import annotations

import asyncio
import contextvars
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest

from core import db, queue
from core.clock import FixedClock, set_clock
from core.queue import arq_job_id, enqueue, sweep_outbox
from tests.integration import contract_jobs
from tests.integration.contract_jobs import (
    bad_value,
    blocks,
    carrier_calls,
    collides_once,
    counts_written,
    purchase,
    sleeps,
    slow_record,
    unserved,
)
from tests.integration.test_jobs_command import jobs_cli
from tests.integration.test_queue import record_run
from tests.servers import ROOT


@pytest.fixture(autouse=True)
async def probe_table(clean_state, tmp_path, monkeypatch):
    await db.fetch(
        "CREATE TABLE IF NOT EXISTS test_job_run (id serial PRIMARY KEY, job_key text NOT NULL)"
    )
    await db.fetch("TRUNCATE test_job_run")
    monkeypatch.setenv("STEP_DIR", str(tmp_path))
    contract_jobs.SLOW["on"] = True
    contract_jobs.COLLISION_CALLS.clear()


async def runs() -> list[str]:
    return [r["job_key"] for r in await db.fetch("SELECT job_key FROM test_job_run ORDER BY id")]


async def rows() -> list[dict]:
    return await db.fetch(
        "SELECT id, job_id, attempts, requeues, started_at IS NOT NULL AS started,"
        " done_at IS NOT NULL AS done, failed_at IS NOT NULL AS failed, last_error"
        " FROM outbox_job ORDER BY id"
    )


def arq_id_of(row: dict) -> str:
    return arq_job_id(row["id"], row["job_id"])


@pytest.fixture
def worker(run_worker):
    async def run(*jobs):
        served = jobs or (sleeps, slow_record, record_run, purchase, bad_value)
        return await run_worker(functions=[j.arq_function() for j in served])

    return run


def contract_worker(*args: str, **popen: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integration.contract_worker", *args],
        cwd=ROOT,
        env=dict(os.environ),
        text=True,
        **popen,  # type: ignore[call-overload]
    )


async def test_a_job_that_times_out_counts_attempts_ends_failed_and_is_not_pushed_again(worker):
    async with db.transaction():
        await enqueue(sleeps, "t")
    ran = await worker()
    assert (ran.jobs_complete, ran.jobs_failed) == (0, 1)
    [row] = await rows()
    cancelled = "cancelled: ran past its 1 s time-out, or the worker stopped"
    assert (row["attempts"], row["started"], row["failed"], row["last_error"]) == (
        1,
        True,
        False,
        cancelled,
    )
    # Attempt 2 of 2: the sweeper pushes it again, arq's result and retry count reset.
    report = await sweep_outbox(older_than=timedelta(0))
    assert (report.requeued, report.failed) == (1, 0)
    assert (await worker()).jobs_failed == 1
    [row] = await rows()
    assert (row["attempts"], row["requeues"], row["failed"], row["last_error"]) == (
        2,
        1,
        True,
        cancelled,
    )
    # Failed: never pushed again, and listed for a person.
    assert (await sweep_outbox(older_than=timedelta(0))).checked == 0
    assert await queue.pool().zcard("arq:queue") == 0
    listed = await asyncio.to_thread(jobs_cli, "list", "--failed")
    assert listed.returncode == 0, listed.stderr
    assert 'tests.contract.sleeps:["t"]' in listed.stdout
    assert "failed" in listed.stdout
    assert cancelled in listed.stdout
    # And it does not block the same work enqueued again.
    contract_jobs.SLOW["on"] = False
    async with db.transaction():
        await enqueue(sleeps, "t")
    assert (await worker()).jobs_complete == 1
    assert await runs() == ["t"]
    assert [(r["done"], r["failed"]) for r in await rows()] == [(False, True), (True, False)]


async def test_work_enqueued_while_its_run_is_running_runs_again_after_it(worker):
    async with db.transaction():
        await enqueue(slow_record, "w")
    running = asyncio.create_task(worker())
    deadline = time.monotonic() + 10
    while not (await db.fetch("SELECT 1 FROM outbox_job WHERE started_at IS NOT NULL")):
        assert time.monotonic() < deadline, "the first run never started"
        await asyncio.sleep(0.02)
    async with db.transaction():
        await enqueue(slow_record, "w")  # the first run has started: a run of its own
        await enqueue(slow_record, "w")  # the second has not: nothing more
    await running
    assert await runs() == ["w", "w"]
    first, second = await db.fetch(
        "SELECT job_id, started_at, done_at, attempts FROM outbox_job ORDER BY id"
    )
    assert first["job_id"] == second["job_id"] == 'tests.contract.slow_record:["w"]'
    assert (first["attempts"], second["attempts"]) == (1, 1)  # waiting is not an attempt
    assert second["started_at"] >= first["done_at"]  # after it, not beside it


async def test_a_job_name_no_worker_serves_counts_attempts_until_failed(worker):
    async with db.transaction():
        await enqueue(unserved, "u")
    for attempt in (1, 2):
        ran = await worker(record_run)  # this worker does not serve tests.contract.unserved
        assert ran.jobs_failed == 1
        report = await sweep_outbox(older_than=timedelta(0))
        [row] = await rows()
        assert row["attempts"] == attempt
        assert row["last_error"] == "arq: function 'tests.contract.unserved' not found"
        assert (report.requeued, report.failed, row["failed"]) == (
            (1, 0, False) if attempt == 1 else (0, 1, True)
        )
    assert await queue.pool().zcard("arq:queue") == 0


async def test_arqs_retry_cap_counts_an_attempt_and_the_sweeper_resets_arqs_counter(worker, redis):
    async with db.transaction():
        await enqueue(record_run, "cap")
    [row] = await rows()
    # arq has already tried this job more often than it allows (a worker killed repeatedly).
    await redis.set(f"arq:retry:{arq_id_of(row)}", 10_000)
    assert (await worker()).jobs_failed == 1
    assert await runs() == []
    assert (await sweep_outbox(older_than=timedelta(0))).requeued == 1
    [row] = await rows()
    assert (row["attempts"], row["last_error"]) == (1, "arq: max 2005 retries exceeded")
    assert await redis.get(f"arq:retry:{arq_id_of(row)}") is None
    assert (await worker()).jobs_complete == 1
    assert await runs() == ["cap"]
    [row] = await rows()
    assert (row["done"], row["attempts"]) == (True, 2)


async def test_a_run_at_its_limit_after_unfinished_attempts_is_failed_without_running(worker):
    async with db.transaction():
        await enqueue(record_run, "killed")
    # Five attempts began and none finished (the worker was killed each time).
    await db.fetch("UPDATE outbox_job SET attempts = 5, started_at = created_at")
    [row] = await rows()
    await queue.pool().enqueue_job(record_run.name, "killed", _job_id=arq_id_of(row))
    await worker()
    assert await runs() == []
    [row] = await rows()
    assert (row["failed"], row["attempts"], row["last_error"]) == (
        True,
        5,
        "gave up after 5 attempts, the last one unfinished",
    )


async def test_a_deferred_job_waits_its_delay_in_real_time_under_an_injected_clock(redis):
    # A FixedClock months in the past: arq must not run the job at once; one years ahead: it
    # must not wait years.
    for clock in (FixedClock(), FixedClock(FixedClock().current + timedelta(days=3650))):
        previous = set_clock(clock)
        try:
            async with db.transaction():
                job_id = await enqueue(record_run, str(clock.current), defer_by=timedelta(hours=2))
        finally:
            set_clock(previous)
        [row] = await db.fetch("SELECT id FROM outbox_job WHERE job_id = {}", job_id)
        score_ms = await redis.zscore("arq:queue", arq_job_id(row["id"], job_id))
        assert abs(score_ms - (time.time() + 7200) * 1000) < 5000


async def test_a_step_job_killed_between_claim_and_record_calls_outside_exactly_once(
    worker, tmp_path
):
    async with db.transaction():
        await enqueue(purchase, "s1")
    (tmp_path / "pause").write_text("")
    process = contract_worker(purchase.name, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "reached").exists():
            assert process.poll() is None, "the worker exited"
            assert time.monotonic() < deadline, "the job never reached its outside call"
            await asyncio.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=10)
    assert carrier_calls() == ["purchase:s1 R1"]
    claim_row = await db.fetch("SELECT claims, recorded_at IS NOT NULL AS recorded FROM job_claim")
    assert claim_row == [{"claims": 1, "recorded": False}]  # the claim survived the crash
    (tmp_path / "pause").unlink()

    # arq runs the job again once the dead worker's hold expires (timeout 3 s + 10 s).
    ran = await worker(purchase)
    assert (ran.jobs_complete, ran.jobs_failed) == (1, 0)
    assert carrier_calls() == ["purchase:s1 R1"]  # reconciled, not bought again
    assert await runs() == ["R1"]
    claim_row = await db.fetch(
        "SELECT key, job, claims, recorded_at IS NOT NULL AS recorded, result::text AS result"
        " FROM job_claim"
    )
    assert claim_row == [
        {
            "key": "purchase:s1",
            "job": "tests.contract.purchase",
            "claims": 2,
            "recorded": True,
            "result": '{"receipt": "R1"}',
        }
    ]
    [row] = await rows()
    assert (row["done"], row["attempts"]) == (True, 2)


async def test_exception_text_quoting_a_value_is_redacted_in_logs_and_last_error():
    secret = "Jane-Doe-1970"
    async with db.transaction():
        [stored] = await db.fetch(
            "INSERT INTO test_job_run (job_key) VALUES ({}) RETURNING id", secret
        )
        await enqueue(bad_value, stored["id"])
    process = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tests.integration.contract_worker", "--burst"],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert process.returncode == 0, process.stderr
    logs = process.stdout + process.stderr
    assert "invalid input syntax for type integer" in logs  # the failure was logged
    assert '"exception": "Traceback' in logs  # with its traceback, redacted too
    assert secret not in logs
    [row] = await rows()
    assert row["failed"] is True
    assert row["last_error"] == (
        "asyncpg.exceptions.InvalidTextRepresentationError:"
        ' invalid input syntax for type integer: "[redacted]"'
    )


async def test_a_failed_run_of_a_real_job_is_retried_from_the_cli_and_runs():
    [row] = await db.fetch(
        "INSERT INTO outbox_job (job_id, function, args, created_at, run_at, started_at,"
        " failed_at, attempts, requeues, last_error) VALUES ('core.sweep_outbox',"
        " 'core.sweep_outbox', '[]', now(), now(), now(), now(), 5, 0, 'boom') RETURNING id"
    )
    result = await asyncio.to_thread(jobs_cli, "retry", str(row["id"]))
    assert (result.returncode, result.stdout.strip()) == (0, "queued core.sweep_outbox again")
    ran = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "api", "worker", "--burst"],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr
    assert await db.fetch(
        "SELECT failed_at IS NOT NULL AS failed, done_at IS NOT NULL AS done FROM outbox_job"
        " ORDER BY id"
    ) == [{"failed": True, "done": False}, {"failed": False, "done": True}]


async def test_a_cron_entry_fires_at_pharmacy_local_time_whatever_the_worker_zone(
    clean_state, redis
):
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from arq.connections import create_pool
    from arq.worker import Worker

    from core.clock import set_local_zone
    from core.queue import JobDef

    async def tick() -> None:
        await db.fetch("INSERT INTO test_job_run (job_key) VALUES ({})", f"tick {time.time()}")

    # Kiritimati is UTC+14: its wall clock reads 14 hours ahead of the worker's (UTC).
    pharmacy = ZoneInfo("Pacific/Kiritimati")
    previous = set_local_zone(pharmacy)
    try:
        # A worker that comes up after the due second (a loaded machine) schedules the entry
        # for tomorrow, which proves nothing either way: arm it again, a bounded number of times.
        for _ in range(3):
            # Connected first, so the worker's start is only its first poll.
            pool = await create_pool(queue.redis_settings(clean_state.redis_url or ""))
            due = (datetime.now(UTC) + timedelta(seconds=3)).astimezone(pharmacy)
            fields = {"hour": due.hour, "minute": due.minute, "second": due.second}
            entry = JobDef(name="tests.contract.tick", body=tick, timeout=5, cron=fields).arq_cron()
            worker = Worker(
                cron_jobs=[entry],
                redis_pool=pool,
                poll_delay=0.05,
                handle_signals=False,
                timezone=UTC,
            )
            task = asyncio.create_task(worker.main())
            try:
                deadline = time.monotonic() + 15
                while entry.next_run is None:  # the worker's first poll computes it
                    assert not task.done(), task.exception()
                    assert time.monotonic() < deadline, "the worker never polled"
                    await asyncio.sleep(0.01)
                # arq fires at .123456 of the matching second (its cron default).
                expected = due.replace(microsecond=123_456).astimezone(UTC)
                if entry.next_run == expected + timedelta(days=1):
                    continue  # came up too late for today's second
                # The local fields name that instant, 14 hours from the worker's own clock.
                assert entry.next_run == expected
                while not (ran := await runs()):
                    assert not task.done(), task.exception()
                    assert time.monotonic() < deadline, f"no tick at {fields} in {pharmacy}"
                    await asyncio.sleep(0.05)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                await worker.close()
            break
        else:
            pytest.fail("the worker never came up before the due second (3 tries)")
    finally:
        set_local_zone(previous)
    [tick_run] = ran
    fired = datetime.fromtimestamp(float(tick_run.removeprefix("tick ")), UTC)
    # The body ran at that local second (plus arq's 0.123456 s and its polling), not before.
    assert timedelta(0) <= fired - due.replace(microsecond=0) < timedelta(seconds=2)
    assert entry.next_run - expected == timedelta(days=1)  # next: tomorrow, same local time


async def test_the_sweeper_holds_no_transaction_or_row_lock_while_it_waits_on_redis(redis):
    from datetime import UTC, datetime

    from arq.connections import ArqRedis

    from core.jobs import sweep_outbox_job

    async with db.transaction():
        await enqueue(record_run, "stalled")
    # A Redis that accepts connections and never answers: the sweep waits on its first call.
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    stalled = ArqRedis(host="127.0.0.1", port=server.sockets[0].getsockname()[1])
    real = queue.pool()
    queue.attach(stalled)
    previous = set_clock(FixedClock(datetime.now(UTC) + timedelta(minutes=1)))  # row is due
    run = sweep_outbox_job._runner()
    sweeping = asyncio.create_task(run({"job_id": "cron:core.sweep_outbox:1"}))
    try:
        await asyncio.sleep(0.5)
        assert not sweeping.done()
        waiting = await db.fetch(
            "SELECT state FROM pg_stat_activity WHERE datname = current_database()"
            " AND state LIKE 'idle in transaction%'"
        )
        assert waiting == []
        async with db.transaction():
            locked = await db.fetch("SELECT id FROM outbox_job FOR UPDATE NOWAIT")
        assert len(locked) == 1
    finally:
        sweeping.cancel()
        await asyncio.gather(sweeping, return_exceptions=True)
        set_clock(previous)
        queue.attach(real)
        await stalled.aclose(close_connection_pool=True)
        server.close()


# ---------------------------------------------------------------- review fixes


async def lock_waiters() -> list[dict]:
    # Within a transaction, pg_stat_activity is read once and cached: read it afresh.
    await db.fetch("SELECT pg_stat_clear_snapshot()")
    return await db.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        " AND wait_event_type = 'Lock'"
    )


async def test_a_run_starting_while_its_work_is_enqueued_again_waits_for_that_commit(worker):
    async with db.transaction():
        await enqueue(counts_written, "x")  # run 1, pending and pushed to Redis
    # The worker's tasks must not inherit the transaction below (core.db keeps it in a
    # context variable).
    outside = contextvars.copy_context()
    async with db.transaction():
        await db.fetch("INSERT INTO test_job_run (job_key) VALUES ('written')")
        await enqueue(counts_written, "x")  # joins run 1: no new run
        running = asyncio.create_task(worker(counts_written), context=outside)
        deadline = time.monotonic() + 10
        # Hold COMMIT until the run has begun and waits on run 1's row (or, if it does not
        # wait, has finished without what this transaction wrote).
        while not await lock_waiters() and not running.done():
            assert time.monotonic() < deadline, "the run never started"
            await asyncio.sleep(0.02)
        # Still waiting a moment later (this pool's 2 s statement limit bounds the moment).
        await asyncio.sleep(0.7)
        waited = not running.done()
    ran = await running
    assert (ran.jobs_complete, ran.jobs_failed) == (1, 0)
    # It saw this transaction's row: nothing enqueued here was lost.
    assert await runs() == ["written", "x saw 1"]
    assert waited
    [row] = await rows()
    assert (row["job_id"], row["done"], row["attempts"], row["requeues"]) == (
        'tests.contract.counts_written:["x"]',
        True,
        1,
        0,
    )


async def begin_blocked_run(row: dict) -> asyncio.Task:
    """Run outbox row `row` of `sleeps` (10 s) through the job wrapper, as a worker does, and
    return once its attempt is counted and its body is sleeping."""
    [before] = [r["attempts"] for r in await rows() if r["id"] == row["id"]]
    ctx = {"job_id": arq_id_of(row), "job_try": 1}
    task = asyncio.create_task(queue._run(sleeps, ctx, ("o",)))
    deadline = time.monotonic() + 10
    while [r["attempts"] for r in await rows() if r["id"] == row["id"]] != [before + 1]:
        assert not task.done(), task.exception()
        assert time.monotonic() < deadline, "the attempt never began"
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)  # inside the body's sleep
    return task


async def test_a_run_cancelled_because_the_worker_lost_redis_gets_its_attempt_back():
    async with db.transaction():
        await enqueue(sleeps, "o")  # 2 attempts allowed
    await db.fetch("UPDATE outbox_job SET attempts = 1")  # one already used up
    [row] = await rows()
    task = await begin_blocked_run(row)
    with queue.cancelling_for_outage():  # what core.worker_runtime does on losing Redis
        task.cancel()
        await asyncio.wait([task], timeout=10)
    assert task.cancelled()
    [row] = await rows()
    assert (row["attempts"], row["failed"], row["done"], row["last_error"]) == (
        1,
        False,
        False,
        "interrupted: the worker lost Redis",
    )
    assert await runs() == []

    # Pushed again, an ordinary cancellation (a time-out, a worker stopping) still counts:
    # attempt 2 of 2, failed.
    task = await begin_blocked_run(row)
    task.cancel()
    await asyncio.wait([task], timeout=10)
    assert task.cancelled()
    [row] = await rows()
    assert (row["attempts"], row["failed"], row["last_error"]) == (
        2,
        True,
        "cancelled: ran past its 1 s time-out, or the worker stopped",
    )


async def test_a_supervised_worker_that_loses_redis_mid_run_gives_the_attempt_back(tmp_path):
    from arq.connections import RedisSettings, create_pool
    from arq.worker import Worker

    from core.worker_runtime import WorkerSupervisor
    from tests.api.test_health import RedisProcess

    private = RedisProcess(tmp_path)  # a private server to stop, never the shared one
    private.start()
    async with db.transaction():
        await enqueue(blocks, "b")  # also pushed to the shared Redis, which no worker serves
    [row] = await rows()
    pusher = await create_pool(RedisSettings(port=private.port))
    await pusher.enqueue_job(blocks.name, "b", _job_id=arq_id_of(row))
    await pusher.aclose()

    def make_worker(pool):
        return Worker(
            functions=[blocks.arq_function()],
            redis_pool=pool,
            poll_delay=0.05,
            handle_signals=False,
        )

    supervisor = WorkerSupervisor(make_worker, RedisSettings(port=private.port))
    supervising = asyncio.create_task(supervisor.run())
    try:
        deadline = time.monotonic() + 15
        while (await rows())[0]["attempts"] != 1:
            assert not supervising.done(), supervising.exception()
            assert time.monotonic() < deadline, "the run never began"
            await asyncio.sleep(0.05)
        private.stop()  # mid-run
        while (await rows())[0]["last_error"] == "":
            assert not supervising.done(), supervising.exception()
            assert time.monotonic() < deadline + 15, "the dropped run was never recorded"
            await asyncio.sleep(0.05)
    finally:
        supervisor.stop()
        await asyncio.wait_for(supervising, 30)
        private.stop()
    [row] = await rows()
    assert (row["attempts"], row["failed"], row["done"], row["last_error"]) == (
        0,
        False,
        False,
        "interrupted: the worker lost Redis",
    )
    assert await runs() == []


SWEEP_PAGE = (
    "SELECT id, job_id, function, args::text AS args, run_at FROM outbox_job"
    " WHERE done_at IS NULL AND failed_at IS NULL ORDER BY id"
)


@pytest.mark.parametrize("finished", ["done_at", "failed_at"])
@pytest.mark.parametrize("arq_holds", ["nothing", "a failed attempt"])
async def test_the_sweeper_does_not_push_a_run_that_finished_after_it_read_its_page(
    worker, redis, finished, arq_holds
):
    async with db.transaction():
        await enqueue(sleeps, "swept")
    if arq_holds == "nothing":
        await redis.flushdb()  # Redis lost the job
    else:
        assert (await worker(sleeps)).jobs_failed == 1  # timed out: attempt 1 of 2
    [page_row] = await db.fetch(SWEEP_PAGE)
    # Meanwhile a worker finishes the run (or fails it for good).
    await db.fetch(f"UPDATE outbox_job SET {finished} = now() WHERE id = {{}}", page_row["id"])
    assert await queue._sweep_one(queue.pool(), page_row) == "completed"
    [row] = await rows()
    assert row["requeues"] == 0
    assert await redis.zcard("arq:queue") == 0


async def test_a_job_body_hitting_a_serialisation_failure_runs_again_within_one_attempt(worker):
    async with db.transaction():
        await enqueue(collides_once, "c")
    ran = await worker(collides_once)
    assert (ran.jobs_complete, ran.jobs_failed) == (1, 0)
    assert contract_jobs.COLLISION_CALLS == {"c": 2}
    assert await runs() == ["c call 2"]  # the first call's insert was rolled back
    [row] = await rows()
    assert (row["done"], row["failed"], row["attempts"], row["last_error"]) == (True, False, 1, "")
