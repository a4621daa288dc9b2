"""Jobs of the shared kernel: the outbox sweeper, every minute and at worker start."""

from __future__ import annotations

from core.queue import job, sweep_outbox


# steps=True: no transaction around the sweep. It commits each row on its own after that
# row's Redis calls, so it never holds row locks while waiting on Redis.
@job("core.sweep_outbox", timeout=120, cron={"second": 0, "run_at_startup": True}, steps=True)
async def sweep_outbox_job() -> None:
    await sweep_outbox()


JOBS = [sweep_outbox_job]
