"""`infusion worker` runs every domain's jobs: an outbox job is picked up by the real command."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from core import db
from core.jobs import sweep_outbox_job
from core.queue import enqueue
from tests.servers import ROOT


async def test_worker_command_runs_an_enqueued_job_and_marks_it_done():
    async with db.transaction():
        job_id = await enqueue(sweep_outbox_job)
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "api", "worker", "--burst"],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    rows = await db.fetch(
        "SELECT job_id, done_at IS NOT NULL AS done, attempts FROM outbox_job ORDER BY id"
    )
    assert rows == [{"job_id": job_id, "done": True, "attempts": 1}]
    assert job_id == "core.sweep_outbox"
