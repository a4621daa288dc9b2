"""`infusion audit …`: check the audit trail from the command line (exit 1 when broken), and
seal a trail written before the chain was keyed (once, by hand)."""

from __future__ import annotations

import getpass
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
    # The operator's own shell: name the anchor file (the API does not).
    sentence = report.sentence(str(resolved.audit_anchor_file))
    if report.ok:
        click.echo(sentence)
        return
    click.secho(sentence, fg="red", err=True)
    sys.exit(1)


@audit.command("seal-legacy")
def seal_legacy() -> None:
    """Once, after upgrading a database from before the keyed chain (and before starting the
    API or workers): close its plain-sha256 rows with one keyed, audited seal and anchor it.
    Refused when any row is keyed already or the anchor file has entries."""
    from core.audit.services import seal_legacy_chain

    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    settings = settings_from_env()
    with servers_for(settings) as resolved:
        sealed = run_with_database(
            resolved, lambda: seal_legacy_chain(actor=f"cli:{who}", settings=resolved)
        )
    click.echo(f"audit trail sealed: {sealed} row(s) written before the key are now covered")
