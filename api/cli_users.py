"""`infusion users …`: staff accounts from the command line (the first admin comes from here).

Passwords are never command-line arguments (they would sit in shell history and `ps`): they
are typed twice at a hidden prompt, or read as one line from stdin with --password-stdin.
Refusals end in one sentence and exit code 1 (api.cli.InfusionGroup).
"""

from __future__ import annotations

import getpass
import sys
from typing import TYPE_CHECKING

import click

from core.commandline import run_with_database, servers_for, settings_from_env
from core.identity.model import ROLE_ORDER, check_password, normalise_username

if TYPE_CHECKING:
    from core.identity.tables import User


def _actor() -> str:
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    return f"cli:{who}"


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        line = sys.stdin.readline()
        # Only the line ending is removed: spaces are part of a password.
        return line.removesuffix("\n").removesuffix("\r")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


_password_stdin = click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password as one line from stdin instead of prompting.",
)


@click.group()
def users() -> None:
    """Staff accounts: create, list, set passwords, deactivate."""


@users.command()
@click.option("--username", required=True, help="Login name: 3-150 of a-z 0-9 . _ -")
@click.option("--display-name", required=True, help="Name shown on screens and records.")
@click.option(
    "--role",
    "roles",
    multiple=True,
    required=True,
    type=click.Choice([role.value for role in ROLE_ORDER]),
    help="Repeat for several roles; roles do not imply each other.",
)
@_password_stdin
def create(username: str, display_name: str, roles: tuple[str, ...], password_stdin: bool) -> None:
    """Create a staff account."""
    from core import db
    from core.identity.services import create_user

    password = _read_password(password_stdin)
    # Checked again by the service; here so a typo is reported before any server starts.
    check_password(password, username=normalise_username(username))
    actor = _actor()

    async def work() -> User:
        async with db.transaction():
            return await create_user(
                username=username,
                display_name=display_name,
                password=password,
                roles=roles,
                actor=actor,
            )

    settings = settings_from_env()
    with servers_for(settings) as resolved:
        user = run_with_database(resolved, work)
    click.echo(f"created user {user.username} (roles: {', '.join(user.roles)})")


@users.command(name="list")
def list_() -> None:
    """Every staff account, by username."""
    from core.identity.services import list_users

    settings = settings_from_env()
    with servers_for(settings) as resolved:
        rows = run_with_database(resolved, list_users)
    if not rows:
        click.echo("no users yet: create one with `infusion users create`")
        return
    width = max(len("username"), *(len(user.username) for user in rows))
    click.echo(f"{'username':<{width}}  {'active':<6}  {'roles':<30}  display name")
    for user in rows:
        active = "yes" if user.is_active else "no"
        roles = ", ".join(user.roles)
        click.echo(f"{user.username:<{width}}  {active:<6}  {roles:<30}  {user.display_name}")


@users.command(name="set-password")
@click.argument("username")
@_password_stdin
def set_password_(username: str, password_stdin: bool) -> None:
    """Set USERNAME's password (their sessions end)."""
    from core import db
    from core.identity.services import get_user_by_username, set_password

    password = _read_password(password_stdin)
    check_password(password, username=username)
    actor = _actor()

    async def work() -> User:
        async with db.transaction():
            user = await get_user_by_username(username)
            return await set_password(user.id, password=password, actor=actor)

    settings = settings_from_env()
    with servers_for(settings) as resolved:
        user = run_with_database(resolved, work)
    click.echo(f"password set for {user.username}")


@users.command()
@click.argument("username")
@click.option("--reason", default="", help="Why, for the audit trail.")
def deactivate(username: str, reason: str) -> None:
    """Deactivate USERNAME: their sessions and API tokens stop working at once."""
    from core import db
    from core.identity.services import get_user_by_username, update_user

    actor = _actor()

    async def work() -> User:
        async with db.transaction():
            user = await get_user_by_username(username)
            return await update_user(user.id, actor=actor, is_active=False, reason=reason)

    settings = settings_from_env()
    with servers_for(settings) as resolved:
        user = run_with_database(resolved, work)
    click.echo(f"deactivated {user.username}")
