"""Keeps an arq worker running through Redis outages (`infusion worker` and `infusion dev`).

arq's `Worker.main()` raises as soon as one Redis command fails, which would end the process
on a Redis restart of a fraction of a second. The supervisor runs one worker at a time: when
Redis is lost it logs `worker.redis_lost` once, drops that worker (its running jobs are
cancelled; arq and the outbox run them again, and the outbox lock keeps their effects
single), waits with backoff until Redis answers, logs `worker.redis_back` once and starts a
fresh worker on a fresh connection. Any other error is a bug and ends the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable
from dataclasses import replace

from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.worker import Worker
from redis.exceptions import AuthenticationError, RedisError

from core.backoff import Backoff
from core.errors import ConfigurationError, is_outage
from core.logging import get_logger
from core.queue import cancelling_for_outage

log = get_logger(__name__)

# How long a dropped worker's cancelled jobs get to wind down.
DISCARD_GRACE_S = 10.0

MakeWorker = Callable[[ArqRedis], Worker]


class WorkerSupervisor:
    """Runs `make_worker(pool)` until stopped (or, in burst mode, until the queue is empty).

    `make_worker` must build a Worker with `handle_signals=False`: signals are the
    supervisor's (`run(handle_signals=True)`) or its owner's, who calls `stop()`.
    """

    def __init__(
        self,
        make_worker: MakeWorker,
        redis_settings: RedisSettings,
        *,
        backoff: Backoff | None = None,
    ) -> None:
        self._make_worker = make_worker
        # One attempt per connect: the supervisor's backoff does the retrying.
        self._redis_settings = replace(redis_settings, conn_retries=0)
        self._backoff = backoff or Backoff()
        self._stopping = asyncio.Event()
        self._lost_at: float | None = None

    def stop(self) -> None:
        self._stopping.set()

    async def run(self, *, handle_signals: bool = False) -> None:
        if handle_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.stop)
        while True:
            pool = await self._connect()
            if pool is None:
                return
            worker = self._make_worker(pool)
            if not await self._run_until_lost(worker):
                return

    async def _run_until_lost(self, worker: Worker) -> bool:
        """Run one worker; True when Redis was lost under it (start another)."""
        main = asyncio.create_task(worker.main(), name="arq-worker")
        worker.main_task = main  # so worker.close() cancels it
        stopping = asyncio.create_task(self._stopping.wait())
        await asyncio.wait({main, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not main.done() or main.cancelled() or main.exception() is None:
            # Stopped, or a burst run that emptied the queue: the normal close.
            try:
                await worker.close()  # cancels `main` when it is still running
            except Exception as exc:
                if not is_outage(exc):
                    raise
                await self._discard(worker)  # Redis went away while closing
            await asyncio.gather(main, return_exceptions=True)
            return False
        error = main.exception()
        await self._discard(worker)
        if error is None or not is_outage(error):
            raise error or RuntimeError("the worker stopped")
        self._lost(error)
        return True

    async def _connect(self) -> ArqRedis | None:
        """A pool that answered PING, or None once stopped."""
        while not self._stopping.is_set():
            try:
                pool = await create_pool(self._redis_settings)
            except AuthenticationError:
                raise ConfigurationError(
                    "Redis refused the user name or password in REDIS_URL."
                ) from None
            except (RedisError, OSError) as exc:
                self._lost(exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self._backoff.next_delay())
                continue
            if self._lost_at is not None:
                log.warning("worker.redis_back", down_s=round(time.monotonic() - self._lost_at, 1))
                self._lost_at = None
            self._backoff.reset()
            return pool
        return None

    def _lost(self, exc: BaseException) -> None:
        """Log once per outage, however many attempts it takes."""
        if self._lost_at is None:
            self._lost_at = time.monotonic()
            log.warning("worker.redis_lost", error_type=type(exc).__name__)

    async def _discard(self, worker: Worker) -> None:
        """Drop a worker whose Redis is gone, without the Redis calls of Worker.close()."""
        tasks = [t for t in worker.tasks.values() if not t.done()]
        # Not the jobs' fault: their attempts are given back (core.queue), so short outages
        # cannot use up a job's attempt limit. The outbox runs them again.
        with cancelling_for_outage():
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=DISCARD_GRACE_S)
        for task in worker.tasks.values():
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: their finishing Redis calls failed, as expected
        if worker.on_shutdown is not None:
            try:
                await worker.on_shutdown(worker.ctx)
            except Exception:
                log.exception("worker.shutdown_failed")
        with contextlib.suppress(RedisError, OSError):
            await worker.pool.aclose()
