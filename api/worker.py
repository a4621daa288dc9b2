"""arq worker settings: every domain's JOBS and CRON (the composition root of the job side)."""

from __future__ import annotations

from typing import Any

from core import db, queue
from core.queue import JobDef
from core.settings import Settings


def domain_jobs() -> tuple[list[JobDef], list[Any]]:
    import coldchain.jobs
    import core.audit.jobs
    import core.jobs
    import fulfilment.jobs
    import printing.jobs

    modules = [core.jobs, core.audit.jobs, fulfilment.jobs, coldchain.jobs, printing.jobs]
    jobs = [j for m in modules for j in m.JOBS]
    crons = [c for m in modules for c in m.CRON]
    return jobs, crons


def worker_kwargs(
    settings: Settings, *, manage_resources: bool = True, **overrides: Any
) -> dict[str, Any]:
    """Keyword arguments for `arq.worker.Worker`.

    `manage_resources=False` when the caller (`infusion dev`, a test) has already opened the
    database pool and the queue connection in this process.
    """
    jobs, crons = domain_jobs()
    cron_names = {c.name for c in crons}

    async def on_startup(ctx: dict[str, Any]) -> None:
        if manage_resources:
            await db.open_pool(settings.database_url or "", max_size=10)
            queue.attach(ctx["redis"])

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        if manage_resources:
            await db.close_pool()

    kwargs: dict[str, Any] = {
        # A cron job is also callable by name; listing it twice would clash in arq.
        "functions": [j.arq_function() for j in jobs if j.name not in cron_names],
        "cron_jobs": crons,
        "redis_settings": queue.redis_settings(settings.redis_url or ""),
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "max_jobs": 10,
        "keep_result": 3600,
        # Longest job timeout + 10 s is how long a killed worker's job waits before re-running.
        "job_timeout": max([j.timeout for j in jobs] + [60]),
    }
    kwargs.update(overrides)
    return kwargs
