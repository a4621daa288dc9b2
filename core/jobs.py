"""Jobs of the shared kernel: the outbox sweeper, every minute and at worker start."""

from __future__ import annotations

from core.queue import job, sweep_outbox


@job("core.sweep_outbox", timeout=120, cron={"second": 0, "run_at_startup": True})
async def sweep_outbox_job() -> None:
    # The sweeper pushes to Redis inside its transaction: the rows it pushes were committed
    # long ago, and a repeated push of the same job id is refused by arq.
    await sweep_outbox()


JOBS = [sweep_outbox_job]
CRON = [sweep_outbox_job.arq_cron()]
