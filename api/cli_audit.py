"""`infusion audit …`: check the audit trail from the command line (exit 1 when broken)."""

from __future__ import annotations

import sys

import click

from core.commandline import run_with_database, servers_for, settings_from_env


@click.group()
def audit() -> None:
    """The append-only, hash-chained audit trail."""


@audit.command()
def verify() -> None:
    """Re-hash every event (HMAC with INFUSION_AUDIT_KEY) and check the trail still reaches
    the head anchored in INFUSION_AUDIT_ANCHOR_FILE; name the first altered or missing row."""
    from core.audit.services import verify_chain

    settings = settings_from_env()
    with servers_for(settings) as resolved:
        report = run_with_database(resolved, lambda: verify_chain(resolved))
    if report.ok:
        click.echo(report.sentence())
        return
    click.secho(report.sentence(), fg="red", err=True)
    sys.exit(1)
