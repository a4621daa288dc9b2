"""arq worker settings: every context's jobs and cron, from the manifests (the composition root
of the job side). The CLI's `infusion jobs retry` reads the same `context_jobs()`."""

from __future__ import annotations

from typing import Any

from core import db, queue
from core.queue import JobDef
from core.settings import Settings
from core.worker_runtime import WorkerSupervisor


def context_jobs() -> list[JobDef]:
    """Every job of every context, in context order."""
    from api.contexts import manifests

    return [job for manifest in manifests() for job in manifest.jobs]


def worker_kwargs(
    settings: Settings, *, manage_resources: bool = True, **overrides: Any
) -> dict[str, Any]:
    """Keyword arguments for `arq.worker.Worker`.

    `manage_resources=False` when the caller (`infusion dev`, a test) has already opened the
    database pool and the queue connection in this process.
    """
    jobs = context_jobs()
    crons = [j.arq_cron() for j in jobs if j.cron is not None]
    cron_names = {c.name for c in crons}

    async def on_startup(ctx: dict[str, Any]) -> None:
        if manage_resources:
            await db.open_pool(
                settings.database_url or "", max_size=10, command_timeout=db.BATCH_COMMAND_TIMEOUT_S
            )
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


def supervised_worker(
    settings: Settings, *, manage_resources: bool = True, **overrides: Any
) -> WorkerSupervisor:
    """The worker as `infusion worker` and `infusion dev` run it: a fresh arq Worker on each
    Redis connection, restarted after a Redis outage (core.worker_runtime)."""
    from arq.worker import Worker

    def make_worker(pool: Any) -> Worker:
        kwargs = worker_kwargs(settings, manage_resources=manage_resources, **overrides)
        return Worker(**{**kwargs, "redis_pool": pool, "handle_signals": False})

    return WorkerSupervisor(make_worker, queue.redis_settings(settings.redis_url or ""))
