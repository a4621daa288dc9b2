"""The `infusion` command: every way a person or a machine starts the product.

How commands find their servers is core.commandline's job. Errors end in one sentence and a
non-zero exit code: 2 for configuration, 1 for a refused action.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from typing import Any

import click

from api.cli_audit import audit
from api.cli_jobs import jobs
from api.cli_users import users
from api.contexts import manifests
from core.commandline import run_with_database, servers_for, settings_from_env
from core.errors import ConfigurationError, InfusionError


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
    from api.server import uvicorn_config

    settings = settings_from_env()
    with servers_for(settings) as resolved:
        app = create_app(resolved)
        server = uvicorn.Server(uvicorn_config(resolved, host=host, port=port, app=app))
        with contextlib.suppress(KeyboardInterrupt):
            server.run()
    if not server.started:
        # uvicorn has said why (the port is taken, start-up failed); exit 3 as uvicorn.run does.
        sys.exit(3)


@main.command()
@click.option("--burst", is_flag=True, help="Run queued jobs, then exit.")
def worker(burst: bool) -> None:
    """Run the job worker (arq): every domain's jobs and cron. Run as many as you like.

    It rides out Redis outages: it waits for Redis with backoff and resumes."""
    from api.worker import supervised_worker
    from core.logging import configure_logging

    settings = settings_from_env()
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    with servers_for(settings) as resolved:
        asyncio.run(supervised_worker(resolved, burst=burst).run(handle_signals=True))


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


# Command groups: the kernel's (api/cli_*.py), then each context's from its manifest.
for group in (audit, jobs, users, *(m.cli for m in manifests() if m.cli is not None)):
    main.add_command(group)


if __name__ == "__main__":  # pragma: no cover
    main()
