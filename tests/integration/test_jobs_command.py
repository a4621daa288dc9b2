"""Failed jobs are listed and can be retried by a person, as a new run of the same work."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import timedelta

import pytest

from core import db
from core.errors import ConflictError, NotFoundError
from core.queue import enqueue, retry_failed, sweep_outbox
from tests.integration.test_queue import always_fails, record_run
from tests.servers import ROOT


def jobs_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api", "jobs", *args],
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def worker(run_worker):
    async def run():
        return await run_worker(functions=[record_run.arq_function(), always_fails.arq_function()])

    return run


async def failed_run(worker) -> int:
    async with db.transaction():
        await enqueue(always_fails, "x")
    await worker()
    await sweep_outbox(older_than=timedelta(0))  # pushes attempt 2 of 2
    await worker()
    [row] = await db.fetch("SELECT id FROM outbox_job WHERE failed_at IS NOT NULL")
    return row["id"]


async def test_a_failed_run_is_listed_and_retried_as_a_new_run(worker):
    run = await failed_run(worker)
    listed = await asyncio.to_thread(jobs_cli, "list", "--failed")
    assert listed.returncode == 0
    assert 'tests.always_fails:["x"]' in listed.stdout
    assert "ValueError: refused x" in listed.stdout

    async with db.transaction():
        job_id = await retry_failed(run, actor="user:1")
    assert job_id == 'tests.always_fails:["x"]'
    rows = await db.fetch(
        "SELECT id, failed_at IS NOT NULL AS failed, done_at IS NOT NULL AS done FROM outbox_job"
        " ORDER BY id"
    )
    assert rows == [
        {"id": run, "failed": True, "done": False},
        {"id": run + 1, "failed": False, "done": False},
    ]
    audit = await db.fetch("SELECT actor, action, subject_id FROM audit_event")
    assert audit == [{"actor": "user:1", "action": "job.retried", "subject_id": str(run)}]
    assert (await worker()).jobs_failed == 1  # it fails again: the retry really ran


async def test_only_failed_runs_can_be_retried_and_only_once_at_a_time(worker):
    run = await failed_run(worker)
    async with db.transaction():
        await retry_failed(run, actor="user:1")
    with pytest.raises(ConflictError, match="already waiting to run"):
        async with db.transaction():
            await retry_failed(run, actor="user:1")
    with pytest.raises(ConflictError, match="has not failed"):
        async with db.transaction():
            await retry_failed(run + 1, actor="user:1")
    with pytest.raises(NotFoundError, match="There is no job run 999"):
        async with db.transaction():
            await retry_failed(999, actor="user:1")
    assert len(await db.fetch("SELECT id FROM outbox_job")) == 2
    assert len(await db.fetch("SELECT seq FROM audit_event")) == 1


async def test_cli_retry_of_an_unknown_run_exits_1_with_a_sentence():
    result = await asyncio.to_thread(jobs_cli, "retry", "999")
    assert (result.returncode, result.stderr.strip()) == (1, "error: There is no job run 999.")
