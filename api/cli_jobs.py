"""`infusion jobs …`: see the jobs that must not be lost, and retry the ones that failed."""

from __future__ import annotations

import getpass

import click

from core.commandline import run_with_database, servers_for, settings_from_env


@click.group()
def jobs() -> None:
    """Outbox jobs: every job that must not be lost, with its runs."""


@jobs.command("list")
@click.option("--failed", "failed_only", is_flag=True, help="Only runs that failed.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
def list_command(failed_only: bool, limit: int) -> None:
    """The newest job runs and their state."""
    from rich.console import Console
    from rich.table import Table

    from core.queue import list_jobs

    settings = settings_from_env()
    with servers_for(settings) as resolved:
        rows = run_with_database(resolved, lambda: list_jobs(failed_only=failed_only, limit=limit))
    table = Table(show_edge=False)
    for column in ("run", "job", "state", "attempts", "requeues", "last error"):
        table.add_column(column)
    for row in rows:
        state = (
            "failed"
            if row["failed_at"]
            else "done"
            if row["done_at"]
            else "started"
            if row["started_at"]
            else "pending"
        )
        error = (row["last_error"] or "").splitlines()[-1:] or [""]
        table.add_row(
            str(row["id"]),
            row["job_id"],
            state,
            str(row["attempts"]),
            str(row["requeues"]),
            error[0][:80],
        )
    Console().print(table if rows else "no job runs")


@jobs.command()
@click.argument("run_id", type=click.IntRange(1, 2**31 - 1))
def retry(run_id: int) -> None:
    """Run a failed job again (the failed run stays in the list as history)."""
    from api.worker import context_jobs
    from core import db
    from core.queue import connect, disconnect, retry_failed

    context_jobs()  # the worker's registry: retry knows every job the worker runs
    settings = settings_from_env()
    with servers_for(settings) as resolved:

        async def work() -> str:
            await connect(resolved.redis_url or "")
            try:
                async with db.transaction():
                    return await retry_failed(run_id, actor=f"cli:{getpass.getuser()}")
            finally:
                await disconnect()

        job_id = run_with_database(resolved, work)
    click.echo(f"queued {job_id} again")
