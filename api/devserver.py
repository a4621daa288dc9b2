"""`infusion dev`: migrate, seed, then run the API and a worker in one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from contextlib import nullcontext
from typing import Any

import click

from core.backoff import Backoff
from core.embedded import EmbeddedRedis
from core.errors import ConfigurationError
from core.logging import get_logger
from core.settings import Settings

log = get_logger(__name__)


def run_dev(settings: Settings, *, host: str, port: int, seed: bool) -> None:
    asyncio.run(_dev(settings, host=host, port=port, seed=seed))


class _Server:
    """uvicorn's Server without its own signal handling: `infusion dev` owns Ctrl-C."""

    def __new__(cls, config: Any) -> Any:
        import uvicorn

        class Quiet(uvicorn.Server):
            def capture_signals(self) -> Any:  # type: ignore[override]
                return nullcontext()

        return Quiet(config)


async def _dev(settings: Settings, *, host: str, port: int, seed: bool) -> None:
    from api.app import create_app
    from api.migrations import run_migrations
    from api.server import uvicorn_config
    from api.worker import supervised_worker
    from core import db, queue

    started = time.monotonic()
    applied = await run_migrations(settings.database_url or "")
    await db.open_pool(settings.database_url or "", max_size=10)
    await queue.connect(settings.redis_url or "")
    demo_logins: list[tuple[str, str, str]] = []
    if seed:
        from api.seed import seed_demo

        report = await seed_demo(settings)
        demo_logins = report.logins
    app = create_app(settings, manage_resources=False)
    server = _Server(uvicorn_config(settings, host=host, port=port, app=app))
    worker = supervised_worker(settings, manage_resources=False)
    redis_watch = RedisWatch.for_settings(settings)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    server_task = asyncio.create_task(server.serve(), name="api")
    worker_task = asyncio.create_task(worker.run(), name="worker")
    watch_task = asyncio.create_task(redis_watch.run(), name="redis-watch")
    # uvicorn exposes only a `started` flag, no event to await.
    while not server.started and not server_task.done():  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    if server.started:
        _banner(settings, host, port, applied, demo_logins, time.monotonic() - started)
        waiters = {asyncio.create_task(stop.wait()), server_task, worker_task, watch_task}
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    click.echo("stopping…", err=True)
    watch_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watch_task
    # Worker first: its running jobs finish while the database pool is still open. A worker
    # that died of a bug still lets the API and the pool stop cleanly, then its error shows.
    worker.stop()
    try:
        await worker_task
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await server_task
        await queue.disconnect()
        await db.close_pool()
    if server_task.done() and not server.started:
        raise click.ClickException(f"could not serve on {host}:{port} (is the port in use?)")
    if redis_watch.gave_up is not None:
        raise click.ClickException(redis_watch.gave_up)


class RedisWatch:
    """Restarts the embedded Redis when it dies under `infusion dev`.

    Meanwhile the API keeps answering (/health names Redis, sign-in answers 503) and the
    worker waits for Redis (core.worker_runtime). When the server cannot be started again
    after RESTART_TRIES attempts with backoff (about half a minute), `gave_up` says so in one
    sentence and `run` returns, which stops `infusion dev`.
    """

    CHECK_EVERY_S = 1.0
    RESTART_TRIES = 6

    def __init__(self, redis: EmbeddedRedis | None) -> None:
        self.redis = redis
        self.gave_up: str | None = None

    @classmethod
    def for_settings(cls, settings: Settings) -> RedisWatch:
        """Watch the embedded Redis of the data folder; nothing when REDIS_URL names another."""
        embedded = EmbeddedRedis(settings.data_dir, owner=True)
        return cls(embedded if settings.redis_url == embedded.url else None)

    async def run(self) -> None:
        if self.redis is None:
            await asyncio.Event().wait()  # nothing to watch: wait to be cancelled
        while self.gave_up is None:
            await asyncio.sleep(self.CHECK_EVERY_S)
            if not await asyncio.to_thread(self.redis.running):  # type: ignore[union-attr]
                log.warning("dev.redis_died")
                await self._restart(self.redis)  # type: ignore[arg-type]

    async def _restart(self, redis: EmbeddedRedis) -> None:
        backoff = Backoff()
        for attempt in range(1, self.RESTART_TRIES + 1):
            await asyncio.sleep(backoff.next_delay())
            try:
                await asyncio.to_thread(redis.start)
            except (ConfigurationError, OSError) as exc:
                error_type = type(exc).__name__
                log.warning("dev.redis_restart_failed", attempt=attempt, error_type=error_type)
                continue
            log.warning("dev.redis_restarted", attempt=attempt)
            return
        self.gave_up = (
            f"the embedded Redis in {redis.folder} died and could not be restarted "
            f"({self.RESTART_TRIES} tries); see {redis.folder / 'redis.log'}"
        )


def _banner(
    settings: Settings,
    host: str,
    port: int,
    applied: int,
    logins: list[tuple[str, str, str]],
    seconds: float,
) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True)
    console.print(
        f"[bold green]infusion[/] is running at [bold]http://{host}:{port}/[/]  ({seconds:.1f} s)"
    )
    console.print(f"  API docs: http://{host}:{port}/schema   health: http://{host}:{port}/health")
    console.print(
        f"  database: {_safe(settings.database_url)}   redis: {_safe(settings.redis_url)}"
    )
    if applied:
        console.print(f"  applied {applied} migration(s)")
    if logins:
        table = Table(title="Demo logins (fictional)", show_edge=False)
        for column in ("username", "password", "roles"):
            table.add_column(column)
        for row in logins:
            table.add_row(*row)
        console.print(table)
    console.print("  Ctrl-C stops everything.")


def _safe(url: str | None) -> str:
    """A URL without its password, for printing."""
    if not url:
        return "-"
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}@{host}"
    return url
