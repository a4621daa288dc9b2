"""The job contract on real PostgreSQL, Redis and arq workers: every attempt counts, a run
ends failed at its limit and is never pushed again, work enqueued during a run runs again
after it, a step job killed between its claim and its record calls outside exactly once, and
exception text never quotes stored values."""

from __future__ import annotations

import asyncio
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
    carrier_calls,
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

    from arq.worker import Worker

    from core.clock import set_local_zone
    from core.queue import JobDef

    async def tick() -> None:
        await db.fetch("INSERT INTO test_job_run (job_key) VALUES ('tick')")

    # Kiritimati is UTC+14: its wall clock reads 14 hours ahead of the worker's (UTC).
    pharmacy = ZoneInfo("Pacific/Kiritimati")
    due = (datetime.now(UTC) + timedelta(seconds=5)).astimezone(pharmacy)
    fields = {"hour": due.hour, "minute": due.minute, "second": due.second}
    entry = JobDef(name="tests.contract.tick", body=tick, timeout=5, cron=fields).arq_cron()
    previous = set_local_zone(pharmacy)
    worker = Worker(
        cron_jobs=[entry],
        redis_settings=queue.redis_settings(clean_state.redis_url or ""),
        poll_delay=0.05,
        handle_signals=False,
        timezone=UTC,
    )
    task = asyncio.create_task(worker.main())
    try:
        deadline = time.monotonic() + 15
        while await runs() != ["tick"]:
            assert not task.done(), task.exception()
            assert time.monotonic() < deadline, f"no tick at {fields} in {pharmacy}"
            await asyncio.sleep(0.05)
        fired = datetime.now(UTC).astimezone(pharmacy)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await worker.close()
        set_local_zone(previous)
    # Fired at that local second (plus arq's 0.123456 s and this loop's polling).
    assert timedelta(0) <= fired - due.replace(microsecond=0) < timedelta(seconds=2)
    assert entry.next_run is not None
    assert entry.next_run - due.astimezone(UTC) > timedelta(hours=23)  # next: tomorrow


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
