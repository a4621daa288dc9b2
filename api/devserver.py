"""`infusion dev`: migrate, seed, then run the API and a worker in one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from contextlib import nullcontext
from typing import Any

import click

from core.settings import Settings


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
    from arq.worker import Worker

    from api.app import create_app
    from api.migrations import run_migrations
    from api.server import uvicorn_config
    from api.worker import worker_kwargs
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
    worker = Worker(**worker_kwargs(settings, manage_resources=False, handle_signals=False))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    server_task = asyncio.create_task(server.serve(), name="api")
    worker_task = asyncio.create_task(worker.main(), name="worker")
    # uvicorn exposes only a `started` flag, no event to await.
    while not server.started and not server_task.done():  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    if server.started:
        _banner(settings, host, port, applied, demo_logins, time.monotonic() - started)
        waiters = {asyncio.create_task(stop.wait()), server_task, worker_task}
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    click.echo("stopping…", err=True)
    # Worker first: its running jobs finish while the database pool is still open.
    worker_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await worker_task
    await worker.close()
    server.should_exit = True
    with contextlib.suppress(asyncio.CancelledError):
        await server_task
    await queue.disconnect()
    await db.close_pool()
    if server_task.done() and not server.started:
        raise click.ClickException(f"could not serve on {host}:{port} (is the port in use?)")


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
