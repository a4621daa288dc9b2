"""The `infusion` command: every way a person or a machine starts the product.

Commands that need the database use DATABASE_URL / REDIS_URL when set, and otherwise join (or
start) the embedded servers under the data folder, so `infusion users create` works beside a
running `infusion dev`. Errors end in one sentence and a non-zero exit code: 2 for
configuration, 1 for a refused action.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from core.errors import ConfigurationError, InfusionError
from core.settings import Settings, load_settings

T = TypeVar("T")


class InfusionGroup(click.Group):
    """Turns our errors into a sentence and an exit code instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigurationError as exc:
            click.secho(f"error: {exc.message}", fg="red", err=True)
            sys.exit(2)
        except InfusionError as exc:
            click.secho(f"error: {exc.message}", fg="red", err=True)
            sys.exit(1)


@click.group(cls=InfusionGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="infusion")
def main() -> None:
    """infusion: logistics for a home-infusion pharmacy."""


def settings_from_env() -> Settings:
    return load_settings()


@contextmanager
def servers_for(settings: Settings, *, own: bool = False) -> Iterator[Settings]:
    """Resolve DATABASE_URL and REDIS_URL, starting embedded servers for what is unset."""
    from core.embedded import start_servers

    servers = start_servers(
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        data_dir=settings.data_dir,
        own=own,
    )
    # piccolo_conf reads DATABASE_URL when it is first imported (by Piccolo's engine finder).
    os.environ["DATABASE_URL"] = servers.database_url
    os.environ["REDIS_URL"] = servers.redis_url
    try:
        yield settings.with_urls(database_url=servers.database_url, redis_url=servers.redis_url)
    finally:
        servers.stop()


def run_with_database(settings: Settings, work: Callable[[], Awaitable[T]]) -> T:
    """Run `work` with the database pool open (for one-shot commands)."""
    from core import db

    async def runner() -> T:
        await db.open_pool(settings.database_url or "", max_size=2)
        try:
            return await work()
        finally:
            await db.close_pool()

    return asyncio.run(runner())


@main.command()
def migrate() -> None:
    """Apply every domain's migrations (safe to run again)."""
    from api.migrations import run_migrations

    settings = settings_from_env()
    with servers_for(settings) as resolved:
        applied = asyncio.run(run_migrations(resolved.database_url or ""))
    click.echo(f"migrations applied: {applied}" if applied else "database is up to date")


@main.command()
def seed() -> None:
    """Load the fictional demo data (safe to run again)."""
    from api.seed import seed_demo

    settings = settings_from_env()
    with servers_for(settings) as resolved:
        report = run_with_database(resolved, lambda: seed_demo(resolved))
    click.echo(report.summary())


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
def serve(host: str, port: int) -> None:
    """Serve the API and pages (uvicorn); run `infusion worker` beside it."""
    import uvicorn

    from api.app import create_app

    settings = settings_from_env()
    with servers_for(settings) as resolved:
        app = create_app(resolved)
        # access_log off: api.middleware logs every request with its request id.
        uvicorn.run(
            app, host=host, port=port, log_config=None, proxy_headers=True, access_log=False
        )


@main.command()
@click.option("--burst", is_flag=True, help="Run queued jobs, then exit.")
def worker(burst: bool) -> None:
    """Run the job worker (arq): every domain's jobs and cron. Run as many as you like."""
    from arq.worker import Worker

    from api.worker import worker_kwargs
    from core.logging import configure_logging

    settings = settings_from_env()
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    with servers_for(settings) as resolved:
        Worker(**worker_kwargs(resolved, burst=burst)).run()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--no-seed", is_flag=True, help="Skip loading the demo data.")
def dev(host: str, port: int, no_seed: bool) -> None:
    """Everything in one process: servers, migrations, demo data, API and worker."""
    from api.devserver import run_dev

    settings = settings_from_env()
    with servers_for(settings, own=True) as resolved:
        # Ctrl-C in a terminal reaches both `uv run` and us, and uv forwards it: a second
        # SIGINT may land during shutdown. Swallow it and stop the servers regardless.
        with contextlib.suppress(KeyboardInterrupt):
            run_dev(resolved, host=host, port=port, seed=not no_seed)
        signal.signal(signal.SIGINT, signal.SIG_IGN)


# Subcommand groups live in their own modules (api/cli_*.py) and are added here.
from api.cli_audit import audit  # noqa: E402  (the groups import helpers defined above)
from api.cli_jobs import jobs  # noqa: E402

main.add_command(audit)
main.add_command(jobs)
from api.cli_users import users  # noqa: E402

main.add_command(users)


if __name__ == "__main__":  # pragma: no cover
    main()
